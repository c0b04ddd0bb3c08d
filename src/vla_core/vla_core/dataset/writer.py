"""Crash-safe LeRobotDataset v3.0 writer: episodes are staged, then committed with atomic renames.

Each episode goes to ``.staging/episode-NNNNNN/`` while it is recorded (frames buffered in memory, each
camera encoded to a temporary MP4 on a thread). ``EpisodeWriter.save`` writes the frames' parquet, fsyncs,
renames the files to their final ``data/`` and ``videos/`` paths, and then rewrites the episodes table
(the commit point), tasks, stats and info, each atomically. A process killed at any moment leaves the
dataset as it was after the last committed episode; opening it again removes the stale staging area and
appends after the last committed episode (files of an uncommitted one are overwritten).

One data file and one video file per camera per episode (file index = episode index within its chunk):
a committed file is never rewritten, which is what makes a kill harmless. A dataset LeRobot wrote (many episodes
per file) can be appended to: new episodes get files of their own after LeRobot's.

Dropped frames (``gaps``): with ``"fill"`` (the default) every slot of the 1/fps grid between an episode's first
and last frame gets a row, so that ``timestamp == frame_index / fps`` exactly, as LeRobot's decoders and
``delta_timestamps`` assume: a dropped slot repeats the previous frame's image, state and action with
``valid=False`` (left out of training and of the statistics) and is counted in ``dropped_frames``. With
``"keep"`` the rows are only the recorded frames and ``timestamp`` keeps the gap (the true sample times); the
video still holds a frame for every slot (the previous image repeated), so a decoder that indexes frames by
``timestamp * fps`` finds the right one.
"""
from __future__ import annotations

import json
import shutil
import time
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from vla_core.dataset import layout as L
from vla_core.dataset.video import VideoEncoder

# The workspace's per-episode fields, kept in meta/vla/episodes.parquet (not in LeRobot's episodes table, whose
# schema LeRobot's writer must be able to append to): instruction, success (null until labelled), late_frames,
# dropped_frames, invalid_frames, intervention_frames, achieved_fps, contract (the robot contract's YAML),
# encoder_id (the instruction's text encoder), recorded_at (wall clock), start_stamp (clock time of the first
# frame, to match frames with the topics or an MCAP bag), help_frames (frames in which the policy asked for help:
# a frame's optional ``help_requested``) and requested_intervention_frames (those in which the operator commanded).
GAP_MODES = ("fill", "keep")
CODEC_NAMES = {"libx264": "h264", "libsvtav1": "av1"}


def _arrow_type(feature: dict) -> pa.DataType:
    scalar = {"float32": pa.float32(), "float64": pa.float64(), "int64": pa.int64(), "bool": pa.bool_(),
              "int32": pa.int32(), "string": pa.string()}[feature["dtype"]]
    shape = list(feature["shape"])
    return scalar if shape == [1] else pa.list_(scalar, shape[0])


class DatasetWriter:
    """Open (or create) a dataset at ``root`` for appending episodes.

    ``features`` maps LeRobot feature names to {dtype, shape, names}; cameras have dtype "video" and shape
    (H, W, 3). The frame columns timestamp/frame_index/episode_index/index/task_index and the flags
    intervention/late/valid are added. Reopening a dataset with different features or fps is refused.
    """

    def __init__(self, root: str | Path, fps: float, features: dict[str, dict], robot_type: str = "",
                 codec: str = "libx264", crf: int = 23, gop: int = 10, chunks_size: int = L.DEFAULT_CHUNKS_SIZE,
                 gaps: str = "fill"):
        self.root = Path(root)
        if gaps not in GAP_MODES:
            raise ValueError(f"gaps '{gaps}' is not one of {', '.join(GAP_MODES)}")
        fps = L.integral_fps(fps)
        self.codec, self.crf, self.gop, self.gaps = codec, crf, gop, gaps
        feats = {k: dict(v) for k, v in features.items()}
        for key in L.video_keys(feats):
            h, w, c = feats[key]["shape"]
            # The stream's canonical codec name, as LeRobot probes it (its tools re-encode with it: "h264", "av1").
            feats[key]["info"] = {"video.height": h, "video.width": w, "video.codec": CODEC_NAMES.get(codec, codec),
                                  "video.pix_fmt": "yuv420p", "video.is_depth_map": False, "video.fps": fps,
                                  "video.channels": c, "has_audio": False}
        feats.update({k: v for k, v in L.DEFAULT_FEATURES.items() if k not in feats})
        feats.update({k: v for k, v in L.FLAG_FEATURES.items() if k not in feats})
        info_path = self.root / L.INFO_PATH
        if info_path.exists():
            from vla_core.dataset.reader import load_meta
            self.info, self.episodes, self.tasks = load_meta(self.root)
            for key in L.FLAG_FEATURES:  # a dataset LeRobot wrote has no per-frame flags: append without them
                if key not in self.info["features"]:
                    feats.pop(key)
            self._check_compatible(fps, feats)
        else:
            self.info, self.episodes, self.tasks = L.make_info(fps, feats, robot_type, chunks_size), [], {}
        shutil.rmtree(self.root / L.STAGING_DIR, ignore_errors=True)  # an episode a kill interrupted
        self._write_meta()  # repairs info/stats after a kill between the commit point and them
        self.current: EpisodeWriter | None = None

    def _check_compatible(self, fps: float, feats: dict) -> None:
        problems = []
        if abs(float(self.info["fps"]) - fps) > 1e-9:
            problems.append(f"fps {self.info['fps']} in the dataset, {fps} asked")
        for key in sorted(set(self.info["features"]) | set(feats)):
            old, new = self.info["features"].get(key), feats.get(key)
            if old is None or new is None:
                problems.append(f"feature '{key}' only in the {'request' if old is None else 'dataset'}")
            elif (old["dtype"], list(old["shape"])) != (new["dtype"], list(new["shape"])) and not (
                    key in L.DEFAULT_FEATURES and old["dtype"] == new["dtype"]):  # LeRobot: index columns () or [1]
                problems.append(f"feature '{key}': {old['dtype']}{list(old['shape'])} in the dataset, "
                                f"{new['dtype']}{list(new['shape'])} asked")
        if problems:
            raise L.DatasetError(f"{self.root} was recorded under another contract: " + "; ".join(problems) +
                                 "; record into a new directory or use the same contract")

    @property
    def features(self) -> dict:
        return self.info["features"]

    @property
    def num_episodes(self) -> int:
        return len(self.episodes)

    @property
    def num_frames(self) -> int:
        return sum(int(e["length"]) for e in self.episodes)

    def begin_episode(self, instruction: str, contract: str = "", encoder_id: str = "") -> "EpisodeWriter":
        if self.current is not None:
            raise L.DatasetError("an episode is already being recorded; save or discard it first")
        self.current = EpisodeWriter(self, self.num_episodes, instruction, contract, encoder_id)
        return self.current

    def task_index(self, task: str) -> int:
        if task not in self.tasks:
            self.tasks[task] = len(self.tasks)
        return self.tasks[task]

    def set_success(self, episode_index: int, success: bool) -> None:
        """Label a committed episode (rewrites the episodes table atomically)."""
        if not 0 <= episode_index < len(self.episodes):
            raise L.DatasetError(f"episode {episode_index} does not exist; the dataset has {len(self.episodes)}")
        self.episodes[episode_index]["success"] = success
        self._write_meta()

    # ---- commit --------------------------------------------------------------------------------
    def _committed_episodes(self) -> int:
        """Rows of the episodes table on disk (the commit point); 0 if it cannot be read."""
        try:
            return pq.read_metadata(self.root / L.EPISODES_PATH.format(chunk_index=0, file_index=0)).num_rows
        except (OSError, pa.ArrowException):
            return 0

    def _commit(self, row: dict) -> None:
        self.episodes.append(row)
        self._write_meta()

    def _write_meta(self) -> None:
        root = self.root
        (root / "meta").mkdir(parents=True, exist_ok=True)
        # Tasks first: a superset of the tasks is harmless if a kill comes before the commit point.
        tasks = pa.table({"task_index": pa.array(list(self.tasks.values()), pa.int64()),
                          "__index_level_0__": pa.array(list(self.tasks), pa.string())})
        tasks = tasks.replace_schema_metadata({b"pandas": json.dumps({
            "index_columns": ["__index_level_0__"], "column_indexes": [], "columns": [
                {"name": "task_index", "field_name": "task_index", "pandas_type": "int64", "numpy_type": "int64",
                 "metadata": None},
                {"name": "task", "field_name": "__index_level_0__", "pandas_type": "unicode",
                 "numpy_type": "object", "metadata": None}],
            "pandas_version": "2.2.0"}).encode()})
        _atomic_parquet(tasks, root / L.TASKS_PATH)
        if self.episodes:
            # The sidecar first: a row for an episode not committed yet is ignored by the reader (no match).
            side = [{k: v for k, v in row.items() if not L.is_lerobot_episode_column(k)}
                    | {"episode_index": row["episode_index"], "length": row["length"],
                       "dataset_from_index": row["dataset_from_index"]} for row in self.episodes]
            table = pa.Table.from_pylist(side)
            for name, kind in (("success", pa.bool_()), ("instruction", pa.string()), ("contract", pa.string())):
                if name in table.column_names and table.schema.field(name).type == pa.null():
                    table = table.set_column(table.schema.get_field_index(name), name, table.column(name).cast(kind))
            _atomic_parquet(table, root / L.SIDECAR_PATH)
            rows = [{k: v for k, v in row.items() if L.is_lerobot_episode_column(k)}
                    | {"meta/episodes/chunk_index": 0, "meta/episodes/file_index": 0} for row in self.episodes]
            target = root / L.EPISODES_PATH.format(chunk_index=0, file_index=0)
            _atomic_parquet(pa.Table.from_pylist(rows), target)
            # Rows LeRobot spread over several files are all in file-000 now (the reader keeps file-000's copy).
            for extra in (root / "meta" / "episodes").glob("chunk-*/file-*.parquet"):
                if extra != target:
                    extra.unlink()
        per_episode = [_stats_from_row(row) for row in self.episodes]
        L.atomic_write_json(root / L.STATS_PATH, L.aggregate_stats(per_episode))
        self.info.update(total_episodes=len(self.episodes), total_frames=self.num_frames, total_tasks=len(self.tasks),
                         splits={"train": f"0:{len(self.episodes)}"} if self.episodes else {})
        self.info["fps"] = L.integral_fps(self.info["fps"])
        L.atomic_write_json(root / L.INFO_PATH, self.info)


def _atomic_parquet(table: pa.Table, path: Path) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp")
    pq.write_table(table, tmp)
    L.fsync_file(tmp)
    tmp.replace(path)
    L.fsync_dir(path.parent)


def _stats_from_row(row: dict) -> dict[str, dict[str, np.ndarray]]:
    stats: dict[str, dict[str, np.ndarray]] = {}
    for key, value in row.items():
        if key.startswith("stats/"):
            feature, stat = key[len("stats/"):].rsplit("/", 1)
            if value is not None:
                stats.setdefault(feature, {})[stat] = np.asarray(value, dtype=np.float64)
    return stats


class EpisodeWriter:
    """One episode being recorded: ``add_frame`` per sample, then ``save`` (commit) or ``discard``."""

    def __init__(self, dataset: DatasetWriter, episode_index: int, instruction: str, contract: str, encoder_id: str):
        self.dataset, self.episode_index = dataset, episode_index
        self.instruction, self.contract, self.encoder_id = instruction, contract, encoder_id
        self.started_at = time.time()
        self.staging = dataset.root / L.STAGING_DIR / f"episode-{episode_index:06d}"
        self.staging.mkdir(parents=True, exist_ok=True)
        feats = dataset.features
        self.video_keys = L.video_keys(feats)
        self.columns = [k for k, f in feats.items() if f["dtype"] != "video" and k not in
                        ("frame_index", "episode_index", "index", "task_index")]
        self.rows: dict[str, list] = {k: [] for k in self.columns}
        self.encoders = {key: VideoEncoder(self.staging / f"{key}.mp4", feats[key]["shape"][0],
                                           feats[key]["shape"][1], dataset.info["fps"], dataset.codec,
                                           dataset.crf, dataset.gop) for key in self.video_keys}
        self.late = self.dropped = self.invalid = self.interventions = 0
        self.help_frames = self.requested_interventions = 0
        self.filled = 0  # dropped slots given a row (gaps="fill") or a repeated video frame (gaps="keep")
        self._first_pts: int | None = None
        self._valid: list[bool] = []
        self._last: tuple[int, dict] | None = None  # (pts, frame) of the previous frame
        self.backlog_at_save, self.encode_flush_s = 0, 0.0
        self.start_stamp = 0.0  # clock time of timestamp 0 (the first frame's message stamp), seconds
        self.closed = False

    @property
    def frames(self) -> int:
        return len(self.rows["timestamp"])

    @property
    def encode_backlog(self) -> int:
        return max((e.backlog for e in self.encoders.values()), default=0)

    def add_frame(self, frame: dict[str, Any]) -> None:
        """Append one frame: every feature of the dataset (images as (H, W, 3) uint8 RGB) plus ``timestamp``
        (seconds since the episode's first frame, from the messages' stamps) and the flags
        ``intervention``, ``late``, ``valid``."""
        if self.closed:
            raise L.DatasetError("episode already saved or discarded")
        missing = [k for k in self.columns + self.video_keys if k not in frame]
        if missing:
            raise L.DatasetError(f"frame lacks features {missing}; every frame needs all of "
                                 f"{self.columns + self.video_keys}")
        fps = self.dataset.info["fps"]
        pts = int(round(float(frame["timestamp"]) * fps))
        for key in self.video_keys:
            image = frame[key]
            expected = tuple(self.dataset.features[key]["shape"])
            if image.shape != expected or image.dtype != np.uint8:
                raise L.DatasetError(f"{key}: image {image.dtype}{image.shape}, expected uint8{expected}")
        if self._first_pts is None:
            self._first_pts = pts if self.dataset.gaps == "fill" else 0
        if self._last is not None:
            if pts <= self._last[0]:
                raise L.DatasetError(f"frame at {float(frame['timestamp']):.4f} s is not after the previous one "
                                     f"({self._last[0] / fps:.4f} s); frames must come in time order, one per slot")
            for missing in range(self._last[0] + 1, pts):  # dropped slots
                self.filled += 1
                filler = dict(self._last[1], valid=False, late=False)
                filler["timestamp"] = (missing - self._first_pts) / fps
                self._append(filler, missing, row=self.dataset.gaps == "fill")
        if self.dataset.gaps == "fill":
            frame = dict(frame, timestamp=(pts - self._first_pts) / fps)
        self._append(frame, pts, row=True)
        self._last = (pts, frame)

    def _append(self, frame: dict[str, Any], pts: int, row: bool) -> None:
        for key in self.video_keys:
            self.encoders[key].put(frame[key], pts - self._first_pts)
        if not row:
            return
        for key in self.columns:
            self.rows[key].append(frame[key])
        self._valid.append(bool(frame["valid"]))
        self.late += bool(frame["late"])
        self.invalid += not bool(frame["valid"])
        self.interventions += bool(frame["intervention"])
        helped = bool(frame.get("help_requested", False))
        self.help_frames += helped
        self.requested_interventions += helped and bool(frame["intervention"])

    def count_dropped(self, n: int = 1) -> None:
        """Count ``n`` slots without a frame (the recorder's own count; gaps between frames are also found
        from the timestamps, and ``dropped_frames`` is the larger of the two)."""
        self.dropped += n

    def discard(self) -> None:
        """Throw the episode away (re-record): nothing of it reaches the dataset."""
        if self.closed:
            return
        self.closed = True
        for enc in self.encoders.values():
            enc.abort()
        shutil.rmtree(self.staging, ignore_errors=True)
        self.dataset.current = None

    def save(self, success: bool | None = None) -> dict:
        """Commit the episode; returns its row of the episodes table. Raises DatasetError if it has no frames."""
        if self.closed:
            raise L.DatasetError("episode already saved or discarded")
        if self.frames == 0:
            self.discard()
            raise L.DatasetError("episode has no frames; nothing was saved")
        self.closed = True
        ds, n, ep = self.dataset, self.frames, self.episode_index
        tasks_before, moved = dict(ds.tasks), []
        try:
            t0 = time.monotonic()
            self.backlog_at_save = self.encode_backlog
            image_stats = {key: enc.close() for key, enc in self.encoders.items()}
            self.encode_flush_s = time.monotonic() - t0
            chunk, file = L.chunk_file(ep, ds.info["chunks_size"])
            first_index = ds.num_frames
            task_index = ds.task_index(self.instruction)
            table = self._table(first_index, task_index)
            self._table_cache = table
            data_tmp = self.staging / "data.parquet"
            pq.write_table(table, data_tmp)
            for path in [data_tmp, *(self.staging / f"{k}.mp4" for k in self.video_keys)]:
                L.fsync_file(path)
            row = self._episode_row(chunk, file, first_index, image_stats, success)
            moves = [(data_tmp, ds.root / L.DATA_PATH.format(chunk_index=chunk, file_index=file))]
            moves += [(self.staging / f"{k}.mp4",
                       ds.root / L.VIDEO_PATH.format(video_key=k, chunk_index=chunk, file_index=file))
                      for k in self.video_keys]
            for src, dst in moves:
                dst.parent.mkdir(parents=True, exist_ok=True)
                src.replace(dst)
                moved.append(dst)
                L.fsync_dir(dst.parent)
            ds._commit(row)
        except BaseException:
            # A failure (a full disk) before the episodes table names the episode leaves the dataset as it was,
            # in memory too: a later commit must not carry an episode reported as not saved. After that point
            # the episode is committed; the rest of the metadata is rewritten by the next commit or open.
            if ds._committed_episodes() <= ep:
                del ds.episodes[ep:]
                ds.tasks = tasks_before
                for path in moved:
                    path.unlink(missing_ok=True)
            raise
        finally:
            shutil.rmtree(self.staging, ignore_errors=True)
            ds.current = None
        return row

    def _table(self, first_index: int, task_index: int) -> pa.Table:
        feats, n = self.dataset.features, self.frames
        arrays = {}
        for key in self.columns:
            feat = feats[key]
            values = self.rows[key]
            if list(feat["shape"]) == [1]:
                arrays[key] = pa.array([v.item() if isinstance(v, np.generic) else v for v in values],
                                       _arrow_type(feat))
            else:
                flat = np.asarray(values, dtype=feat["dtype"]).reshape(n, -1)
                arrays[key] = pa.FixedSizeListArray.from_arrays(pa.array(flat.reshape(-1)), flat.shape[1])
        arrays["frame_index"] = pa.array(np.arange(n), pa.int64())
        arrays["episode_index"] = pa.array(np.full(n, self.episode_index), pa.int64())
        arrays["index"] = pa.array(np.arange(first_index, first_index + n), pa.int64())
        arrays["task_index"] = pa.array(np.full(n, task_index), pa.int64())
        order = [k for k in feats if k in arrays]
        return pa.table({k: arrays[k] for k in order})

    def _episode_row(self, chunk: int, file: int, first_index: int, image_stats: dict, success) -> dict:
        n = self.frames
        ts = np.asarray(self.rows["timestamp"], dtype=np.float64)
        span = float(ts[-1] - ts[0]) if n > 1 else 0.0
        row: dict[str, Any] = {
            "episode_index": self.episode_index, "tasks": [self.instruction], "length": n,
            "data/chunk_index": chunk, "data/file_index": file,
            "dataset_from_index": first_index, "dataset_to_index": first_index + n,
        }
        for key in self.video_keys:
            row[f"videos/{key}/chunk_index"] = chunk
            row[f"videos/{key}/file_index"] = file
            row[f"videos/{key}/from_timestamp"] = 0.0
            row[f"videos/{key}/to_timestamp"] = float(ts[-1]) + 1.0 / self.dataset.info["fps"]
        row.update({"meta/episodes/chunk_index": 0, "meta/episodes/file_index": 0})
        row.update({"instruction": self.instruction, "success": success, "late_frames": self.late,
                    "dropped_frames": max(self.dropped, self.filled), "invalid_frames": self.invalid,
                    "intervention_frames": self.interventions, "help_frames": self.help_frames,
                    "requested_intervention_frames": self.requested_interventions,
                    "achieved_fps": (n - 1) / span if span > 0 else 0.0,
                    "contract": self.contract, "encoder_id": self.encoder_id, "recorded_at": self.started_at,
                    "start_stamp": self.start_stamp + (self._first_pts or 0) / self.dataset.info["fps"]})
        valid = np.asarray(self._valid, dtype=bool)
        table = self._table_cache
        from vla_core.dataset.reader import column_to_numpy
        for key, feat in self.dataset.features.items():  # every numeric feature, the index columns too (LeRobot)
            if key not in table.column_names or feat["dtype"] not in ("float32", "float64", "int64", "int32", "bool"):
                continue
            values = np.asarray(column_to_numpy(table.column(key), key), dtype=np.float64).reshape(n, -1)
            if key in ("observation.state", "action") or key.startswith("observation."):
                values = values[valid]  # statistics over valid frames only: never a NaN in the normaliser
            for stat, value in L.episode_stats(values).items():
                row[f"stats/{key}/{stat}"] = np.asarray(value).tolist()
        for key, stats in image_stats.items():
            for stat, value in stats.items():
                row[f"stats/{key}/{stat}"] = np.asarray(value).tolist()
        return row
