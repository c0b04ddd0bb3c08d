"""LeRobotDataset v3.0 layout: paths, meta/info.json, statistics, and crash-safe file replacement.

A dataset directory holds::

    meta/info.json                          codebase_version "v3.0", fps (an integer), features, path templates
    meta/stats.json                         per-feature min/max/mean/std/count/q01/q10/q50/q90/q99
    meta/tasks.parquet                      task (index) -> task_index
    meta/episodes/chunk-000/file-000.parquet  one row per finished episode (the commit point), LeRobot's
                                            columns only, so that LeRobot can append to the table and reopen it
    meta/vla/episodes.parquet               the workspace's own per-episode fields (instruction, success label,
                                            late/dropped/invalid/intervention counts, contract ...), keyed by
                                            episode_index and checked against length and dataset_from_index
    data/chunk-XXX/file-XXX.parquet         frames (one or many episodes per file)
    videos/<video_key>/chunk-XXX/file-XXX.mp4  one stream per camera (one or many episodes per file, each
                                            located by videos/<key>/from_timestamp and to_timestamp)

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
# LeRobot's tools (delete, split, merge) rebuild meta/episodes with their own columns and do not copy this file:
# a dataset they wrote has no sidecar, and the reader falls back to what LeRobot keeps (tasks, per-frame flags).
SIDECAR_PATH = "meta/vla/episodes.parquet"
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


def image_keys(features: dict) -> list[str]:
    """Cameras stored in the parquet files themselves (LeRobot's ``dtype: image``: struct {bytes, path})."""
    return [k for k, f in features.items() if f.get("dtype") == "image"]


def camera_keys(features: dict) -> list[str]:
    return [k for k, f in features.items() if f.get("dtype") in ("video", "image")]


def integral_fps(fps: float) -> int:
    """LeRobot requires an integral frame rate (its writer builds Fractions from it); refuse anything else."""
    value = float(fps)
    if value <= 0 or abs(value - round(value)) > 1e-9:
        raise DatasetError(f"fps {fps!r} is not a positive integer; LeRobotDataset v3.0 needs an integral fps "
                           "(set the contract's fps to a whole number)")
    return int(round(value))


def is_lerobot_episode_column(name: str) -> bool:
    """Columns LeRobot's own writer puts in meta/episodes (everything else goes to the sidecar)."""
    return (name in ("episode_index", "tasks", "length", "dataset_from_index", "dataset_to_index")
            or name.startswith(("data/", "videos/", "meta/episodes/", "stats/")))


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
        "fps": integral_fps(fps),
        "splits": {},
        "data_path": DATA_PATH,
        "video_path": VIDEO_PATH,
        "features": features,
    }


QUANTILES = (0.01, 0.10, 0.50, 0.90, 0.99)
QUANTILE_NAMES = tuple(f"q{int(round(q * 100)):02d}" for q in QUANTILES)
STAT_NAMES = ("min", "max", "mean", "std", "count", *QUANTILE_NAMES)


def episode_stats(values: np.ndarray) -> dict[str, np.ndarray]:
    """LeRobot's per-episode statistics of (N, D) ``values`` over the first axis: min, max, mean, std, count and
    the quantiles q01 q10 q50 q90 q99 (N may be 0: NaN)."""
    values = np.asarray(values, dtype=np.float64)
    if values.ndim == 1:
        values = values[:, None]
    n = values.shape[0]
    if n == 0:
        nan = np.full(values.shape[1], np.nan)
        return {**{k: nan for k in STAT_NAMES if k != "count"}, "count": np.array([0])}
    out = {"min": values.min(0), "max": values.max(0), "mean": values.mean(0), "std": values.std(0),
           "count": np.array([n])}
    for name, q in zip(QUANTILE_NAMES, np.quantile(values, QUANTILES, axis=0)):
        out[name] = q
    return out


def histogram_stats(hist: np.ndarray, frames: int) -> dict[str, np.ndarray]:
    """Image statistics in LeRobot's (3, 1, 1) form, in [0, 1], from per-channel histograms (3, 256) of uint8
    pixels: exact min/max/mean/std and quantiles of the sampled pixels; count is the number of frames."""
    hist = np.asarray(hist, dtype=np.float64)
    levels = np.arange(hist.shape[1], dtype=np.float64)
    total = np.maximum(hist.sum(1), 1.0)
    mean = (hist * levels).sum(1) / total
    std = np.sqrt(np.maximum((hist * levels ** 2).sum(1) / total - mean ** 2, 0.0))
    nonzero = [np.flatnonzero(h) for h in hist]
    lo = np.array([z[0] if z.size else 0 for z in nonzero], dtype=np.float64)
    hi = np.array([z[-1] if z.size else 0 for z in nonzero], dtype=np.float64)
    cdf = np.cumsum(hist, 1) / total[:, None]
    shape = lambda v: (np.asarray(v, dtype=np.float64) / 255.0).reshape(-1, 1, 1)  # noqa: E731
    out = {"min": shape(lo), "max": shape(hi), "mean": shape(mean), "std": shape(std), "count": np.array([frames])}
    for name, q in zip(QUANTILE_NAMES, QUANTILES):
        out[name] = shape([np.searchsorted(c, q) for c in cdf])
    return out


def aggregate_stats(per_episode: list[dict[str, dict[str, np.ndarray]]]) -> dict[str, dict[str, list]]:
    """Combine per-episode stats into stats.json form as LeRobot does: pooled mean and variance weighted by frame
    count, min of mins, max of maxes, quantiles as the count-weighted mean of the episodes' quantiles."""
    out: dict[str, dict[str, list]] = {}
    keys = sorted({k for ep in per_episode for k in ep})
    for key in keys:
        parts = [ep[key] for ep in per_episode if key in ep and int(np.asarray(ep[key]["count"]).reshape(-1)[0]) > 0
                 and all(s in ep[key] for s in ("min", "max", "mean", "std"))]
        if not parts:
            continue
        counts = np.array([float(np.asarray(p["count"]).reshape(-1)[0]) for p in parts])
        means = np.stack([np.asarray(p["mean"], dtype=np.float64) for p in parts])
        stds = np.stack([np.asarray(p["std"], dtype=np.float64) for p in parts])
        total = counts.sum()
        w = counts.reshape((-1,) + (1,) * (means.ndim - 1))
        mean = (w * means).sum(0) / total
        var = (w * (stds ** 2 + (means - mean) ** 2)).sum(0) / total
        out[key] = {
            "min": np.min(np.stack([np.asarray(p["min"], dtype=np.float64) for p in parts]), 0).tolist(),
            "max": np.max(np.stack([np.asarray(p["max"], dtype=np.float64) for p in parts]), 0).tolist(),
            "mean": mean.tolist(), "std": np.sqrt(var).tolist(), "count": [int(total)],
        }
        for name in QUANTILE_NAMES:
            if all(name in p for p in parts):
                q = np.stack([np.asarray(p[name], dtype=np.float64) for p in parts])
                out[key][name] = ((w * q).sum(0) / total).tolist()
    return out
