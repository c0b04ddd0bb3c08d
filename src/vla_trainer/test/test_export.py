import numpy as np
import pytest
import torch
from safetensors.torch import load_file

from vla_core.artifact import verify_artifact
from vla_trainer.export import export_artifact
from vla_trainer.policies import PolicyConfig, make_policy, parameter_count

STATE = ["gantry_x.position", "gantry_x.velocity", "gantry_y.position", "gantry_y.velocity"]


def test_default_policy_is_about_two_million_parameters():
    assert 1.5e6 < parameter_count(make_policy("mlp")) < 2.5e6


def test_export_writes_a_verified_artifact_that_matches_torch(tmp_path):
    torch.manual_seed(0)
    policy = make_policy("mlp", hidden=64, chunk_size=4, action_mean=[0.1, -0.1], action_std=[0.2, 0.2])
    artifact, diff = export_artifact(policy, tmp_path / "models", "bc", "1", fps=10.0, state_names=STATE,
                                     action_names=["vx", "vy"], encoder_id="sentence-transformers/all-MiniLM-L6-v2")
    assert diff < 1e-4
    loaded = verify_artifact(artifact.path)
    assert loaded.manifest["onnx"]["inputs"]["observation.images.top"] == "image_top"
    inputs, outputs, _ = loaded.golden()
    with torch.no_grad():
        again = policy({"top": torch.from_numpy(inputs["image_top"])}, torch.from_numpy(inputs["state"]),
                       torch.from_numpy(inputs["language"])).numpy()
    np.testing.assert_allclose(outputs["action"], again, atol=1e-6)
    weights = load_file(str(artifact.path / "model.safetensors"))
    np.testing.assert_array_equal(weights["action_mean"].numpy(), np.array([0.1, -0.1], np.float32))


def test_config_rejects_mismatched_statistics():
    with pytest.raises(ValueError, match="state_mean has 3 values"):
        PolicyConfig(state_mean=[0.0, 0.0, 0.0])
    with pytest.raises(ValueError, match="unknown policy type 'transformer'"):
        make_policy("transformer")
