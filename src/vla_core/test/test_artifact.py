import json
from pathlib import Path

import numpy as np
import pytest

from vla_core.artifact import (ArtifactError, compatibility, resolve, save_golden, verify_artifact,
                               write_artifact)
from vla_core.contract import RobotContract

WS = Path(__file__).resolve().parents[3]
CONTRACT = RobotContract.from_yaml(WS / "params" / "robots" / "tabletop_sim.yaml")


def manifest(version="1"):
    feats = {name: {"dtype": f["dtype"], "shape": f["shape"], "names": f["names"]}
             for name, f in CONTRACT.features().items()}
    feats["observation.language"] = {"dtype": "float32", "shape": [384], "encoder_id": "minilm"}
    return {"name": "bc", "version": version, "policy_type": "mlp", "fps": 10.0, "features": feats,
            "action": {"chunk_size": 8, "execution": "temporal_ensemble", "ensemble_coeff": 0.01},
            "onnx": {"file": "policy.onnx"}, "golden": {"file": "golden.npz", "atol": 1e-4}}


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
