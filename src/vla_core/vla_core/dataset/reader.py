"""Read a LeRobotDataset v3.0 directory: metadata, frames by global index, and episodes.

Only committed episodes are visible (rows of meta/episodes); files of an episode a kill interrupted are
ignored. Frames come back as numpy arrays; images as (H, W, 3) uint8 RGB decoded from the episode's video.
"""
from __future__ import annotations

import json
from functools import lru_cache
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow.parquet as pq

from vla_core.dataset import layout as L
from vla_core.dataset.video import decode_frames


def load_meta(root: Path) -> tuple[dict, list[dict], dict[str, int]]:
    """(info, episode rows sorted by episode_index, task -> task_index) of the dataset at ``root``."""
    root = Path(root)
    info_path = root / L.INFO_PATH
    if not info_path.is_file():
        raise L.DatasetError(f"{root} is not a dataset: {L.INFO_PATH} is missing (record one with `vla record`)")
    try:
        info = json.loads(info_path.read_text())
    except json.JSONDecodeError as exc:
        raise L.DatasetError(f"{info_path} is not valid JSON: {exc}") from exc
    if info.get("codebase_version") != L.CODEBASE_VERSION:
        raise L.DatasetError(f"{info_path}: codebase_version {info.get('codebase_version')!r}; this reader "
                             f"reads {L.CODEBASE_VERSION} (convert older datasets with LeRobot's converter)")
    episodes: list[dict] = []
    for path in sorted((root / "meta" / "episodes").glob("chunk-*/file-*.parquet")):
        episodes.extend(pq.read_table(path).to_pylist())
    episodes.sort(key=lambda e: e["episode_index"])
    for i, ep in enumerate(episodes):
        if ep["episode_index"] != i:
            raise L.DatasetError(f"{root}: episode indices are not contiguous at {i} ({ep['episode_index']})")
    tasks: dict[str, int] = {}
    if (root / L.TASKS_PATH).is_file():
        table = pq.read_table(root / L.TASKS_PATH)
        names = table.column("__index_level_0__" if "__index_level_0__" in table.column_names else "task")
        tasks = dict(zip(names.to_pylist(), table.column("task_index").to_pylist()))
    return info, episodes, tasks


class DatasetReader:
    """Random access to the frames of a dataset: ``len(reader)``, ``reader[i]`` (dict of feature -> value)."""

    def __init__(self, root: str | Path, decode_images: bool = True):
        self.root = Path(root)
        self.info, self.episodes, self.tasks = load_meta(self.root)
        self.fps = float(self.info["fps"])
        self.features = self.info["features"]
        self.video_keys = L.video_keys(self.features)
        self.decode_images = decode_images
        self._starts = np.array([e["dataset_from_index"] for e in self.episodes], dtype=np.int64)
        self._task_names = {i: t for t, i in self.tasks.items()}
        self._episode_data = lru_cache(maxsize=4)(self._load_episode_data)
        self._episode_video = lru_cache(maxsize=2)(self._load_episode_video)

    def __len__(self) -> int:
        return int(sum(e["length"] for e in self.episodes))

    @property
    def num_episodes(self) -> int:
        return len(self.episodes)

    def episode(self, episode_index: int) -> dict[str, Any]:
        """The episode's metadata row (tasks, length, instruction, success, late/dropped counts, contract...)."""
        return self.episodes[episode_index]

    def episode_frames(self, episode_index: int) -> dict[str, np.ndarray]:
        """Every column of one episode as arrays of length ``length`` (images (N, H, W, 3) when decoded)."""
        data = dict(self._episode_data(episode_index))
        if self.decode_images:
            for key in self.video_keys:
                data[key] = self._episode_video(episode_index, key)
        return data

    def __getitem__(self, index: int) -> dict[str, Any]:
        n = len(self)
        if index < 0:
            index += n
        if not 0 <= index < n:
            raise IndexError(f"frame {index} out of range; the dataset has {n} frames")
        ep = int(np.searchsorted(self._starts, index, side="right") - 1)
        row = index - int(self._starts[ep])
        data = self._episode_data(ep)
        item = {k: v[row] for k, v in data.items()}
        item["task"] = self._task_names.get(int(item["task_index"]), "")
        if self.decode_images:
            for key in self.video_keys:
                item[key] = self._episode_video(ep, key)[row]
        return item

    def _load_episode_data(self, ep: int) -> dict[str, np.ndarray]:
        meta = self.episodes[ep]
        path = self.root / L.DATA_PATH.format(chunk_index=meta["data/chunk_index"], file_index=meta["data/file_index"])
        table = pq.read_table(path)
        ep_col = table.column("episode_index").to_numpy()
        table = table.filter(ep_col == ep)
        out = {}
        for name in table.column_names:
            col = table.column(name)
            if hasattr(col.type, "list_size"):
                out[name] = np.asarray(col.combine_chunks().flatten().to_numpy(zero_copy_only=False)).reshape(
                    len(table), col.type.list_size)
            else:
                out[name] = col.to_numpy(zero_copy_only=False)
        if len(table) != meta["length"]:
            raise L.DatasetError(f"{path}: episode {ep} has {len(table)} rows, its metadata says {meta['length']}")
        return out

    def _load_episode_video(self, ep: int, key: str) -> np.ndarray:
        """Frames of the episode in row order, matched to the rows' timestamps (1/fps grid)."""
        meta = self.episodes[ep]
        path = self.root / L.VIDEO_PATH.format(video_key=key, chunk_index=meta[f"videos/{key}/chunk_index"],
                                               file_index=meta[f"videos/{key}/file_index"])
        start = float(meta[f"videos/{key}/from_timestamp"])
        decoded = decode_frames(path, self.fps, from_time=start)
        by_slot = {int(round((t - start) * self.fps)): img for t, img in decoded}
        slots = np.round(self._episode_data(ep)["timestamp"].astype(np.float64) * self.fps).astype(int)
        missing = [int(s) for s in slots if s not in by_slot]
        if missing:
            raise L.DatasetError(f"{path}: no video frame at {len(missing)} timestamps of episode {ep} "
                                 f"(first at {missing[0] / self.fps:.3f} s); the file is damaged")
        return np.stack([by_slot[int(s)] for s in slots])


def intervention_summary(root: str | Path, episodes) -> dict[str, int]:
    """What operators did in ``episodes`` (indices) of the dataset at ``root``: ``episodes``, ``frames``,
    ``intervention_frames`` (the operator was commanding), ``takeovers`` (starts of such stretches) and
    ``episodes_with_takeover``."""
    reader = DatasetReader(root, decode_images=False)
    out = {"episodes": 0, "frames": 0, "intervention_frames": 0, "takeovers": 0, "episodes_with_takeover": 0}
    for ep in episodes:
        flags = np.asarray(reader.episode_frames(int(ep))["intervention"]).reshape(-1).astype(bool)
        starts = int(np.count_nonzero(flags[1:] & ~flags[:-1])) + int(flags[:1].sum())
        out["episodes"] += 1
        out["frames"] += int(flags.size)
        out["intervention_frames"] += int(flags.sum())
        out["takeovers"] += starts
        out["episodes_with_takeover"] += int(starts > 0)
    return out
