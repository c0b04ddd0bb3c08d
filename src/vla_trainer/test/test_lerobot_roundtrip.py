"""Round trip with LeRobot's own code: the workspace writes, LeRobot reads (its default decoder and
delta_timestamps), appends, edits (delete, split, merge) and trains a step; the workspace reads everything LeRobot
wrote back; LeRobot writes its default packed layout and the workspace trains on it. Nothing lost, nothing
misassigned: every frame's picture names its episode and frame.

Slow (minutes: LeRobot imports torch in each step) and skipped unless VLA_LEROBOT_PYTHON points to a Python that
has lerobot, in a venv of its own (it pulls its own torch, which cannot share the workspace's venv):

    python3.12 -m venv /tmp/lerobot-venv && /tmp/lerobot-venv/bin/pip install 'lerobot[dataset]==0.6.1'
    apt-get install ffmpeg          # LeRobot's default video decoder (torchcodec) needs its libraries
    VLA_LEROBOT_PYTHON=/tmp/lerobot-venv/bin/python bash scripts/test.sh src/vla_trainer/test/test_lerobot_roundtrip.py
"""
from __future__ import annotations

import importlib.util
import json
import os
import subprocess
from pathlib import Path

import numpy as np
import pytest

from vla_core.dataset import DatasetReader, DatasetWriter

HERE = Path(__file__).resolve().parent
LEROBOT_PYTHON = os.environ.get("VLA_LEROBOT_PYTHON", "")
pytestmark = [pytest.mark.skipif(
    not LEROBOT_PYTHON, reason="set VLA_LEROBOT_PYTHON to a Python with lerobot installed (its own venv: lerobot "
                               "pulls a torch that cannot share the workspace's); see this file's docstring"),
    pytest.mark.timeout(2400)]  # each LeRobot step starts a Python that imports torch

spec = importlib.util.spec_from_file_location("lerobot_layout", HERE.parents[1] / "vla_core/test/lerobot_layout.py")
F = importlib.util.module_from_spec(spec)
spec.loader.exec_module(F)

FEATURES = {
    "observation.images.top": {"dtype": "video", "shape": [F.H, F.W, 3], "names": ["height", "width", "channels"]},
    "observation.state": {"dtype": "float32", "shape": [4], "names": ["s0", "s1", "s2", "s3"]},
    "action": {"dtype": "float32", "shape": [2], "names": ["a0", "a1"]},
}
LENGTH, DROPPED = 10, (2, 6)  # episode 2 lost its frame 6
# LeRobot's default codec. Its merge concatenates MP4s with the concat demuxer, which refuses h264 files from two
# encoders with different frame reordering (this writer's zero-latency h264 next to LeRobot's h264 with B-frames);
# AV1 streams have none, so a dataset both wrote merges.
CODEC = "libsvtav1"


def lerobot(*args) -> dict:
    proc = subprocess.run([LEROBOT_PYTHON, str(HERE / "lerobot_side.py"), *map(str, args)], capture_output=True,
                          text=True, timeout=900, env={**os.environ, "HF_HUB_OFFLINE": "1"})
    assert proc.returncode == 0, proc.stderr[-3000:]
    return json.loads(proc.stdout.strip().splitlines()[-1])


def record(writer: DatasetWriter, ep: int, colour: int | None = None) -> None:
    colour = ep if colour is None else colour
    episode = writer.begin_episode(f"task number {ep % 3}", contract="robot: fixture")
    for i in range(LENGTH):
        if (ep, i) == DROPPED:
            episode.count_dropped()
            continue
        episode.add_frame({"observation.images.top": F.frame_image(colour, i), "timestamp": i / 10,
                           "observation.state": np.array([colour, i, 0.5, 0.5], np.float32),
                           "action": np.array([colour + 0.25, -i], np.float32),
                           "intervention": i < 3, "late": False, "valid": True})
    episode.save(success=ep % 2 == 0)


def expected_frame(ep: int, i: int) -> int:
    return i - 1 if (ep, i) == DROPPED else i  # the filled slot repeats the previous frame


def assert_workspace_reads(root: Path, colours: list[int], lengths: list[int]) -> DatasetReader:
    reader = DatasetReader(root)
    assert reader.num_episodes == len(colours)
    for ep, (colour, n) in enumerate(zip(colours, lengths)):
        frames = reader.episode_frames(ep)
        seen = [F.identify(img) for img in frames["observation.images.top"]]
        assert [c for c, _ in seen] == [colour] * n, f"{root} episode {ep}: {seen}"
        np.testing.assert_array_equal(frames["observation.state"][:, 0], colour)
    return reader


def test_round_trip_with_lerobot(tmp_path):
    ws = tmp_path / "ws"
    writer = DatasetWriter(ws, 10, FEATURES, codec=CODEC)
    for ep in range(5):
        record(writer, ep)

    # LeRobot reads every frame where it belongs, with its default decoder; the filled slot decodes.
    read = lerobot("read", ws)
    assert read["fps"] == 10 and read["num_episodes"] == 5
    assert [tuple(f) for f in read["frames"]] == [(ep, i, ep, expected_frame(ep, i))
                                                  for ep in range(5) for i in range(LENGTH)]
    assert read["delta_last_pad"] == [False, True, True, True]  # action chunks padded at the episode's end
    assert read["delta_prev_image"] == [4, 8]  # delta_timestamps -1/fps: the previous frame
    assert {"q01", "q10", "q50", "q90", "q99"} <= set(read["stats_keys"])

    # LeRobot appends an episode and reopens; the workspace reads it all, its own labels intact.
    assert lerobot("append", ws, 7) == {"num_episodes": 6, "num_frames": 57}
    reader = assert_workspace_reads(ws, [0, 1, 2, 3, 4, 5], [10] * 5 + [7])
    assert reader.episode(1)["success"] is False and reader.episode(2)["success"] is True
    assert reader.episode(2)["dropped_frames"] == 1 and reader.episode(5)["success"] is None
    assert reader.episode(5)["instruction"] == "appended by lerobot"

    # The workspace appends after LeRobot did, and LeRobot reads the result again.
    record(DatasetWriter(ws, 10, FEATURES, codec=CODEC), 6)
    read = lerobot("read", ws)
    assert sorted({(f[0], f[2]) for f in read["frames"]}) == [(ep, ep) for ep in range(7)]

    # LeRobot's editing tools: delete episode 1, split the rest, merge the halves.
    edits = lerobot("edit", ws, tmp_path / "edit")
    assert edits == {"deleted": 6, "a": 3, "b": 3, "merged": 6}
    kept = [0, 2, 3, 4, 5, 6]
    lengths = [10, 10, 10, 10, 7, 10]
    for root, colours, ns in ((tmp_path / "edit/deleted", kept, lengths), (tmp_path / "edit/split/a", kept[:3],
                              lengths[:3]), (tmp_path / "edit/split/b", kept[3:], lengths[3:]),
                              (tmp_path / "edit/merged", kept, lengths)):
        edited = assert_workspace_reads(root, colours, ns)
        # LeRobot's tools keep per-frame columns (the operator's intervention flags, valid) but not meta/vla:
        # the episode-level labels fall back (instruction from tasks, success unknown).
        frames = edited.episode_frames(0)
        assert frames["intervention"][:3].all() and not frames["intervention"][3:].any()
        assert edited.episode(0)["instruction"] == f"task number {colours[0] % 3}"

    # LeRobot trains a step on the workspace's dataset.
    assert lerobot("train", ws)["finite"]


def test_lerobot_written_dataset_trains_here(tmp_path):
    from vla_trainer.config import build_config
    from vla_trainer.data import DataConfig, load_training_data
    from vla_trainer.train import train
    written = lerobot("write", tmp_path / "lr", 8, LENGTH)
    assert written["episodes"] == 8 and len(written["video_files"]) == 1  # LeRobot's default: one shared MP4
    data = load_training_data(DataConfig(paths=(str(tmp_path / "lr"),), cache_dir=str(tmp_path / "cache"),
                                         val_fraction=0.0))
    for ep, episode in enumerate(data.episodes):
        assert [F.identify(img) for img in episode.images["top"]] == [(ep, i) for i in range(LENGTH)]
    cfg = build_config({"policy": {"type": "mlp", "hidden": 32, "channels": 16, "chunk_size": 4},
                        "data": {"paths": [str(tmp_path / "lr")], "cache_dir": str(tmp_path / "cache"),
                                 "val_fraction": 0.25, "paraphrase": "none"},
                        "train": {"epochs": 1, "max_steps": 2, "batch_size": 8, "bf16": "off", "warmup_steps": 1},
                        "output": {"models_dir": str(tmp_path / "models"), "run_dir": str(tmp_path / "run"),
                                   "version": "1"}})
    assert train(cfg, lambda event: None)["steps"] == 2


def test_the_throughput_comparison_runs_lerobots_own_loop_on_the_same_data():
    """`vla bench train --lerobot-python` (quick): LeRobot's ACT at its default size trains in its own loop on the
    workspace's demonstrations in LeRobot's packed layout, beside the workspace's trainer at the same size."""
    from argparse import Namespace

    from vla_trainer.bench import LEROBOT_ACT_SIZE, bench_train
    said: list[str] = []
    result = bench_train(Namespace(lerobot_python=LEROBOT_PYTHON, quick=True, variant=None), said.append)
    theirs, ours = result["lerobot"], result["workspace"]
    assert theirs["params_m"] > 40  # LeRobot's default ACT (about 52 M parameters), not a toy
    assert ours["params_m"] > 20 and result["lerobot_act"] == LEROBOT_ACT_SIZE
    assert theirs["samples_per_s"] > 0 and ours["samples_per_s"] > 0
    assert theirs["cpu_s_per_sample"] > 0 and ours["cpu_s_per_sample"] > 0
    assert result["cpu_speedup"] == round(theirs["cpu_s_per_sample"] / ours["cpu_s_per_sample"], 3)
    assert result["speedup"] == round(ours["samples_per_s"] / theirs["samples_per_s"], 3)
    assert any("LeRobot" in line and "samples/s" in line for line in said)
