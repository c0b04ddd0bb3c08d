"""Bring a LeRobotDataset v3.0 from a local directory into the workspace, checked; rewrite a dataset with exact
timestamps.

``check_dataset`` reads every episode of any v3.0 layout (many episodes per file or one, video or images in
parquet) and verifies that each has its rows and a decoded frame for every row of every camera, at the place its
metadata says. ``import_dataset`` checks, then copies the directory as it is (LeRobot keeps reading and editing
it), or with ``repack`` rewrites it through the workspace's writer: one file per episode, cameras as video,
dropped slots filled (``gaps="fill"``) so that ``timestamp == frame_index / fps``. ``repack_dataset`` is that
rewrite alone, e.g. for a dataset recorded with ``gaps="keep"`` that LeRobot's decoders should read.
"""
from __future__ import annotations

import shutil
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

import numpy as np

from vla_core.dataset import layout as L
from vla_core.dataset.reader import DatasetReader
from vla_core.dataset.writer import DatasetWriter


@dataclass
class CheckReport:
    root: str
    episodes: int = 0
    frames: int = 0
    fps: float = 0.0
    cameras: list[str] = field(default_factory=list)
    episodes_per_data_file: float = 0.0
    gaps: int = 0  # episodes whose timestamps are not frame_index / fps
    problems: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.problems


def check_dataset(root: str | Path, progress: Callable[[int, int], None] = lambda i, n: None) -> CheckReport:
    """Read every frame of every episode; collect every problem (episode, camera, what) instead of stopping."""
    reader = DatasetReader(root)
    report = CheckReport(str(root), reader.num_episodes, len(reader), reader.fps, list(reader.camera_keys))
    files = {(e["data/chunk_index"], e["data/file_index"]) for e in reader.episodes}
    report.episodes_per_data_file = round(reader.num_episodes / max(len(files), 1), 2)
    if abs(reader.fps - round(reader.fps)) > 1e-9:
        report.problems.append(f"fps {reader.info['fps']} is not an integer (LeRobot needs an integral fps)")
    for ep in range(reader.num_episodes):
        progress(ep, reader.num_episodes)
        try:
            data = reader.episode_data(ep)
            ts = np.asarray(data["timestamp"], np.float64)
            index = np.asarray(data.get("frame_index", np.arange(ts.size)), np.float64)
            if np.abs(ts - index / reader.fps).max(initial=0.0) > 1e-4:
                report.gaps += 1
            for key in reader.camera_keys:
                images = reader.episode_images(ep, key)
                if len(images) != len(ts):
                    report.problems.append(f"episode {ep}, {key}: {len(images)} frames for {len(ts)} rows")
        except (L.DatasetError, OSError, ValueError, KeyError) as exc:
            report.problems.append(f"episode {ep}: {exc}")
    reader.close()
    return report


def repack_dataset(src: str | Path, dst: str | Path, gaps: str = "fill", codec: str = "libx264",
                   progress: Callable[[int, int], None] = lambda i, n: None) -> int:
    """Rewrite the dataset at ``src`` into a new one at ``dst`` through the workspace's writer (one file per
    episode, cameras as video, LeRobot's full stats, ``gaps`` as DatasetWriter takes it). Returns the episodes."""
    dst = Path(dst)
    if (dst / L.INFO_PATH).exists():
        raise L.DatasetError(f"{dst} already holds a dataset; choose a new directory")
    reader = DatasetReader(src)
    skip = set(L.DEFAULT_FEATURES) | set(L.FLAG_FEATURES)
    features = {}
    for key, feat in reader.features.items():
        if key in skip:
            continue
        if feat["dtype"] in ("video", "image"):
            features[key] = {"dtype": "video", "shape": list(feat["shape"]), "names": feat.get("names")}
        elif feat["dtype"] in ("float32", "float64", "int64", "int32", "bool"):
            features[key] = {k: feat[k] for k in ("dtype", "shape", "names") if k in feat}
    writer = DatasetWriter(dst, reader.fps, features, robot_type=reader.info.get("robot_type") or "", codec=codec,
                           gaps=gaps)
    for ep in range(reader.num_episodes):
        progress(ep, reader.num_episodes)
        meta = reader.episode(ep)
        frames = reader.episode_frames(ep)
        n = int(meta["length"])
        episode = writer.begin_episode(meta.get("instruction") or (meta.get("tasks") or [""])[0],
                                       contract=meta.get("contract") or "", encoder_id=meta.get("encoder_id") or "")
        flags = {k: np.asarray(frames[k]).reshape(n).astype(bool) if k in frames else np.full(n, default)
                 for k, default in (("intervention", False), ("late", False), ("valid", True))}
        for i in range(n):
            frame = {key: frames[key][i] for key in features}
            frame.update(timestamp=float(frames["timestamp"][i]), **{k: bool(v[i]) for k, v in flags.items()})
            episode.add_frame(frame)
        if meta.get("dropped_frames"):
            episode.count_dropped(int(meta["dropped_frames"]))
        episode.start_stamp = float(meta.get("start_stamp") or 0.0)
        episode.save(success=meta.get("success"))
    reader.close()
    return reader.num_episodes


def import_dataset(src: str | Path, dst: str | Path, repack: bool = False,
                   progress: Callable[[int, int], None] = lambda i, n: None) -> CheckReport:
    """Check the LeRobot dataset at ``src`` and bring it to ``dst`` (copied as is, or repacked); raises
    DatasetError listing every problem, and copies nothing then."""
    report = check_dataset(src, progress)
    if not report.ok:
        raise L.DatasetError(f"{src} cannot be imported: " + "; ".join(report.problems[:10]) +
                             (f" (and {len(report.problems) - 10} more)" if len(report.problems) > 10 else ""))
    dst = Path(dst)
    if dst.exists() and any(dst.iterdir()):
        raise L.DatasetError(f"{dst} exists and is not empty; choose a new directory")
    if repack:
        repack_dataset(src, dst, gaps="fill")
    else:
        shutil.copytree(src, dst, dirs_exist_ok=True, ignore=shutil.ignore_patterns(L.STAGING_DIR, ".cache"))
    return report


def pack_dataset(src: str | Path, dst: str | Path, episodes_per_file: int = 50) -> int:
    """Copy the dataset at ``src`` into LeRobot's packed layout at ``dst``: ``episodes_per_file`` episodes per
    data parquet and per MP4 (the videos remuxed, not re-encoded: the same compressed frames, each episode
    located by ``from_timestamp``/``to_timestamp``), the episodes table and the sidecar rewritten to match."""
    import json

    import av
    import pyarrow as pa
    import pyarrow.parquet as pq

    src, dst = Path(src), Path(dst)
    if (dst / L.INFO_PATH).exists():
        raise L.DatasetError(f"{dst} already holds a dataset; choose a new directory")
    reader = DatasetReader(src, decode_images=False)
    fps = reader.fps
    rows = [dict(e) for e in reader.episodes]
    for group_start in range(0, len(rows), episodes_per_file):
        group = list(range(group_start, min(group_start + episodes_per_file, len(rows))))
        chunk, file = L.chunk_file(group_start // episodes_per_file, reader.info["chunks_size"])
        tables = [pq.read_table(p) for p in dict.fromkeys(reader.data_path(ep) for ep in group)]
        table = pa.concat_tables(tables)
        keep = np.isin(table.column("episode_index").to_numpy(), group)
        data_path = dst / L.DATA_PATH.format(chunk_index=chunk, file_index=file)
        data_path.parent.mkdir(parents=True, exist_ok=True)
        pq.write_table(table.filter(keep), data_path)
        for ep in group:
            rows[ep].update({"data/chunk_index": chunk, "data/file_index": file})
        for key in reader.video_keys:
            out_path = dst / L.VIDEO_PATH.format(video_key=key, chunk_index=chunk, file_index=file)
            out_path.parent.mkdir(parents=True, exist_ok=True)
            with av.open(str(out_path), "w", format="mp4") as out:
                ostream = None
                offset = 0.0
                for ep in group:
                    start, end = reader.video_span(ep, key)
                    with av.open(str(reader.video_path(ep, key))) as inp:
                        stream = inp.streams.video[0]
                        if ostream is None:
                            ostream = out.add_stream_from_template(stream)
                        if start > 0 or end is None:
                            raise L.DatasetError(f"{reader.video_path(ep, key)}: pack takes one episode per video "
                                                 "file; this one is packed already")
                        shift = int(round(offset / stream.time_base))
                        for packet in inp.demux(stream):
                            if packet.dts is None:
                                continue
                            packet.pts += shift
                            packet.dts += shift
                            packet.stream = ostream
                            out.mux(packet)
                    rows[ep].update({f"videos/{key}/chunk_index": chunk, f"videos/{key}/file_index": file,
                                     f"videos/{key}/from_timestamp": offset,
                                     f"videos/{key}/to_timestamp": offset + end})
                    offset += round(end * fps) / fps
    lerobot = [{k: v for k, v in row.items() if L.is_lerobot_episode_column(k)} for row in rows]
    path = dst / L.EPISODES_PATH.format(chunk_index=0, file_index=0)
    path.parent.mkdir(parents=True, exist_ok=True)
    pq.write_table(pa.Table.from_pylist(lerobot), path)
    if (src / L.SIDECAR_PATH).is_file():
        (dst / L.SIDECAR_PATH).parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(src / L.SIDECAR_PATH, dst / L.SIDECAR_PATH)
    for name in (L.TASKS_PATH, L.STATS_PATH):
        shutil.copy2(src / name, dst / name)
    info = dict(reader.info, data_files_size_in_mb=L.DEFAULT_DATA_FILE_SIZE_IN_MB)
    (dst / L.INFO_PATH).write_text(json.dumps(info, indent=4) + "\n")
    return len(rows)
