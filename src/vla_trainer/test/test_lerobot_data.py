"""Training data from datasets in LeRobot's own layouts: each episode trains on its own frames, whatever the layout
(many episodes per MP4 and parquet, list<float> vectors, observation.image, images in parquet), cached or not."""
from __future__ import annotations

import importlib.util
from pathlib import Path

import numpy as np
import pytest

from vla_trainer.config import build_config
from vla_trainer.data import DataConfig, load_training_data
from vla_trainer.train import train

FIXTURE = Path(__file__).resolve().parents[2] / "vla_core" / "test" / "lerobot_layout.py"


@pytest.fixture(scope="module")
def F():
    spec = importlib.util.spec_from_file_location("lerobot_layout", FIXTURE)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def check_episodes(F, data, lengths):
    assert [len(e) for e in data.episodes] == lengths
    for ep, episode in enumerate(data.episodes):
        (images,) = episode.images.values()
        seen = [F.identify(img) for img in images]
        assert [e for e, _ in seen] == [ep] * lengths[ep], f"episode {ep} trains on the images of {seen}"
        assert [f for _, f in seen] == list(range(lengths[ep]))
        np.testing.assert_array_equal(episode.state[:, 0], ep)


@pytest.mark.parametrize("lengths", [[10] * 8, [9, 12, 7, 11, 10, 8, 12, 9]], ids=["equal", "unequal"])
def test_episodes_sharing_one_video_train_on_their_own_frames(F, tmp_path, lengths):
    root = F.write_lerobot_dataset(tmp_path / "ds", lengths, episodes_per_file=5)
    cfg = DataConfig(paths=(str(root),), cache_dir=str(tmp_path / "cache"), val_fraction=0.0)
    check_episodes(F, load_training_data(cfg), lengths)
    assert len(list((tmp_path / "cache").glob("*.npy"))) == len(lengths)  # one cache entry per episode
    check_episodes(F, load_training_data(cfg), lengths)  # from the cache: still each episode's own


def test_list_float_vectors_load(F, tmp_path):
    lengths = [8, 9, 10]
    root = F.write_lerobot_dataset(tmp_path / "ds", lengths, episodes_per_file=2, vectors="list")
    data = load_training_data(DataConfig(paths=(str(root),), cache_dir=str(tmp_path / "cache"), val_fraction=0.0))
    check_episodes(F, data, lengths)
    assert data.episodes[0].action.dtype == np.float32 and data.episodes[0].action.shape == (8, 2)


@pytest.mark.parametrize("variant", [{"camera": "observation.image"}, {"storage": "image"}],
                         ids=["observation.image", "images-in-parquet"])
def test_lerobot_camera_variants_load_and_train_a_step(F, tmp_path, variant):
    lengths = [8, 9, 10]
    root = F.write_lerobot_dataset(tmp_path / "ds", lengths, episodes_per_file=2, **variant)
    data = load_training_data(DataConfig(paths=(str(root),), cache_dir=str(tmp_path / "cache"), val_fraction=0.0))
    check_episodes(F, data, lengths)
    assert data.cameras == (("image",) if variant.get("camera") else ("top",))
    cfg = build_config({"policy": {"type": "mlp", "hidden": 32, "channels": 16, "chunk_size": 4},
                        "data": {"paths": [str(root)], "cache_dir": str(tmp_path / "cache"), "val_fraction": 0.34,
                                 "paraphrase": "none"},
                        "train": {"epochs": 1, "max_steps": 2, "batch_size": 8, "bf16": "off", "warmup_steps": 1},
                        "output": {"models_dir": str(tmp_path / "models"), "run_dir": str(tmp_path / "run"),
                                   "version": "1"}})
    result = train(cfg, lambda event: None)
    assert result["steps"] == 2 and Path(result["artifact"]).is_dir()
