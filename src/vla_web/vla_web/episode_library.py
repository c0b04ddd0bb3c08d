"""The operator page's recorded episodes (no ROS): find the LeRobotDataset v3.0 directories under the configured
folders, list a dataset's episodes, and play one into the Rerun live view's server as a recording of its own.

The page names a dataset by its index in :meth:`EpisodeLibrary.datasets` and an episode by its index, never by a
path: a request cannot reach a directory the node was not configured with. A dataset is re-read at every request,
so episodes the recorder saves meanwhile show up (the recorder's directories are the usual ones to browse).
"""
from __future__ import annotations

import os
from pathlib import Path

from vla_core.dataset import DatasetError, DatasetReader
from vla_core.dataset.reader import load_meta

MAX_DEPTH = 5           # folder levels searched below each configured folder
MAX_DATASETS = 200      # a page lists at most this many


def find_datasets(roots: list[Path], max_depth: int = MAX_DEPTH, limit: int = MAX_DATASETS) -> list[Path]:
    """The dataset directories (holding ``meta/info.json``) under ``roots``, sorted, at most ``limit``; a dataset's
    own subfolders are not searched, nor hidden folders."""
    found: list[Path] = []
    for root in roots:
        root = Path(root)
        if not root.is_dir():
            continue
        base_depth = len(root.resolve().parts)
        for here, dirs, _files in os.walk(root):
            path = Path(here)
            if (path / "meta" / "info.json").is_file():
                found.append(path)
                dirs[:] = []
                continue
            if len(path.resolve().parts) - base_depth >= max_depth:
                dirs[:] = []
            dirs[:] = sorted(d for d in dirs if not d.startswith("."))
    unique = sorted({p.resolve(): p for p in found}.values())
    return unique[:limit]


def episode_row(meta: dict) -> dict:
    """What the page shows of one episode."""
    return {"index": int(meta["episode_index"]), "length": int(meta["length"]),
            "success": meta.get("success") if isinstance(meta.get("success"), bool) else None,
            "instruction": meta.get("instruction") or "; ".join(meta.get("tasks") or []),
            **{k: int(meta.get(k) or 0) for k in ("late_frames", "dropped_frames", "invalid_frames",
                                                    "intervention_frames")}}


class EpisodeLibrary:
    """``roots``: folders to search (``datasets`` parameter); ``grpc_uri``: the live view's Rerun server (None when
    the node runs without Rerun)."""

    def __init__(self, roots: list[Path], grpc_uri: str | None):
        self.roots = [Path(r) for r in roots]
        self.grpc_uri = grpc_uri
        self._paths: list[Path] = []

    def datasets(self) -> list[dict]:
        """Every dataset found: ``index``, ``path``, ``episodes``, ``fps``, ``cameras`` (or ``error`` for one that
        does not load)."""
        self._paths = find_datasets(self.roots)
        rows = []
        for i, path in enumerate(self._paths):
            row = {"index": i, "path": str(path)}
            try:
                info, episodes, _ = load_meta(path)
                row.update(episodes=len(episodes), fps=float(info["fps"]),
                           cameras=[k.rsplit(".", 1)[-1] for k, f in info["features"].items()
                                    if f.get("dtype") in ("video", "image")])
            except (DatasetError, OSError, KeyError, ValueError) as exc:
                row["error"] = f"{type(exc).__name__}: {exc}"
            rows.append(row)
        return rows

    def _path(self, dataset: int) -> Path:
        if not self._paths:
            self._paths = find_datasets(self.roots)
        if not isinstance(dataset, int) or isinstance(dataset, bool) or not 0 <= dataset < len(self._paths):
            where = ", ".join(str(r) for r in self.roots) or "no folder"
            raise DatasetError(f"no dataset {dataset!r}: {len(self._paths)} found under {where} "
                               f"(indices 0..{len(self._paths) - 1}); list them again with /api/datasets")
        return self._paths[dataset]

    def episodes(self, dataset: int) -> list[dict]:
        _, episodes, _ = load_meta(self._path(dataset))
        return [episode_row(e) for e in episodes]

    def play(self, dataset: int, episode: int) -> tuple[str, int]:
        """Log episode ``episode`` of dataset ``dataset`` into the Rerun server as its own recording; returns the
        recording's name and the frames logged."""
        path = self._path(dataset)
        if self.grpc_uri is None:
            raise DatasetError("the Rerun view is off (rerun:=false), so there is no viewer to play into; write "
                               f"the episode to a file instead: python -m vla_web.episodes {path} --episode "
                               f"{episode} --save episode.rrd")
        if not isinstance(episode, int) or isinstance(episode, bool):
            raise DatasetError(f"episode must be an index, got {episode!r}")
        import rerun as rr

        from vla_web.episodes import log_episode
        reader = DatasetReader(path)
        name = f"{path.name} episode {episode}"
        rec = rr.RecordingStream("vla_web_episodes", recording_id=f"{path.resolve()}#{episode}")
        try:
            rec.connect_grpc(url=self.grpc_uri)
            n = log_episode(rec, reader, episode)
            rec.flush(timeout_sec=10.0)
        finally:
            rec.disconnect()
            reader.close()
        return name, n
