import json
import os
import re
import time
from pathlib import Path

import numpy as np
import pytest

from vla_core.artifact import (ArtifactError, compatibility, manifest_problems, resolve, save_golden,
                               sha256_file, verify_artifact, write_artifact)
from vla_core.contract import RobotContract

WS = Path(__file__).resolve().parents[3]
CONTRACT = RobotContract.from_yaml(WS / "params" / "robots" / "tabletop_sim.yaml")


def manifest(version="1"):
    feats = {name: {"dtype": f["dtype"], "shape": f["shape"], "names": f["names"]}
             for name, f in CONTRACT.features().items()}
    feats["observation.language"] = {"dtype": "float32", "shape": [384], "encoder_id": "minilm"}
    return {"name": "bc", "version": version, "policy_type": "mlp", "fps": 10.0, "features": feats,
            "action": {"chunk_size": 8, "execution": "temporal_ensemble", "ensemble_coeff": 0.01},
            "onnx": {"file": "policy.onnx", "inputs": {"observation.images.top": "image_top",
                                                        "observation.state": "state",
                                                        "observation.language": "language"}},
            "golden": {"file": "golden.npz", "atol": 1e-4}}


@pytest.fixture
def artifact(tmp_path):
    golden = tmp_path / "golden.npz"
    save_golden(golden, {"state": np.arange(4, dtype=np.float32)}, {"action": np.ones((8, 2), np.float32)})
    return write_artifact(tmp_path / "models", manifest(), {"policy.onnx": b"not really onnx", "golden.npz": golden})


def test_round_trip_and_golden_without_pickle(artifact, tmp_path):
    loaded = verify_artifact(artifact.path)
    assert loaded.path == tmp_path / "models" / "bc" / "1"
    assert set(loaded.manifest["files"]) == {"policy.onnx", "golden.npz"}
    inputs, outputs, atol = loaded.golden()
    np.testing.assert_array_equal(inputs["state"], np.arange(4, dtype=np.float32))
    assert outputs["action"].shape == (8, 2) and atol == 1e-4
    assert not list((tmp_path / "models" / "bc").glob(".*")), "no staging directory left behind"


def test_tampered_file_is_refused_naming_it(artifact):
    (artifact.path / "policy.onnx").write_bytes(b"tampered")
    with pytest.raises(ArtifactError, match=r"policy.onnx has sha256 .* the manifest says"):
        verify_artifact(artifact.path)


def test_missing_file_and_corrupt_manifest(artifact):
    (artifact.path / "golden.npz").unlink()
    with pytest.raises(ArtifactError, match="golden.npz is missing"):
        verify_artifact(artifact.path)
    (artifact.path / "manifest.json").write_text("{not json")
    with pytest.raises(ArtifactError, match="not valid JSON"):
        verify_artifact(artifact.path)


def test_incomplete_manifest_is_refused(artifact):
    m = json.loads((artifact.path / "manifest.json").read_text())
    del m["golden"]
    m["action"]["execution"] = "yolo"
    (artifact.path / "manifest.json").write_text(json.dumps(m))
    with pytest.raises(ArtifactError, match="missing 'golden'"):
        verify_artifact(artifact.path)


def test_versions_are_immutable_and_failed_writes_leave_nothing(artifact, tmp_path):
    with pytest.raises(ArtifactError, match="already exists"):
        write_artifact(tmp_path / "models", manifest(), {"policy.onnx": b"x", "golden.npz": b"y"})
    with pytest.raises(FileNotFoundError):
        write_artifact(tmp_path / "models", manifest("2"), {"policy.onnx": tmp_path / "nope", "golden.npz": b"y"})
    assert not (tmp_path / "models" / "bc" / "2").exists()
    assert not list((tmp_path / "models" / "bc").glob(".*"))


def test_resolve_by_path_name_and_version(artifact, tmp_path):
    models = tmp_path / "models"
    assert resolve(str(artifact.path), models) == artifact.path
    assert resolve("bc/1", models) == artifact.path
    assert resolve("bc", models) == artifact.path
    with pytest.raises(ArtifactError, match="available: bc/1"):
        resolve("nope", models)


def test_newest_version_is_never_one_still_being_written(artifact, tmp_path):
    # write_artifact stages a version as models/<name>/.<version>.XXXX (manifest included) and renames it into
    # place: a staged directory newer than every version must not be what 'bc' resolves to.
    import shutil
    models = tmp_path / "models"
    staged = models / "bc" / ".2.abc123"
    shutil.copytree(artifact.path, staged)
    os.utime(staged, (time.time() + 60, time.time() + 60))
    assert resolve("bc", models) == artifact.path
    with pytest.raises(ArtifactError) as err:
        resolve("nope", models)
    assert ".2" not in str(err.value)


def test_compatibility_lists_every_mismatch(artifact):
    m = json.loads((artifact.path / "manifest.json").read_text())
    assert compatibility(m, CONTRACT, encoder_id="minilm") == []
    m["features"]["observation.state"]["shape"] = [6]
    m["features"]["observation.images.wrist"] = {"dtype": "video", "shape": [96, 96, 3]}
    m["fps"] = 30.0
    problems = compatibility(m, CONTRACT, encoder_id="other-encoder")
    text = "\n".join(problems)
    assert len(problems) == 4
    for fragment in ("'other-encoder'", "expects shape [6]", "observation.images.wrist", "trained at 30.0 Hz"):
        assert fragment in text


def rewrite(artifact, edit):
    """Apply ``edit`` to the artifact's manifest.json (not itself checksummed) and return the path."""
    m = json.loads((artifact.path / "manifest.json").read_text())
    edit(m)
    (artifact.path / "manifest.json").write_text(json.dumps(m))
    return artifact.path


def test_manifest_problems_are_all_collected_into_one_error(artifact):
    def spoil(m):
        m["name"] = "n" * 5000
        m["version"] = "../x"
        m["features"] = ["observation.state", "action"]
        m["files"] = ["policy.onnx", "golden.npz"]
        del m["golden"]["atol"]
        m["fps"] = "fast"
    with pytest.raises(ArtifactError) as err:
        verify_artifact(rewrite(artifact, spoil))
    text = str(err.value)
    for fragment in ("has 6 problem(s)", "name 'nnnn", "5000 characters, at most 128", "version '../x' may hold only",
                     "features must be a mapping", "files must be a mapping", "golden has no atol",
                     "fps 'fast' must be a positive number"):
        assert fragment in text, text
    assert len(text) < 2000, "a 5,000-character name is cut in the message"


@pytest.mark.parametrize("edit,fragment", [
    (lambda m: m["golden"].pop("atol"), "golden has no atol"),
    (lambda m: m["golden"].update(atol="NaN"), "golden.atol 'NaN' must be a finite number"),
    (lambda m: m["golden"].update(atol=float("nan")), "golden.atol nan must be a finite number"),
    (lambda m: m["golden"].update(atol=True), "golden.atol True must be a finite number"),
    (lambda m: m.update(features={"action": {"dtype": "float32", "shape": [2]}, "observation.state": 4}),
     "feature 'observation.state' must be a mapping"),
    (lambda m: m["features"]["observation.state"].pop("shape"), "feature 'observation.state' has no shape"),
    (lambda m: m["features"]["observation.state"].update(shape=[0]), "shape [0] must be a list of 1 to 4"),
    (lambda m: m["features"]["observation.images.top"].update(shape=[96, 96]), "an image's shape is [height, width"),
    (lambda m: m["features"]["observation.state"].update(dtype="object"), "dtype 'object' must be one of"),
    (lambda m: m.update(features={}), "features has no 'action'"),
    (lambda m: m.update(files=["policy.onnx"]), "files must be a mapping of file name to sha256, not a list"),
    (lambda m: m["files"].update({"../../etc/passwd": "0" * 64}), "files: '../../etc/passwd' must be a relative"),
    (lambda m: m["files"].update({"policy.onnx": "abc"}), "must be 64 lowercase hex digits"),
    (lambda m: m.update(name="../x"), "name '../x' may hold only"),
    (lambda m: m.update(version="a/b"), "version 'a/b' may hold only"),
    (lambda m: m.update(name="x" * 5000), "5000 characters, at most 128"),
    (lambda m: m["action"].update(chunk_size="8"), "action.chunk_size '8' must be a positive integer"),
    (lambda m: m["action"].update(receding_steps=99), "action.receding_steps 99 must be a positive integer up to"),
    (lambda m: m.update(onnx={"file": "other.onnx"}), "onnx.file 'other.onnx' is not listed in 'files'"),
    (lambda m: m.update(golden="golden.npz"), "golden must be a mapping with a 'file', not a str"),
    (lambda m: m.update(engines={"kind": "tensorrt"}), "engines must be a list"),
    (lambda m: m.update(fps=float("inf")), "fps inf must be a positive number"),
    (lambda m: m.update({"format": "other/9"}), "format 'other/9' is not"),
])
def test_each_bad_manifest_is_refused_naming_the_field(artifact, edit, fragment):
    with pytest.raises(ArtifactError) as err:
        verify_artifact(rewrite(artifact, edit))
    assert fragment in str(err.value)


def test_a_golden_file_that_is_not_an_npz_is_refused_even_with_a_matching_checksum(artifact):
    golden = artifact.path / "golden.npz"
    for payload in (b"not a zip at all", b"PK\x03\x04 truncated zip"):
        golden.write_bytes(payload)
        path = rewrite(artifact, lambda m: m["files"].update({"golden.npz": sha256_file(golden)}))
        loaded = verify_artifact(path)  # the checksum matches: only reading it tells
        with pytest.raises(ArtifactError, match="cannot be read as an .npz archive"):
            loaded.golden()
    np.save(golden.with_suffix(".npy"), np.zeros(3))
    golden.write_bytes(golden.with_suffix(".npy").read_bytes())
    path = rewrite(artifact, lambda m: m["files"].update({"golden.npz": sha256_file(golden)}))
    with pytest.raises(ArtifactError, match="single array"):
        verify_artifact(path).golden()
    np.savez(golden, **{"input:x": np.zeros(2)})
    path = rewrite(artifact, lambda m: m["files"].update({"golden.npz": sha256_file(golden)}))
    with pytest.raises(ArtifactError, match="at least one 'input:<name>' and one 'output:<name>'"):
        verify_artifact(path).golden()


@pytest.mark.parametrize("spec,fragment", [
    ("x" * 5000, "5000 characters, at most 1024"),
    ("../x", "contains '..'"),
    ("bc/../../etc", "contains '..'"),
    ("a/b/c", "more than one '/'"),
    ("bc\n1", "control characters"),
    ("", "no artifact named"),
    ("-rf", "may hold only"),
])
def test_resolve_refuses_bad_specs_before_touching_the_file_system(artifact, tmp_path, spec, fragment):
    with pytest.raises(ArtifactError, match=re.escape(fragment)):
        resolve(spec, tmp_path / "models")


def test_a_name_too_long_for_the_file_system_is_an_artifact_error(tmp_path):
    with pytest.raises(ArtifactError, match="no policy artifact"):
        resolve("y" * 1000, tmp_path / "models")  # under MAX_SPEC_CHARS, over the file system's name limit


def test_write_artifact_refuses_unsafe_names(tmp_path):
    with pytest.raises(ArtifactError, match="manifest name '../x' may hold only"):
        write_artifact(tmp_path / "models", {**manifest(), "name": "../x"}, {"policy.onnx": b"x", "golden.npz": b"y"})
    assert not (tmp_path / "x").exists()


def test_manifest_problems_of_a_valid_manifest_is_empty(artifact):
    assert manifest_problems(json.loads((artifact.path / "manifest.json").read_text())) == []
    assert manifest_problems([]) == ["the manifest must be a JSON object, not list"]
