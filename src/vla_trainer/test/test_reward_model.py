"""The learned reward (vla_trainer.rl.reward): labels from episode success, a classifier that learns a separable
toy set, precision/recall on held-out episodes of a dataset recorded by the workspace's scripted-demo recorder, and a
reward artifact that onnxruntime serves like torch, that checks its checksums and contract, and that the policy
loader refuses."""
import hashlib
import json
from pathlib import Path

import numpy as np
import pytest
import torch

from vla_core.artifact import ArtifactError, verify_artifact
from vla_core.contract import RobotContract
from vla_trainer.data import Episode
from vla_trainer.rl.reward import (RewardModel, SuccessClassifier, SuccessClassifierConfig, export_reward_model,
                                   fit_classifier, frame_labels, precision_recall, predict)

WS = Path(__file__).resolve().parents[3]
CONTRACT = RobotContract.from_yaml(WS / "params" / "robots" / "tabletop_sim.yaml")
TOY = SuccessClassifierConfig(image_size=(16, 16), state_dim=2, language_dim=8, channels=8, hidden=32)


@pytest.fixture(autouse=True)
def _threads():
    torch.set_num_threads(1)


def _embed(text: str) -> np.ndarray:
    """A fixed embedding per text (the tests' stand-in for MiniLM, which the policy tests exercise)."""
    v = np.random.default_rng(int(hashlib.sha256(text.encode()).hexdigest()[:8], 16)).standard_normal(384)
    return (v / np.linalg.norm(v)).astype(np.float32)


def toy_set(n, seed):
    """Frames where success shows as a bright square in the image (the state is noise): separable from pixels."""
    rng = np.random.default_rng(seed)
    labels = rng.random(n) < 0.3
    images = rng.integers(0, 100, (n, 16, 16, 3), dtype=np.uint8)
    for i in np.flatnonzero(labels):
        r, c = rng.integers(0, 10, 2)
        images[i, r:r + 6, c:c + 6] = 250
    return {"images": {"top": images}, "state": rng.normal(size=(n, 2)).astype(np.float32),
            "language": np.tile(rng.normal(size=(1, 8)).astype(np.float32), (n, 1))}, labels


def test_the_classifier_learns_a_separable_toy_set():
    model = SuccessClassifier(TOY)
    arrays, labels = toy_set(200, 0)
    fit_classifier(model, arrays, labels, steps=120, batch_size=32, lr=3e-3, image_shift=0)
    held, held_labels = toy_set(100, 1)
    report = precision_recall(predict(model, held), held_labels)
    assert report["precision"] >= 0.9 and report["recall"] >= 0.9, report
    assert report["tp"] + report["fn"] == int(held_labels.sum()) and report["frames"] == 100


def test_precision_recall_counts_and_undefined_values():
    r = precision_recall(np.array([0.9, 0.8, 0.2, 0.6, 0.1]), np.array([1, 0, 1, 1, 0], bool))
    assert (r["tp"], r["fp"], r["fn"], r["tn"]) == (2, 1, 1, 1)
    assert r["precision"] == pytest.approx(2 / 3) and r["recall"] == pytest.approx(2 / 3)
    assert r["auc"] == pytest.approx(4 / 6)  # of the 3 x 2 (success, other) pairs, 4 are ordered right
    none = precision_recall(np.zeros(3), np.zeros(3, bool))
    assert none["precision"] is None and none["recall"] is None  # never a made-up number


def test_labels_come_from_episode_success():
    def episode(success, valid=None):
        n = 6
        return Episode("d", 0, "push", {}, np.zeros((n, 2), np.float32), np.zeros((n, 2), np.float32),
                       np.ones(n, bool) if valid is None else valid, np.zeros(n, bool), success)
    assert frame_labels(episode(True), 2).tolist() == [False] * 4 + [True] * 2
    assert not frame_labels(episode(False), 2).any()
    assert frame_labels(episode(None), 2) is None
    # the last *valid* frames are the success frames: a dropped last frame is no label
    assert frame_labels(episode(True, np.array([1, 1, 1, 1, 1, 0], bool)), 2).tolist() == \
        [False, False, False, True, True, False]
    with pytest.raises(ValueError, match="positive_frames 0 must be at least 1"):
        frame_labels(episode(True), 0)


def test_fit_refuses_a_set_without_both_classes():
    arrays, _ = toy_set(10, 0)
    with pytest.raises(ValueError, match="needs both classes; got 0 success and 10 other frames"):
        fit_classifier(SuccessClassifier(TOY), arrays, np.zeros(10, bool), steps=1)


@pytest.fixture(scope="module")
def recorded(tmp_path_factory):
    """Eight scripted episodes recorded by the workspace; the recorder's failure mark on one of them."""
    from vla_core.dataset import DatasetWriter
    from vla_sim.demos import record_scripted_demos
    root = tmp_path_factory.mktemp("reward") / "demos"
    assert record_scripted_demos(root, CONTRACT, episodes=8, seed_start=0)["episodes"] == 8
    DatasetWriter(root, CONTRACT.fps, CONTRACT.features(), robot_type=CONTRACT.robot).set_success(2, False)
    return root


def test_precision_and_recall_on_held_out_recorded_episodes(recorded, tmp_path):
    from vla_trainer.data import DataConfig, LanguageTable, load_training_data
    from vla_trainer.rl.reward import train_success_classifier
    data = load_training_data(DataConfig(paths=(str(recorded),), cache_dir=str(tmp_path / "cache"),
                                         val_fraction=0.25))
    assert [e.success for e in data.episodes].count(False) == 1  # the failure mark reached the labels
    language = LanguageTable(data.instructions, "none", _embed)
    model, report = train_success_classifier(data, language, steps=80, batch_size=16, channels=8, hidden=32,
                                             image_downsample=2)
    held = report["held_out"]
    assert held["episodes"] == len(data.val_episodes) == 2 and report["train"]["episodes"] == 6
    val = [data.episodes[i] for i in data.val_episodes]
    assert held["frames"] == sum(int(e.valid.sum()) for e in val)
    assert held["tp"] + held["fn"] == held["positives"] == 3 * sum(bool(e.success) for e in val)
    assert held["recall"] is not None and 0.0 <= held["recall"] <= 1.0
    # learned, not guessed: success frames of unseen episodes score higher than the others
    assert held["mean_probability_success_frames"] > held["mean_probability_other_frames"], held
    assert held["auc"] > 0.5, held
    failed = next(e for e in data.episodes if e.success is False)
    assert not frame_labels(failed).any()


def test_the_reward_artifact_serves_like_torch_and_is_never_a_policy(tmp_path):
    config = SuccessClassifierConfig(image_size=(96, 96), state_dim=4, language_dim=384, channels=8, hidden=32,
                                     image_downsample=2)
    model = SuccessClassifier(config).eval()
    path = export_reward_model(model, tmp_path / "models", "success", "1", fps=CONTRACT.fps,
                               state_names=list(CONTRACT.state.names), encoder_id="all-MiniLM-L6-v2",
                               threshold=0.6, report={"held_out": {"precision": 1.0}})
    served = RewardModel(path, CONTRACT, "all-MiniLM-L6-v2")
    rng = np.random.default_rng(0)
    images = {"top": rng.integers(0, 256, (3, 96, 96, 3), dtype=np.uint8)}
    state, language = rng.normal(size=(3, 4)).astype(np.float32), rng.normal(size=(3, 384)).astype(np.float32)
    from vla_core.observation import to_chw_float
    with torch.no_grad():
        expected = model.probability({"top": torch.from_numpy(to_chw_float(images["top"]))},
                                     torch.from_numpy(state), torch.from_numpy(language)).numpy()
    assert np.allclose(served.probability(images, state, language), expected, atol=1e-5)  # a batch of 3
    reward, success = served.reward(images, state, language)
    assert np.array_equal(success, expected >= 0.6) and np.array_equal(reward, success.astype(np.float32))
    with pytest.raises(ArtifactError, match="format"):
        verify_artifact(path)  # the policy node's check: a reward model is never deployed as a policy
    with pytest.raises(ArtifactError, match="already exists"):
        export_reward_model(model, tmp_path / "models", "success", "1", fps=10.0, state_names=[], encoder_id="x")
    with pytest.raises(ArtifactError, match="does not fit robot contract 'sim_arm'"):
        RewardModel(path, RobotContract.from_yaml(WS / "params" / "robots" / "sim_arm.yaml"))
    with pytest.raises(ArtifactError, match="instruction embeddings"):
        RewardModel(path, CONTRACT, "another-encoder")
    (path / "reward.onnx").write_bytes((path / "reward.onnx").read_bytes() + b"\0")
    with pytest.raises(ArtifactError, match="reward.onnx does not match its sha256"):
        RewardModel(path)
    manifest = json.loads((path / "manifest.json").read_text())
    assert manifest["threshold"] == 0.6 and manifest["evaluation"]["held_out"]["precision"] == 1.0
