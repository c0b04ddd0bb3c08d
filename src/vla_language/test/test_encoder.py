"""The instruction encoder with the bundled all-MiniLM-L6-v2: torch and ONNX agree, cache, rejections."""
import json

import numpy as np
import pytest

from vla_core.errors import ConfigError
from vla_core.text import EMBEDDING_TOLERANCE, InstructionError
from vla_language.encoder import BUNDLED_ID, InstructionEncoder, bundled_model_path


@pytest.fixture(scope="module")
def encoders(tmp_path_factory):
    cache = tmp_path_factory.mktemp("onnx")
    torch_enc = InstructionEncoder(runtime="torch", cache_size=4)
    onnx_enc = InstructionEncoder(runtime="onnx", cache_dir=str(cache), cache_size=4)
    return torch_enc, onnx_enc, cache


def test_bundled_model_ids_and_dims(encoders):
    for enc in encoders[:2]:
        assert enc.encoder_id == BUNDLED_ID and enc.dim == 384


def test_onnx_export_is_cached_and_checked(encoders):
    _, onnx_enc, cache = encoders
    meta = json.loads(next(cache.glob("*/meta.json")).read_text())
    assert meta["max_abs_diff_vs_torch"] <= EMBEDDING_TOLERANCE and onnx_enc.backend.onnx_path.is_file()


@pytest.mark.parametrize("text", ["push the red cube onto the purple square", "Stop!", "déplace le cube bleu"])
def test_torch_and_onnx_agree_and_vectors_are_unit_length(encoders, text):
    a, b = (enc.encode(text)[1] for enc in encoders[:2])
    assert a.dtype == b.dtype == np.float32 and a.shape == (384,)
    assert np.abs(a - b).max() <= EMBEDDING_TOLERANCE
    assert np.linalg.norm(a) == pytest.approx(1.0, abs=1e-5)


def test_embeddings_carry_meaning(encoders):
    enc = encoders[1]
    base = enc.encode("push the red cube onto the purple square")[1]
    para = enc.encode("slide the red block into the purple area")[1]
    other = enc.encode("what is the weather in Paris tomorrow")[1]
    assert base @ para > base @ other + 0.2


def test_cache_hits_and_lru_eviction(encoders):
    enc = encoders[1]
    text, first, cached = enc.encode("  move the green cube to the teal zone ")
    assert text == "move the green cube to the teal zone" and not cached
    hits = enc.hits
    _, again, cached = enc.encode("move the green cube to the teal zone")
    assert cached and again is first and enc.hits == hits + 1 and not again.flags.writeable
    for i in range(4):
        enc.encode(f"instruction number {i}")
    assert not enc.encode("move the green cube to the teal zone")[2]


@pytest.mark.parametrize("text", ["", "   ", "x" * 600, "bad\x07bell"])
def test_bad_text_is_rejected(encoders, text):
    with pytest.raises(InstructionError):
        encoders[1].encode(text)


def test_bad_model_path_and_runtime(tmp_path):
    with pytest.raises(ConfigError, match="no config.json"):
        InstructionEncoder(model_path=str(tmp_path))
    with pytest.raises(ConfigError, match="runtime 'tensorrt'"):
        InstructionEncoder(runtime="tensorrt")


def test_any_local_model_directory_with_its_own_id(tmp_path):
    copy = tmp_path / "my-minilm"
    copy.mkdir()
    for entry in bundled_model_path().iterdir():  # the same files, in a directory of another name
        (copy / entry.name).symlink_to(entry)
    enc = InstructionEncoder(model_path=str(copy), runtime="torch")
    assert enc.encoder_id == "my-minilm" and enc.encode("stop")[1].shape == (384,)
    named = InstructionEncoder(model_path=str(copy), runtime="torch", encoder_id="org/custom")
    assert named.encoder_id == "org/custom"
