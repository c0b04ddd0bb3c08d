"""Model tensors from model-ready images, instruction validation and encoder-id checks (pure)."""
import numpy as np
import pytest

from vla_core.image import ImageError, camera_frame
from vla_core.observation import model_image, to_chw_float
from vla_core.text import EncoderMismatch, InstructionError, check_encoder_id, normalize_instruction


def test_chw_float_layout_and_scale():
    rgb = np.zeros((2, 3, 3), np.uint8)
    rgb[0, 1] = (255, 51, 0)
    t = to_chw_float(rgb)
    assert t.shape == (3, 2, 3) and t.dtype == np.float32 and t.flags.c_contiguous
    assert t[0, 0, 1] == 1.0 and t[1, 0, 1] == np.float32(51) * np.float32(1 / 255) and t[2, 0, 1] == 0.0


def test_batched_tensors_match_single_frames_and_the_recorded_frame():
    rng = np.random.default_rng(0)
    frames = rng.integers(0, 256, (4, 120, 160, 3), dtype=np.uint8)
    batch = to_chw_float(np.stack([model_image(f, 96, 96) for f in frames]))
    assert batch.shape == (4, 3, 96, 96)
    for frame, tensor in zip(frames, batch):
        assert tensor.tobytes() == to_chw_float(model_image(frame, 96, 96)).tobytes()
        recorded = camera_frame(frame.tobytes(), 120, 160, "rgb8", 160 * 3, 96, 96)
        assert tensor.tobytes() == to_chw_float(recorded).tobytes()


@pytest.mark.parametrize("bad", [np.zeros((8, 8, 3), np.float32), np.zeros((8, 8), np.uint8), [[1, 2, 3]]])
def test_non_rgb_input_is_refused(bad):
    with pytest.raises(ImageError, match="uint8 RGB"):
        to_chw_float(bad)


def test_instruction_is_stripped_but_not_rewritten():
    assert normalize_instruction("  Push the RED cube!\n") == "Push the RED cube!"


@pytest.mark.parametrize("text, words", [
    ("", "empty"), ("   \n\t", "empty"), (None, "must be text"), (b"push", "must be text"),
    ("x" * 513, "513 characters"), ("push\x00 the cube", r"U\+0000"), ("push \ud800", r"U\+D800"),
])
def test_bad_instructions_are_rejected_with_the_reason(text, words):
    with pytest.raises(InstructionError, match=words):
        normalize_instruction(text)


def test_limit_is_configurable():
    assert normalize_instruction("x" * 600, max_chars=600) == "x" * 600


def test_policy_refuses_another_encoder():
    check_encoder_id("sentence-transformers/all-MiniLM-L6-v2", "sentence-transformers/all-MiniLM-L6-v2")
    with pytest.raises(EncoderMismatch, match="'other/model'.*trained with 'sentence-transformers"):
        check_encoder_id("sentence-transformers/all-MiniLM-L6-v2", "other/model")
    with pytest.raises(EncoderMismatch, match="declares no text encoder"):
        check_encoder_id("", "other/model")
