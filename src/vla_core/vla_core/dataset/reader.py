"""Read a LeRobotDataset v3.0 directory: metadata, frames by global index, and episodes.

Any of LeRobot's layouts reads: one episode per file (this workspace's writer) or many episodes per parquet and
per MP4 (LeRobot's default; each episode's frames located in the shared video by ``videos/<key>/from_timestamp``),
vector columns stored as fixed-size lists or as plain ``list<float>``, cameras as video (``observation.images.*``
or a single ``observation.image``) or as images inside the parquet (``dtype: image``, PNG/JPEG bytes).

Only committed episodes are visible (rows of meta/episodes); files of an episode a kill interrupted are
ignored. Frames come back as numpy arrays; images as (H, W, 3) uint8 RGB.
"""
from __future__ import annotations

import json
import warnings
from collections import OrderedDict
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from vla_core.dataset import layout as L
from vla_core.dataset.video import VideoReader, decode_frames  # noqa: F401 - decode_frames re-exported

# Workspace-only per-episode fields and what they are when a dataset has no sidecar row for the episode
# (written by LeRobot, or edited by LeRobot's tools, which do not copy meta/vla).
WORKSPACE_EPISODE_DEFAULTS: dict[str, Any] = {
    "instruction": None, "success": None, "late_frames": None, "dropped_frames": None, "invalid_frames": None,
    "intervention_frames": None, "achieved_fps": None, "contract": "", "encoder_id": "", "recorded_at": None,
    "start_stamp": 0.0, "help_frames": None, "requested_intervention_frames": None,
}


def _read_episode_rows(root: Path) -> list[dict]:
    rows: dict[int, dict] = {}
    for path in sorted((root / "meta" / "episodes").glob("chunk-*/file-*.parquet")):
        for row in pq.read_table(path).to_pylist():
            rows.setdefault(int(row["episode_index"]), row)  # a row rewritten into file-000 wins over a stale copy
    return [rows[k] for k in sorted(rows)]


def _merge_sidecar(root: Path, episodes: list[dict]) -> int:
    """Add the sidecar's fields to the episode rows they belong to; returns how many sidecar rows did not match."""
    path = root / L.SIDECAR_PATH
    side = pq.read_table(path).to_pylist() if path.is_file() else []
    by_index = {int(r["episode_index"]): r for r in side}
    stale = 0
    for ep in episodes:
        extra = by_index.pop(int(ep["episode_index"]), None)
        if extra is not None and (extra.get("length"), extra.get("dataset_from_index")) != (
                ep["length"], ep["dataset_from_index"]):
            stale += 1  # the episodes were re-indexed by a tool that did not rewrite the sidecar
            extra = None
        for key, default in WORKSPACE_EPISODE_DEFAULTS.items():
            if key not in ep:
                ep[key] = extra.get(key, default) if extra is not None else default
        if extra is not None:
            ep.update({k: v for k, v in extra.items() if k not in ep})
        if ep.get("instruction") is None:
            ep["instruction"] = (ep.get("tasks") or [""])[0]
    return stale + len(by_index)


def load_meta(root: Path) -> tuple[dict, list[dict], dict[str, int]]:
    """(info, episode rows sorted by episode_index, task -> task_index) of the dataset at ``root``.

    Each row holds LeRobot's columns and the workspace's own fields (instruction, success, counts, contract...)
    from meta/vla/episodes.parquet; without a matching sidecar row, instruction is the episode's first task and
    the other fields are None (the per-frame flags intervention/late/valid are in the data either way)."""
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
    episodes = _read_episode_rows(root)
    for i, ep in enumerate(episodes):
        if ep["episode_index"] != i:
            raise L.DatasetError(f"{root}: episode indices are not contiguous at {i} ({ep['episode_index']})")
    stale = _merge_sidecar(root, episodes)
    if stale:
        warnings.warn(f"{root / L.SIDECAR_PATH}: {stale} rows match no episode (the dataset was edited by a tool "
                      "that does not keep it); those episodes fall back to their tasks and per-frame flags",
                      stacklevel=2)
    tasks: dict[str, int] = {}
    if (root / L.TASKS_PATH).is_file():
        table = pq.read_table(root / L.TASKS_PATH)
        names = table.column("__index_level_0__" if "__index_level_0__" in table.column_names else "task")
        tasks = dict(zip(names.to_pylist(), table.column("task_index").to_pylist()))
    return info, episodes, tasks


def decode_image_bytes(data: bytes, where: str) -> np.ndarray:
    """PNG or JPEG bytes -> (H, W, 3) uint8 RGB."""
    import cv2
    image = cv2.imdecode(np.frombuffer(data, np.uint8), cv2.IMREAD_COLOR) if data else None
    if image is None:
        raise L.DatasetError(f"{where}: image bytes are not a PNG or JPEG; the dataset is damaged")
    return np.ascontiguousarray(image[..., ::-1])


def column_to_numpy(col: pa.ChunkedArray, name: str, shape: list | None = None) -> np.ndarray:
    """A parquet column as an array: scalars (N,), fixed-size or variable ``list<...>`` vectors (N, D)."""
    col = col.combine_chunks() if isinstance(col, pa.ChunkedArray) else col
    n = len(col)
    if pa.types.is_fixed_size_list(col.type):
        return np.asarray(col.flatten().to_numpy(zero_copy_only=False)).reshape(n, col.type.list_size)
    if pa.types.is_list(col.type) or pa.types.is_large_list(col.type):
        lengths = np.asarray(col.value_lengths().to_numpy(zero_copy_only=False))
        if n and (col.null_count or (lengths != lengths[0]).any()):
            raise L.DatasetError(f"column '{name}': rows have different vector lengths "
                                 f"({sorted(set(lengths.tolist()))[:5]}) or nulls; every frame needs the same shape")
        width = int(lengths[0]) if n else int(np.prod(shape or [0]))
        flat = col.flatten()
        if pa.types.is_list(flat.type) or pa.types.is_fixed_size_list(flat.type):
            flat = flat.flatten()  # list<list<float>> (a matrix feature)
        return np.asarray(flat.to_numpy(zero_copy_only=False)).reshape((n, -1) if width else (n, 0))
    return col.to_numpy(zero_copy_only=False)


class DatasetReader:
    """Random access to the frames of a dataset: ``len(reader)``, ``reader[i]`` (dict of feature -> value)."""

    def __init__(self, root: str | Path, decode_images: bool = True):
        self.root = Path(root)
        self.info, self.episodes, self.tasks = load_meta(self.root)
        self.fps = float(self.info["fps"])
        self.features = self.info["features"]
        self.video_keys = L.video_keys(self.features)
        self.image_keys = L.image_keys(self.features)
        self.camera_keys = L.camera_keys(self.features)
        self.decode_images = decode_images
        self._starts = np.array([e["dataset_from_index"] for e in self.episodes], dtype=np.int64)
        self._task_names = {i: t for t, i in self.tasks.items()}
        self._files: OrderedDict[Path, dict[str, np.ndarray]] = OrderedDict()  # decoded parquet files (LRU)
        self._videos: OrderedDict[Path, VideoReader] = OrderedDict()  # open decoders (LRU)
        self._episode_cache: OrderedDict[int, dict[str, np.ndarray]] = OrderedDict()

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
        data = dict(self.episode_data(episode_index))
        if self.decode_images:
            for key in self.camera_keys:
                data[key] = self.episode_images(episode_index, key)
        return data

    def __getitem__(self, index: int) -> dict[str, Any]:
        n = len(self)
        if index < 0:
            index += n
        if not 0 <= index < n:
            raise IndexError(f"frame {index} out of range; the dataset has {n} frames")
        ep = int(np.searchsorted(self._starts, index, side="right") - 1)
        row = index - int(self._starts[ep])
        data = self.episode_data(ep)
        item = {k: v[row] for k, v in data.items()}
        item["task"] = self._task_names.get(int(item["task_index"]), "")
        if self.decode_images:
            for key in self.camera_keys:
                item[key] = self.episode_images(ep, key)[row]
        return item

    # ---- files ---------------------------------------------------------------------------------
    def data_path(self, ep: int) -> Path:
        meta = self.episodes[ep]
        return self.root / self.info.get("data_path", L.DATA_PATH).format(
            chunk_index=meta["data/chunk_index"], file_index=meta["data/file_index"])

    def video_path(self, ep: int, key: str) -> Path:
        meta = self.episodes[ep]
        try:
            chunk, file = meta[f"videos/{key}/chunk_index"], meta[f"videos/{key}/file_index"]
        except KeyError as exc:
            raise L.DatasetError(f"{self.root}: episode {ep} has no {exc.args[0]} in meta/episodes; the camera "
                                 f"'{key}' is declared as a video but not located") from None
        return self.root / self.info.get("video_path", L.VIDEO_PATH).format(video_key=key, chunk_index=chunk,
                                                                             file_index=file)

    def video_span(self, ep: int, key: str) -> tuple[float, float | None]:
        """(from_timestamp, to_timestamp) of the episode in its video file (to None when unknown)."""
        meta = self.episodes[ep]
        start = float(meta.get(f"videos/{key}/from_timestamp") or 0.0)
        end = meta.get(f"videos/{key}/to_timestamp")
        return start, (float(end) if end is not None else None)

    def _load_file(self, path: Path) -> dict[str, np.ndarray]:
        cached = self._files.get(path)
        if cached is not None:
            self._files.move_to_end(path)
            return cached
        if not path.is_file():
            raise L.DatasetError(f"{path} is missing; restore it or delete the episodes it holds")
        table = pq.read_table(path)
        out: dict[str, np.ndarray] = {}
        for name in table.column_names:
            feat = self.features.get(name, {})
            if feat.get("dtype") == "image":
                out[name] = np.asarray(table.column(name).to_pylist(), dtype=object)  # decoded per episode
            else:
                out[name] = column_to_numpy(table.column(name), f"{path.name}:{name}", feat.get("shape"))
        self._files[path] = out
        while len(self._files) > 2:
            self._files.popitem(last=False)
        return out

    def episode_data(self, ep: int) -> dict[str, np.ndarray]:
        """The episode's parquet columns in row order (image columns still encoded)."""
        cached = self._episode_cache.get(ep)
        if cached is not None:
            return cached
        meta = self.episodes[ep]
        path = self.data_path(ep)
        cols = self._load_file(path)
        rows = np.flatnonzero(np.asarray(cols["episode_index"]) == ep)
        if rows.size != meta["length"]:
            raise L.DatasetError(f"{path}: episode {ep} has {rows.size} rows, its metadata says {meta['length']}")
        if "frame_index" in cols:
            rows = rows[np.argsort(np.asarray(cols["frame_index"])[rows], kind="stable")]
        out = {k: v[rows] for k, v in cols.items()}
        self._episode_cache[ep] = out
        while len(self._episode_cache) > 4:
            self._episode_cache.popitem(last=False)
        return out

    _episode_data = episode_data  # the name earlier callers used

    def episode_images(self, ep: int, key: str) -> np.ndarray:
        """(N, H, W, 3) uint8 RGB frames of camera ``key`` for the episode's rows, in row order."""
        if key in self.image_keys:
            cells = self.episode_data(ep)[key]
            where = f"{self.data_path(ep)} episode {ep} '{key}'"
            images = []
            for cell in cells:
                data = cell.get("bytes") if isinstance(cell, dict) else cell
                if not data and isinstance(cell, dict) and cell.get("path"):
                    data = (self.root / cell["path"]).read_bytes()
                images.append(decode_image_bytes(data, where))
            return np.stack(images)
        return self._episode_video(ep, key)

    def _video_reader(self, path: Path) -> VideoReader:
        reader = self._videos.get(path)
        if reader is None:
            if not path.is_file():
                raise L.DatasetError(f"{path} is missing; restore it or delete the episodes it holds")
            reader = self._videos[path] = VideoReader(path, self.fps)
            while len(self._videos) > 4:
                self._videos.popitem(last=False)[1].close()
        self._videos.move_to_end(path)
        return reader

    def _episode_video(self, ep: int, key: str) -> np.ndarray:
        """Frames of the episode in row order, matched to the rows' timestamps (1/fps grid) within the episode's
        span of the (possibly shared) video file."""
        path = self.video_path(ep, key)
        start, end = self.video_span(ep, key)
        decoded = self._video_reader(path).read(start, end)
        by_slot = {int(round(t * self.fps)): img for t, img in decoded}
        slots = np.round(self.episode_data(ep)["timestamp"].astype(np.float64) * self.fps).astype(int)
        missing = [int(s) for s in slots if s not in by_slot]
        if missing:
            raise L.DatasetError(f"{path}: no video frame at {len(missing)} of {len(slots)} timestamps of episode "
                                 f"{ep} (first at {missing[0] / self.fps:.3f} s after its from_timestamp "
                                 f"{start:.3f} s); the file is damaged or the episode's span is wrong")
        return np.stack([by_slot[int(s)] for s in slots])

    def close(self) -> None:
        for reader in self._videos.values():
            reader.close()
        self._videos.clear()


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
