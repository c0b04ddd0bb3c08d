"""The auxiliary environment-state loss (policy.aux_env_state) on real datasets: demonstrations that record where the
instruction's objects are, training that predicts them from the image keypoints, and an artifact that is the same
policy to serve (it neither takes nor outputs the environment state)."""
from pathlib import Path

import numpy as np
import onnx
import pytest

from vla_core.contract import RobotContract
from vla_core.dataset import DatasetReader
from vla_core.features import ENV_STATE
from vla_sim.backends import PRESETS, make_backend
from vla_sim.demos import record_scripted_demos
from vla_trainer.config import build_config
from vla_trainer.data import BatchSampler, DataConfig, LanguageTable, PlanarSymmetry, load_training_data
from vla_trainer.train import train

WS = Path(__file__).resolve().parents[3]
CONTRACT = RobotContract.from_yaml(WS / "params" / "robots" / "tabletop_sim.yaml")
TINY = {"mlp": {"hidden": 32, "channels": 16, "chunk_size": 4},
        "act": {"dim": 32, "heads": 2, "ff_dim": 64, "encoder_layers": 1, "decoder_layers": 1, "chunk_size": 4},
        "diffusion": {"chunk_size": 4, "inference_steps": 2, "train_timesteps": 10}}


@pytest.fixture(scope="module")
def demos(tmp_path_factory):
    root = tmp_path_factory.mktemp("data") / "demos"
    assert record_scripted_demos(root, CONTRACT, episodes=4, noise_std=0.08, environment_state=True)["episodes"] == 4
    return root


def config(demos, tmp_path, policy, **policy_options):
    return build_config({
        "policy": {"type": policy, **TINY[policy], **policy_options},
        "data": {"paths": [str(demos)], "cache_dir": str(tmp_path / "cache"), "val_fraction": 0.25,
                 "symmetry": "planar_xy"},
        "train": {"epochs": 1, "max_steps": 3, "batch_size": 8, "bf16": "off", "warmup_steps": 1},
        "output": {"models_dir": str(tmp_path / "models"), "run_dir": str(tmp_path / "run"), "version": "1"}})


def test_demonstrations_record_where_the_instructions_objects_are(demos):
    reader = DatasetReader(demos, decode_images=False)
    assert reader.features[ENV_STATE]["names"] == ["target_block.x", "target_block.y", "target_zone.x",
                                                   "target_zone.y"]
    backend = make_backend(dict(PRESETS["tabletop"]))
    try:
        for ep in range(reader.num_episodes):
            env = np.asarray(reader.episode_frames(ep)[ENV_STATE], np.float64)
            backend.reset(ep)  # the expert succeeded on every seed: episode i is seed i
            np.testing.assert_allclose(env[0], backend.task_state(), atol=1e-6)
            assert np.ptp(env[:, 2:], axis=0).max() < 1e-6  # the zone stays where it is
            assert np.hypot(*(env[-1, :2] - env[0, :2])) > 0.01  # the block is pushed
    finally:
        backend.close()


@pytest.mark.parametrize("policy", sorted(TINY))
def test_the_auxiliary_loss_trains_and_the_artifact_serves_as_before(demos, tmp_path, policy, act_as_deployed):
    result = train(config(demos, tmp_path, policy, aux_env_state=1.0))
    rows = (tmp_path / "run" / "metrics.csv").read_text().splitlines()
    header, last = rows[0].split(","), rows[-1].split(",")
    assert float(last[header.index("train/aux_env_state")]) > 0
    plain = train(config(demos, tmp_path / "plain", policy))
    graphs = [onnx.load(str(Path(r["artifact"]) / "policy.onnx")).graph for r in (result, plain)]
    assert [[(i.name, i.type) for i in g.input] for g in graphs][0] == [(i.name, i.type) for i in graphs[1].input]
    assert [o.name for o in graphs[0].output] == [o.name for o in graphs[1].output]
    chunk = act_as_deployed(result["artifact"], tmp_path / "models")
    assert chunk.shape == (4, 2) and np.all(np.isfinite(chunk))


def test_the_auxiliary_loss_without_environment_state_says_what_to_do(tmp_path):
    root = tmp_path / "plain"
    record_scripted_demos(root, CONTRACT, episodes=2)
    with pytest.raises(ValueError, match=r"policy.aux_env_state needs observation.environment_state.*aux_env_state=0"):
        train(config(root, tmp_path, "mlp", aux_env_state=1.0))


def test_planar_symmetry_turns_the_environment_state_with_the_table(demos):
    data = load_training_data(DataConfig(paths=[str(demos)], val_fraction=0.0))
    sampler = BatchSampler(data, data.train_episodes, 4, LanguageTable(data.instructions, "none",
                                                                       lambda t: np.zeros(8, np.float32)))
    rng = np.random.default_rng(0)
    batch = sampler.gather(sampler.samples[:64], False, rng)
    x, y = data.state_names.index("gantry_x.position"), data.state_names.index("gantry_y.position")
    # Put the pusher where the block and the zone are: every symmetry must then keep them together.
    batch["env_state"] = np.concatenate([batch["state"][:, [x, y]]] * 2, axis=1).astype(np.float32)
    PlanarSymmetry(data).apply(batch, rng)
    np.testing.assert_array_equal(batch["env_state"][:, :2], batch["state"][:, [x, y]])
    np.testing.assert_array_equal(batch["env_state"][:, 2:], batch["state"][:, [x, y]])
    assert not np.allclose(batch["state"][:, [x, y]], sampler.state[sampler.samples[:64]][:, [x, y]])


@pytest.mark.parametrize("policy", sorted(TINY))
def test_the_estimate_as_input_is_served_from_the_cameras_and_trained_by_its_own_loss(demos, tmp_path, policy,
                                                                                     act_as_deployed):
    import torch

    from vla_trainer.policies import make_policy
    dims = {"cameras": ("top",), "image_size": (96, 96), "state_dim": 4, "language_dim": 8, "action_dim": 2,
            "env_state_dim": 4}
    model = make_policy(policy, **TINY[policy], **dims, aux_env_state=1.0, env_state_input=True)
    torch.manual_seed(0)
    batch = {"images": {"top": torch.rand(3, 3, 96, 96)}, "state": torch.randn(3, 4), "language": torch.randn(3, 8),
             "action": torch.randn(3, 4, 2), "action_pad": torch.zeros(3, 4, dtype=torch.bool),
             "env_state": torch.randn(3, 4)}
    # The action loss does not train the estimate (it enters the policy detached); the auxiliary loss does.
    action_loss = model.compute_loss({k: v for k, v in batch.items() if k != "env_state"})["loss"]
    grads = torch.autograd.grad(action_loss, list(model.env_state_predictor.parameters()), allow_unused=True)
    assert all(g is None or not g.any() for g in grads)
    grads = torch.autograd.grad(model.compute_loss(batch)["loss"], list(model.env_state_predictor.parameters()))
    assert any(g.abs().sum() > 0 for g in grads)
    # The policy acts on the estimate: the same images, state and instruction with another estimator act otherwise.
    model.eval()
    with torch.no_grad():
        before = model(batch["images"], batch["state"], batch["language"])
        model.env_state_predictor[-1].bias.add_(5.0)
        after = model(batch["images"], batch["state"], batch["language"])
    assert not torch.allclose(before, after)
    # Trained and exported: the artifact's inputs are the plain policy's.
    result = train(config(demos, tmp_path, policy, aux_env_state=1.0, env_state_input=True))
    plain = train(config(demos, tmp_path / "plain", policy))
    graphs = [onnx.load(str(Path(r["artifact"]) / "policy.onnx")).graph for r in (result, plain)]
    assert [(i.name, i.type) for i in graphs[0].input] == [(i.name, i.type) for i in graphs[1].input]
    chunk = act_as_deployed(result["artifact"], tmp_path / "models")
    assert chunk.shape == (4, 2) and np.all(np.isfinite(chunk))


def test_the_estimate_as_input_needs_the_auxiliary_loss():
    from vla_trainer.policies import make_policy
    with pytest.raises(ValueError, match="env_state_input takes the estimate the auxiliary loss trains"):
        make_policy("mlp", env_state_input=True)
