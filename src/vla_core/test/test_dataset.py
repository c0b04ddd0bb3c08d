"""LeRobotDataset v3.0 writer and reader: layout, round trip, re-record, resume, and a kill mid-commit."""
from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap

import numpy as np
import pyarrow.parquet as pq
import pytest

from vla_core.dataset import DatasetError, DatasetReader, DatasetWriter

FPS = 10.0
LEROBOT_EPISODE_COLUMNS = {"episode_index", "tasks", "length", "data/chunk_index", "data/file_index",
                           "dataset_from_index", "dataset_to_index", "meta/episodes/chunk_index",
                           "meta/episodes/file_index"}
FEATURES = {
    "observation.images.top": {"dtype": "video", "shape": [48, 64, 3], "names": ["height", "width", "channels"]},
    "observation.state": {"dtype": "float32", "shape": [4], "names": ["x.p", "y.p", "x.v", "y.v"]},
    "action": {"dtype": "float32", "shape": [2], "names": ["vx", "vy"]},
}


def image(i: int) -> np.ndarray:
    """Smooth, distinct images (a codec reproduces them to a few grey levels)."""
    y, x = np.mgrid[0:48, 0:64]
    channels = [(x * 3 + i * 7) % 256, (y * 4 + i * 5) % 256, np.full_like(x, (i * 30) % 256)]
    return np.stack(channels, -1).astype(np.uint8)


def frame(i: int, t: float | None = None, **flags) -> dict:
    return {"observation.images.top": image(i), "observation.state": np.arange(4, dtype=np.float32) + i,
            "action": np.array([0.1 * i, -0.1 * i], dtype=np.float32),
            "timestamp": i / FPS if t is None else t, "intervention": flags.get("intervention", i % 3 == 0),
            "late": flags.get("late", False), "valid": flags.get("valid", True)}


def record(writer: DatasetWriter, n: int, task: str, start: int = 0, success=True, skip=()) -> dict:
    ep = writer.begin_episode(task, contract="robot: test")
    for i in range(start, start + n):
        if i - start in skip:
            ep.count_dropped()
            continue
        ep.add_frame(frame(i, t=(i - start) / FPS))
    return ep.save(success=success)


def test_layout_matches_lerobot_v30(tmp_path):
    writer = DatasetWriter(tmp_path, FPS, FEATURES, robot_type="test_bot")
    record(writer, 12, "push the red block")
    record(writer, 7, "push the blue block", success=False)
    info = json.loads((tmp_path / "meta/info.json").read_text())
    assert info["codebase_version"] == "v3.0"
    assert (info["total_episodes"], info["total_frames"], info["total_tasks"]) == (2, 19, 2)
    assert info["data_path"] == "data/chunk-{chunk_index:03d}/file-{file_index:03d}.parquet"
    assert info["video_path"] == "videos/{video_key}/chunk-{chunk_index:03d}/file-{file_index:03d}.mp4"
    assert info["splits"] == {"train": "0:2"}
    video = info["features"]["observation.images.top"]["info"]
    assert video["video.codec"] == "h264" and video["video.pix_fmt"] == "yuv420p"
    for key in ("timestamp", "frame_index", "episode_index", "index", "task_index", "intervention", "valid"):
        assert key in info["features"]
    assert (tmp_path / "data/chunk-000/file-001.parquet").is_file()
    assert (tmp_path / "videos/observation.images.top/chunk-000/file-001.mp4").is_file()
    tasks = pq.read_table(tmp_path / "meta/tasks.parquet")  # LeRobot reads it with pandas: task is the index
    assert json.loads(tasks.schema.metadata[b"pandas"])["index_columns"] == ["__index_level_0__"]
    assert dict(zip(tasks.column("__index_level_0__").to_pylist(), tasks.column("task_index").to_pylist())) == {
        "push the red block": 0, "push the blue block": 1}
    episodes = pq.read_table(tmp_path / "meta/episodes/chunk-000/file-000.parquet").to_pylist()
    assert [e["dataset_from_index"] for e in episodes] == [0, 12]
    assert episodes[1]["tasks"] == ["push the blue block"]
    assert all(k in LEROBOT_EPISODE_COLUMNS or k.startswith(("videos/", "stats/")) for k in episodes[1])
    side = pq.read_table(tmp_path / "meta/vla/episodes.parquet").to_pylist()  # the workspace's own fields
    assert side[1]["success"] is False and side[1]["instruction"] == "push the blue block"
    assert isinstance(info["fps"], int) and info["fps"] == 10
    stats = json.loads((tmp_path / "meta/stats.json").read_text())
    assert stats["action"]["count"] == [19]
    assert np.allclose(stats["observation.state"]["min"], [0, 1, 2, 3])
    assert np.array(stats["observation.images.top"]["mean"]).shape == (3, 1, 1)
    data = pq.read_table(tmp_path / "data/chunk-000/file-001.parquet")
    assert data.column("index").to_pylist() == list(range(12, 19))


def _check_frame(item, i: int) -> None:
    np.testing.assert_array_equal(item["observation.state"], np.arange(4) + i)
    np.testing.assert_allclose(item["action"], [0.1 * i, -0.1 * i], rtol=1e-6)
    decoded = item["observation.images.top"].astype(int)
    error = np.abs(decoded - image(i)).mean()
    neighbour = min(np.abs(decoded - image(j)).mean() for j in (i - 1, i + 1))
    assert error < 8.0 and error < neighbour / 2, f"frame {i}: error {error:.1f}, neighbour {neighbour:.1f}"


def test_round_trip_keeping_gaps_within_codec_error(tmp_path):
    writer = DatasetWriter(tmp_path, FPS, FEATURES, gaps="keep")
    record(writer, 15, "task a", skip={5})  # slot 5 lost: the timestamps keep the gap
    reader = DatasetReader(tmp_path)
    assert len(reader) == 14 and reader.episode(0)["dropped_frames"] == 1
    for row, i in enumerate([0, 1, 2, 3, 4, 6, 7, 8, 9, 10, 11, 12, 13, 14]):
        item = reader[row]
        assert item["frame_index"] == row and item["task"] == "task a"
        assert item["timestamp"] == pytest.approx(i / FPS)
        assert item["intervention"] == (i % 3 == 0)
        _check_frame(item, i)
    # The video still has a frame in every slot (slot 5 repeats slot 4), so a decoder that indexes frames by
    # timestamp * fps (LeRobot's default, torchcodec) finds the last frame instead of running off the end.
    import av
    with av.open(str(tmp_path / "videos/observation.images.top/chunk-000/file-000.mp4")) as c:
        assert sum(1 for _ in c.decode(video=0)) == 15


def test_dropped_frames_are_filled_by_default_so_timestamps_are_exact(tmp_path):
    writer = DatasetWriter(tmp_path, FPS, FEATURES)
    row = record(writer, 15, "task a", skip={5, 6, 11})
    reader = DatasetReader(tmp_path)
    frames = reader.episode_frames(0)
    assert len(reader) == 15 and row["dropped_frames"] == 3 and row["invalid_frames"] == 3
    np.testing.assert_array_equal(frames["frame_index"], np.arange(15))
    np.testing.assert_array_equal(frames["timestamp"], (np.arange(15) / FPS).astype(np.float32))
    assert np.flatnonzero(~frames["valid"]).tolist() == [5, 6, 11]  # left out of training and of the stats
    for i, source in enumerate([0, 1, 2, 3, 4, 4, 4, 7, 8, 9, 10, 10, 12, 13, 14]):
        _check_frame(reader[i], source)  # a filled slot repeats the previous frame
    stats = json.loads((tmp_path / "meta/stats.json").read_text())
    assert stats["action"]["count"] == [12]


def test_invalid_frames_are_flagged_and_left_out_of_stats(tmp_path):
    writer = DatasetWriter(tmp_path, FPS, FEATURES)
    ep = writer.begin_episode("t")
    ep.add_frame(frame(0))
    bad = frame(1, valid=False)
    bad["action"] = np.array([np.nan, 1e9], dtype=np.float32)
    ep.add_frame(bad)
    row = ep.save()
    assert row["invalid_frames"] == 1
    stats = json.loads((tmp_path / "meta/stats.json").read_text())
    assert stats["action"]["max"] == [0.0, 0.0] and stats["action"]["count"] == [1]
    assert not DatasetReader(tmp_path)[1]["valid"]


def test_discard_rerecord_resume_and_label(tmp_path):
    writer = DatasetWriter(tmp_path, FPS, FEATURES)
    record(writer, 5, "a")
    ep = writer.begin_episode("b")
    ep.add_frame(frame(0))
    ep.discard()  # re-record: the same index is used again
    assert not (tmp_path / ".staging").exists() or not any((tmp_path / ".staging").iterdir())
    record(writer, 6, "b", start=100)
    writer.set_success(1, False)
    again = DatasetWriter(tmp_path, FPS, FEATURES)  # resume
    assert again.num_episodes == 2
    record(again, 4, "a", start=200)
    reader = DatasetReader(tmp_path)
    assert [e["length"] for e in reader.episodes] == [5, 6, 4]
    assert reader.episode(1)["success"] is False and reader.episode(0)["success"] is True
    assert reader[11]["episode_index"] == 2 and reader[11]["index"] == 11
    np.testing.assert_array_equal(reader[5]["observation.state"], np.arange(4) + 100)
    assert reader.tasks == {"a": 0, "b": 1}


def test_reopen_with_another_contract_is_refused(tmp_path):
    record(DatasetWriter(tmp_path, FPS, FEATURES), 3, "a")
    other = dict(FEATURES, action={"dtype": "float32", "shape": [3], "names": ["a", "b", "c"]})
    with pytest.raises(DatasetError, match="feature 'action'"):
        DatasetWriter(tmp_path, FPS, other)
    with pytest.raises(DatasetError, match="fps"):
        DatasetWriter(tmp_path, 30.0, FEATURES)


def test_sigkill_during_an_episode_keeps_finished_ones(tmp_path):
    """A child process commits two episodes, starts a third and is SIGKILLed while encoding it."""
    script = textwrap.dedent(f"""
        import os, signal, sys
        sys.path.insert(0, {os.path.dirname(__file__)!r})
        from test_dataset import DatasetWriter, FEATURES, FPS, frame, record
        w = DatasetWriter({str(tmp_path)!r}, FPS, FEATURES)
        record(w, 8, "first"); record(w, 9, "second")
        ep = w.begin_episode("third")
        for i in range(40):
            ep.add_frame(frame(i))
        print("recording", flush=True)
        os.kill(os.getpid(), signal.SIGKILL)
    """)
    proc = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=60)
    assert proc.returncode == -9, proc.stderr
    assert "recording" in proc.stdout
    assert (tmp_path / ".staging").exists()  # the interrupted episode was there
    reader = DatasetReader(tmp_path)
    assert reader.num_episodes == 2 and len(reader) == 17
    assert reader[16]["frame_index"] == 8
    writer = DatasetWriter(tmp_path, FPS, FEATURES)
    assert not (tmp_path / ".staging").exists()
    record(writer, 3, "third")
    assert DatasetReader(tmp_path).episode(2)["dataset_from_index"] == 17


def test_missing_dataset_says_what_to_do(tmp_path):
    with pytest.raises(DatasetError, match="vla record"):
        DatasetReader(tmp_path / "nothing")


def test_intervention_summary_counts_operator_frames_and_takeovers(tmp_path):
    from vla_core.dataset.reader import intervention_summary
    writer = DatasetWriter(tmp_path, FPS, FEATURES)
    for flags in ([False, False, True, True, True, False, True, False], [False] * 5, [True] * 4):
        ep = writer.begin_episode("t")
        for i, flag in enumerate(flags):
            ep.add_frame(frame(i, intervention=flag))
        ep.save(success=True)
    assert intervention_summary(tmp_path, [0, 1]) == {"episodes": 2, "frames": 13, "intervention_frames": 4,
                                                      "takeovers": 2, "episodes_with_takeover": 1}
    assert intervention_summary(tmp_path, [2])["takeovers"] == 1  # operator in control from the first frame
