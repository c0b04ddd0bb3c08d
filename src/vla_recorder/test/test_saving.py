"""The recorder's save path on a full disk: a save reported "not saved" leaves the dataset as it was, and one that
reached the commit point is reported saved.

A real full disk cannot be made here (no root, no loop devices or tmpfs mounts in tests), so the disk is made
"full" by replacing the lowest-level writes the dataset writer makes (parquet files, fsync of files and
directories, the video encoder's flush) with functions that raise OSError(ENOSPC), the error a full disk gives,
from the k-th write on; k sweeps every write a save makes.
"""
from __future__ import annotations

import errno
import os
from collections import Counter
from pathlib import Path

import numpy as np
import pyarrow.parquet as pq

from vla_core.dataset import DatasetReader, DatasetWriter
from vla_core.dataset.video import VideoEncoder
from vla_recorder.sampler import SamplerCounters
from vla_recorder.saving import SIDECAR_PATH, close_episode

FPS = 10.0
FEATURES = {
    "observation.images.top": {"dtype": "video", "shape": [16, 16, 3], "names": ["height", "width", "channels"]},
    "observation.state": {"dtype": "float32", "shape": [2], "names": ["x", "y"]},
    "action": {"dtype": "float32", "shape": [2], "names": ["vx", "vy"]},
}


def frame(i: int) -> dict:
    return {"observation.images.top": np.full((16, 16, 3), 10 * i, np.uint8),
            "observation.state": np.array([i, -i], np.float32), "action": np.array([0.1, 0.0], np.float32),
            "timestamp": i / FPS, "intervention": False, "late": False, "valid": True}


def record(writer: DatasetWriter, task: str, n: int = 3):
    episode = writer.begin_episode(task, contract="robot: test")
    for i in range(n):
        episode.add_frame(frame(i))
    return episode


class FullDisk:
    """From the ``after``-th write on, every write fails with ENOSPC (None: the disk never fills)."""

    def __init__(self, monkeypatch, after: int | None):
        self.after, self.writes, self.failed = after, 0, 0
        write_table, fsync, close = pq.write_table, os.fsync, VideoEncoder.close

        def guard(real):
            def call(*args, **kwargs):
                self.writes += 1
                if self.after is not None and self.writes > self.after:
                    self.failed += 1
                    raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))
                return real(*args, **kwargs)
            return call
        monkeypatch.setattr(pq, "write_table", guard(write_table))
        monkeypatch.setattr(os, "fsync", guard(fsync))
        monkeypatch.setattr(VideoEncoder, "close", guard(close))

    def free(self) -> None:
        self.after = None


def visible_files(root: Path) -> set[str]:
    """Files a reader of the dataset could pick up (hidden temporary files and the staging area excluded)."""
    return {str(p.relative_to(root)) for p in root.rglob("*") if p.is_file()
            and not any(part.startswith(".") for part in p.relative_to(root).parts)}


def test_counting_the_writes_of_one_save(tmp_path, monkeypatch):
    writer = DatasetWriter(tmp_path, FPS, FEATURES)
    disk = FullDisk(monkeypatch, None)
    summary = close_episode(writer, record(writer, "a"), "save", "test", True, SamplerCounters(), {})
    assert summary["saved"] and disk.writes >= 6  # encoder flush, data parquet, fsyncs, tasks, episodes, json


def test_a_save_on_a_full_disk_never_lies(tmp_path, monkeypatch):
    """For every write of a save that the full disk can fail: "not saved" means the dataset (files and the
    writer's own state) is exactly as before, and after space is freed the next episode takes that index and
    the failed one never appears; "saved" means the dataset holds it."""
    probe = DatasetWriter(tmp_path / "probe", FPS, FEATURES)
    counting = FullDisk(monkeypatch, None)
    close_episode(probe, record(probe, "task 0"), "save", "test", None, SamplerCounters(), {})
    counting.writes = 0
    close_episode(probe, record(probe, "task 1"), "save", "test", None, SamplerCounters(), {})
    writes_per_save = counting.writes
    monkeypatch.undo()

    outcomes = Counter()
    for k in range(writes_per_save):
        root = tmp_path / f"k{k}"
        writer = DatasetWriter(root, FPS, FEATURES)
        first = close_episode(writer, record(writer, "task 0"), "save", "test", True, SamplerCounters(), {})
        assert first["saved"], first["message"]
        before, rows_before = visible_files(root), DatasetReader(root).episodes
        disk = FullDisk(monkeypatch, k)
        summary = close_episode(writer, record(writer, "task full"), "save", "test", True, SamplerCounters(),
                                {"image_data": 2})
        assert disk.failed >= 1, f"write {k} was never reached"
        reader = DatasetReader(root)
        if summary["saved"]:
            outcomes["saved"] += 1
            assert reader.num_episodes == 2 and reader.episode(1)["tasks"] == ["task full"], summary["message"]
        else:
            outcomes["not saved"] += 1
            assert "not saved" in summary["message"] and "No space left" in summary["message"]
            assert reader.num_episodes == 1 and writer.num_episodes == 1, summary["message"]
            assert visible_files(root) == before, f"write {k}: a failed save left files behind"
            assert reader.episodes == rows_before
            assert "task full" not in writer.tasks
        disk.free()
        third = close_episode(writer, record(writer, "task 2"), "save", "test", True, SamplerCounters(), {})
        assert third["saved"], third["message"]
        reader = DatasetReader(root)
        tasks = [reader.episode(i)["tasks"][0] for i in range(reader.num_episodes)]
        expected = ["task 0", "task full", "task 2"] if summary["saved"] else ["task 0", "task 2"]
        assert tasks == expected, (k, summary["message"])  # the failed episode never reappears
        assert reader.episode_frames(reader.num_episodes - 1)["observation.images.top"].shape == (3, 16, 16, 3)
        assert len(list((root / "data").rglob("*.parquet"))) == reader.num_episodes  # no orphan data file
        monkeypatch.undo()
    assert outcomes["not saved"] >= 3  # the sweep reached failures before the commit point


def test_a_saved_episode_carries_its_reject_counts(tmp_path):
    writer = DatasetWriter(tmp_path, FPS, FEATURES)
    counters = SamplerCounters(invalid_reasons=Counter(action_nonfinite=2))
    summary = close_episode(writer, record(writer, "a"), "save", "test", True, counters,
                            {"image_future_stamp": 1, "episode_event": 3})
    assert summary["saved"] and "4 inputs refused (episode_event 3, image_future_stamp 1)" in summary["message"]
    assert "action_nonfinite 2" in summary["message"]
    import json
    sidecar = json.loads((tmp_path / SIDECAR_PATH.format(episode_index=0)).read_text())
    assert sidecar["rejects"] == {"image_future_stamp": 1, "episode_event": 3}
    assert sidecar["invalid_reasons"] == {"action_nonfinite": 2}


def test_discard_and_empty_episode_are_not_saved(tmp_path):
    writer = DatasetWriter(tmp_path, FPS, FEATURES)
    discarded = close_episode(writer, record(writer, "a"), "discard", "operator", None, SamplerCounters(), {})
    assert not discarded["saved"] and "discarded (operator)" in discarded["message"]
    empty = close_episode(writer, writer.begin_episode("b"), "save", "time limit", None, SamplerCounters(), {})
    assert not empty["saved"] and "no frames" in empty["message"]
    assert writer.num_episodes == 0

