"""Observation history (policy.n_obs_steps): the policies see the last T frames, the sampler gathers them padded
at an episode's start, the artifact declares them, and the policy runner keeps them one per tick and forgets them
on reset, so that what it serves is what the trained policy computes on the same frames."""
from pathlib import Path

import numpy as np
import pytest
import torch

from vla_core.artifact import history_steps, manifest_problems, verify_artifact
from vla_core.contract import RobotContract
from vla_sim.demos import record_scripted_demos
from vla_trainer.config import build_config
from vla_trainer.data import BatchSampler, DataConfig, LanguageTable, load_training_data
from vla_trainer.policies import make_policy
from vla_trainer.train import train

WS = Path(__file__).resolve().parents[3]
CONTRACT = RobotContract.from_yaml(WS / "params" / "robots" / "tabletop_sim.yaml")
TINY = {"mlp": {"hidden": 32, "channels": 16, "chunk_size": 4},
        "act": {"dim": 32, "heads": 2, "ff_dim": 64, "encoder_layers": 1, "decoder_layers": 1, "chunk_size": 4,
                "dropout": 0.0},
        "diffusion": {"chunk_size": 4, "inference_steps": 2, "train_timesteps": 10}}


def _policy(kind: str, steps: int):
    torch.manual_seed(0)
    return make_policy(kind, cameras=("top",), image_size=(16, 16), state_dim=4, action_dim=2, language_dim=8,
                       n_obs_steps=steps, **TINY[kind]).eval()


@pytest.mark.parametrize("kind", sorted(TINY))
def test_every_frame_of_the_history_reaches_the_action(kind):
    policy = _policy(kind, 3)
    images, state, language = torch.rand(2, 3, 3, 16, 16), torch.randn(2, 3, 4), torch.randn(2, 8)
    with torch.no_grad():
        out = policy({"top": images}, state, language)
        assert out.shape == (2, 4, 2)
        older = images.clone()
        older[:, 0] = torch.rand(2, 3, 16, 16)  # only the oldest frame differs
        assert not torch.allclose(policy({"top": older}, state, language), out)
        past = state.clone()
        past[:, 0] += 1.0  # only the oldest state differs
        assert not torch.allclose(policy({"top": images}, past, language), out)
    # a sample's frames are encoded apart from the other samples': the batch does not mix histories
    with torch.no_grad():
        single = policy({"top": images[:1]}, state[:1], language[:1])
    torch.testing.assert_close(single, out[:1], atol=1e-5, rtol=1e-4)


@pytest.mark.parametrize("kind", sorted(TINY))
def test_without_history_the_weights_are_those_of_before(kind):
    assert set(_policy(kind, 1).state_dict()) <= set(_policy(kind, 2).state_dict())
    assert "time_embed" not in _policy(kind, 1).state_dict()
    with pytest.raises(ValueError, match=r"n_obs_steps 0 must be in \[1, 16\]"):
        _policy(kind, 0)


@pytest.fixture(scope="module")
def demos(tmp_path_factory):
    root = tmp_path_factory.mktemp("data") / "demos"
    assert record_scripted_demos(root, CONTRACT, episodes=3, noise_std=0.05)["episodes"] == 3
    return root


def test_the_sampler_gathers_each_samples_last_frames_padded_at_the_episode_start(demos, tmp_path):
    data = load_training_data(DataConfig(paths=(str(demos),), cache_dir=str(tmp_path / "cache")))
    language = LanguageTable(data.instructions, "none", lambda t: np.zeros(8, np.float32))
    sampler = BatchSampler(data, [0, 1], 4, language, history=3)
    first = len(data.episodes[0])
    frames = np.array([0, 1, 5, first, first + 1])  # episode 0's frames 0, 1, 5; episode 1's frames 0, 1
    batch = sampler.gather(frames, False, np.random.default_rng(0))
    assert batch["images"]["top"].shape == (5, 3, 96, 96, 3) and batch["state"].shape == (5, 3, 4)
    expected = [[0, 0, 0], [0, 0, 1], [3, 4, 5], [first] * 3, [first, first, first + 1]]
    for row, seen in enumerate(expected):
        np.testing.assert_array_equal(batch["state"][row], sampler.state[seen])
        np.testing.assert_array_equal(batch["images"]["top"][row], sampler.images["top"][seen])
    # the action chunk and the padding are those of the sample's own (current) frame, as without history
    plain = BatchSampler(data, [0, 1], 4, language).gather(frames, False, np.random.default_rng(0))
    np.testing.assert_array_equal(batch["action"], plain["action"])
    np.testing.assert_array_equal(batch["state"][:, -1], plain["state"])


def test_the_planar_symmetries_turn_every_frame_of_a_history_alike(demos, tmp_path):
    from vla_trainer.data import PlanarSymmetry
    data = load_training_data(DataConfig(paths=(str(demos),), cache_dir=str(tmp_path / "cache")))
    language = LanguageTable(data.instructions, "none", lambda t: np.zeros(8, np.float32))
    frames = np.arange(1, len(data.episodes[0]))  # within episode 0, none its first frame
    history = BatchSampler(data, [0, 1], 4, language, history=2).gather(frames, False, np.random.default_rng(0))
    single = BatchSampler(data, [0, 1], 4, language).gather(frames, False, np.random.default_rng(0))
    previous = BatchSampler(data, [0, 1], 4, language).gather(frames - 1, False, np.random.default_rng(0))
    symmetry = PlanarSymmetry(data)
    for batch in (history, single, previous):
        symmetry.apply(batch, np.random.default_rng(7))  # the same symmetry for each sample in all three
    for t, plain in ((1, single), (0, previous)):
        np.testing.assert_array_equal(history["images"]["top"][:, t], plain["images"]["top"])
        np.testing.assert_array_equal(history["state"][:, t], plain["state"])
    np.testing.assert_array_equal(history["action"], single["action"])


def config(demos, tmp_path, policy, algorithm="bc", **policy_options):
    return build_config({
        "policy": {"type": policy, **TINY[policy], **policy_options},
        "algorithm": {"type": algorithm},
        "data": {"paths": [str(demos)], "cache_dir": str(tmp_path / "cache"), "val_fraction": 0.34,
                 "symmetry": "planar_xy"},
        "train": {"epochs": 1, "max_steps": 3, "batch_size": 8, "bf16": "off", "warmup_steps": 1},
        "output": {"models_dir": str(tmp_path / "models"), "run_dir": str(tmp_path / "run"), "version": "1"}})


@pytest.mark.parametrize("kind", sorted(TINY))
def test_a_history_policy_trains_exports_and_the_runner_serves_what_it_computes(demos, tmp_path, kind):
    from vla_policy.runner import PolicyRunner
    from vla_policy.runtime import load_policy
    result = train(config(demos, tmp_path, kind, n_obs_steps=2))
    rows = (tmp_path / "run" / "metrics.csv").read_text().splitlines()
    assert np.isfinite(float(rows[-1].split(",")[rows[0].split(",").index("train/loss")]))
    manifest = verify_artifact(Path(result["artifact"])).manifest
    assert manifest["history"] == {"n_obs_steps": 2, "features": ["observation.images.top", "observation.state"],
                                   "padding": "first"}
    loaded = load_policy(result["artifact"], tmp_path / "models", CONTRACT,
                         manifest["features"]["observation.language"]["encoder_id"], ["onnxruntime-cpu"])
    runner = PolicyRunner(loaded)
    rng = np.random.default_rng(1)
    language = rng.standard_normal(384).astype(np.float32)
    language /= np.linalg.norm(language)
    frames = [{"observation.images.top": rng.integers(0, 256, (96, 96, 3), dtype=np.uint8),
               "observation.state": rng.standard_normal(4).astype(np.float32),
               "observation.language": language} for _ in range(3)]

    def torch_chunk(seen: list[int]) -> np.ndarray:  # the trained policy on the frames ``seen``, oldest first
        weights = verify_artifact(Path(result["artifact"])).manifest["weights"]["config"]
        policy = make_policy(kind, **{k: v for k, v in weights.items()})
        from safetensors.torch import load_file
        policy.load_state_dict(load_file(str(Path(result["artifact"]) / "model.safetensors")))
        policy.eval()
        images = torch.stack([torch.from_numpy(frames[i]["observation.images.top"]).permute(2, 0, 1).float() / 255
                              for i in seen])[None]
        state = torch.stack([torch.from_numpy(frames[i]["observation.state"]) for i in seen])[None]
        with torch.no_grad():
            return policy({"top": images}, state, torch.from_numpy(language)[None])[0].numpy()

    first = runner.feeds(frames[0])  # the first tick: the first frame stands in for the missing past
    assert first["image_top"].shape == (1, 2, 3, 96, 96) and first["state"].shape == (1, 2, 4)
    np.testing.assert_array_equal(first["state"][0, 0], first["state"][0, 1])
    second = runner.feeds(frames[1])
    np.testing.assert_array_equal(second["state"][0], np.stack([frames[0]["observation.state"],
                                                                frames[1]["observation.state"]]))
    np.testing.assert_allclose(loaded.infer(second), torch_chunk([0, 1]), atol=1e-4)
    runner.reset()  # an episode's start: nothing of the last one is seen
    after = runner.feeds(frames[2])
    np.testing.assert_array_equal(after["state"][0], np.stack([frames[2]["observation.state"]] * 2))
    np.testing.assert_allclose(loaded.infer(after), torch_chunk([2, 2]), atol=1e-4)
    # step(): one observation a tick enters the history whether the tick infers or not
    runner.reset()
    for tick, frame in enumerate(frames):
        assert runner.step(tick, frame) is not None
    assert len(runner.history) == 2


def test_critic_algorithms_refuse_a_history_with_the_fix(demos, tmp_path):
    with pytest.raises(ValueError, match="algorithm.type=iql learns from single observations; set "
                                         "policy.n_obs_steps=1"):
        train(config(demos, tmp_path, "mlp", algorithm="iql", n_obs_steps=2))


def test_the_manifest_history_is_checked():
    features = {"observation.state": {"dtype": "float32", "shape": [4]}, "action": {"dtype": "float32",
                                                                                     "shape": [2]}}
    good = {"n_obs_steps": 2, "features": ["observation.state"], "padding": "first"}
    assert history_steps({"history": good}) == {"observation.state": 2}
    assert history_steps({}) == {}

    def problems(history):
        return [p for p in manifest_problems({"features": features, "history": history}) if "history" in p]
    assert problems(good) == []
    assert problems({**good, "n_obs_steps": 1}) == ["history.n_obs_steps 1 must be an integer in [2, 64]"]
    assert problems({**good, "features": ["action"]}) == ["history.features: action has no history "
                                                          "(observations only)"]
    assert problems({**good, "features": ["observation.images.side"]})[0].startswith(
        "history.features: 'observation.images.side' is not one of")
    assert problems({**good, "padding": "zeros"})[0].startswith("history.padding 'zeros' must be one of first")
    assert problems([2])[0].startswith("history must be a mapping")
    unfed = manifest_problems({"features": features, "history": good, "onnx": {"inputs": {}}})
    assert "history.features: 'observation.state' is no input of the model (onnx.inputs)" in unfed
