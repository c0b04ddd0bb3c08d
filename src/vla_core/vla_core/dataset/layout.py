"""LeRobotDataset v3.0 layout: paths, meta/info.json, statistics, and crash-safe file replacement.

A dataset directory holds::

    meta/info.json                          codebase_version "v3.0", fps, features, path templates, totals
    meta/stats.json                         per-feature min/max/mean/std/count over every valid frame
    meta/tasks.parquet                      task (index) -> task_index
    meta/episodes/chunk-000/file-000.parquet  one row per finished episode (the commit point)
    data/chunk-XXX/file-XXX.parquet         frames
    videos/<video_key>/chunk-XXX/file-XXX.mp4  one stream per camera

Every file is replaced by writing a temporary sibling, fsync and ``os.replace``, so a reader never sees a
half-written file. The episodes table is the commit point: an episode exists once its row is there.
"""
from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import numpy as np

CODEBASE_VERSION = "v3.0"
INFO_PATH = "meta/info.json"
STATS_PATH = "meta/stats.json"
TASKS_PATH = "meta/tasks.parquet"
EPISODES_PATH = "meta/episodes/chunk-{chunk_index:03d}/file-{file_index:03d}.parquet"
DATA_PATH = "data/chunk-{chunk_index:03d}/file-{file_index:03d}.parquet"
VIDEO_PATH = "videos/{video_key}/chunk-{chunk_index:03d}/file-{file_index:03d}.mp4"
STAGING_DIR = ".staging"
DEFAULT_CHUNKS_SIZE = 1000
DEFAULT_DATA_FILE_SIZE_IN_MB = 100
DEFAULT_VIDEO_FILE_SIZE_IN_MB = 500

# Columns every frame has (LeRobot's defaults) and the recorder's own per-frame flags.
DEFAULT_FEATURES: dict[str, dict[str, Any]] = {
    "timestamp": {"dtype": "float32", "shape": [1], "names": None},
    "frame_index": {"dtype": "int64", "shape": [1], "names": None},
    "episode_index": {"dtype": "int64", "shape": [1], "names": None},
    "index": {"dtype": "int64", "shape": [1], "names": None},
    "task_index": {"dtype": "int64", "shape": [1], "names": None},
}
FLAG_FEATURES: dict[str, dict[str, Any]] = {
    # An operator (or scripted corrector) was commanding during this frame (DAgger labels).
    "intervention": {"dtype": "bool", "shape": [1], "names": None},
    # A source was older than the tolerance or arrived after the frame's deadline; the values are real.
    "late": {"dtype": "bool", "shape": [1], "names": None},
    # False when state or action is missing or non-finite: train on valid frames only.
    "valid": {"dtype": "bool", "shape": [1], "names": None},
}


class DatasetError(ValueError):
    """A dataset that cannot be opened or written as asked; the message names the file and the fix."""


def chunk_file(index: int, chunks_size: int) -> tuple[int, int]:
    """(chunk_index, file_index) of the ``index``-th file."""
    return index // chunks_size, index % chunks_size


def video_keys(features: dict) -> list[str]:
    return [k for k, f in features.items() if f.get("dtype") == "video"]


def atomic_write_bytes(path: Path, data: bytes) -> None:
    """Write ``data`` to ``path`` so that a crash leaves either the old file or the new one, never a mix."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp-{os.getpid()}")
    with open(tmp, "wb") as f:
        f.write(data)
        f.flush()
        os.fsync(f.fileno())
    os.replace(tmp, path)
    fsync_dir(path.parent)


def atomic_write_json(path: Path, obj: Any) -> None:
    atomic_write_bytes(path, (json.dumps(obj, indent=4, ensure_ascii=False) + "\n").encode())


def fsync_file(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def fsync_dir(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY | getattr(os, "O_DIRECTORY", 0))
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def make_info(fps: float, features: dict, robot_type: str, chunks_size: int = DEFAULT_CHUNKS_SIZE) -> dict:
    """A fresh meta/info.json for an empty dataset."""
    return {
        "codebase_version": CODEBASE_VERSION,
        "robot_type": robot_type,
        "total_episodes": 0,
        "total_frames": 0,
        "total_tasks": 0,
        "chunks_size": chunks_size,
        "data_files_size_in_mb": DEFAULT_DATA_FILE_SIZE_IN_MB,
        "video_files_size_in_mb": DEFAULT_VIDEO_FILE_SIZE_IN_MB,
        "fps": fps,
        "splits": {},
        "data_path": DATA_PATH,
        "video_path": VIDEO_PATH,
        "features": features,
    }


STAT_NAMES = ("min", "max", "mean", "std", "count")


def episode_stats(values: np.ndarray) -> dict[str, np.ndarray]:
    """Per-dimension min/max/mean/std over the first axis of (N, D) ``values`` (N may be 0)."""
    values = np.asarray(values, dtype=np.float64)
    if values.ndim == 1:
        values = values[:, None]
    n = values.shape[0]
    if n == 0:
        nan = np.full(values.shape[1], np.nan)
        return {"min": nan, "max": nan, "mean": nan, "std": nan, "count": np.array([0])}
    return {"min": values.min(0), "max": values.max(0), "mean": values.mean(0), "std": values.std(0),
            "count": np.array([n])}


def aggregate_stats(per_episode: list[dict[str, dict[str, np.ndarray]]]) -> dict[str, dict[str, list]]:
    """Combine per-episode stats (pooled mean and variance, weighted by frame count) into stats.json form."""
    out: dict[str, dict[str, list]] = {}
    keys = sorted({k for ep in per_episode for k in ep})
    for key in keys:
        parts = [ep[key] for ep in per_episode if key in ep and int(np.asarray(ep[key]["count"])[0]) > 0]
        if not parts:
            continue
        counts = np.array([float(np.asarray(p["count"])[0]) for p in parts])
        means = np.stack([np.asarray(p["mean"], dtype=np.float64) for p in parts])
        stds = np.stack([np.asarray(p["std"], dtype=np.float64) for p in parts])
        total = counts.sum()
        w = counts.reshape((-1,) + (1,) * (means.ndim - 1))
        mean = (w * means).sum(0) / total
        var = (w * (stds ** 2 + (means - mean) ** 2)).sum(0) / total
        out[key] = {
            "min": np.min(np.stack([np.asarray(p["min"]) for p in parts]), 0).tolist(),
            "max": np.max(np.stack([np.asarray(p["max"]) for p in parts]), 0).tolist(),
            "mean": mean.tolist(), "std": np.sqrt(var).tolist(), "count": [int(total)],
        }
    return out
