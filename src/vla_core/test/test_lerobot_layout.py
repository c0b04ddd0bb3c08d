"""Datasets in LeRobot's own layouts: many episodes per parquet and per MP4, list<float> vectors, one camera named
observation.image, images stored in the parquet; the stats schema and metadata LeRobot's writer needs to append."""
from __future__ import annotations

import json
import shutil
import warnings
from pathlib import Path

import numpy as np
import pyarrow.parquet as pq
import pytest

from vla_core.dataset import DatasetError, DatasetReader, DatasetWriter
from vla_core.dataset import layout as L

F = None


def setup_module(module):
    import importlib.util
    spec = importlib.util.spec_from_file_location("lerobot_layout", Path(__file__).with_name("lerobot_layout.py"))
    module.F = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module.F)
    module.F.load_fixture_module()


def assert_episodes_intact(reader: DatasetReader, lengths: list[int], camera: str = "observation.images.top"):
    """Every episode's rows and images are its own (colour = episode, grey level = frame)."""
    assert reader.num_episodes == len(lengths) and len(reader) == sum(lengths)
    for ep, n in enumerate(lengths):
        frames = reader.episode_frames(ep)
        seen = [F.identify(img) for img in frames[camera]]
        assert [e for e, _ in seen] == [ep] * n, f"episode {ep} got the images of episodes {seen}"
        assert [f for _, f in seen] == [i % 28 for i in range(n)], f"episode {ep}: frames {seen}"
        np.testing.assert_array_equal(frames["observation.state"][:, :2], np.stack([np.full(n, ep), np.arange(n)], 1))
        np.testing.assert_allclose(frames["action"][:, 0], ep + 0.25)
        assert frames["observation.state"].dtype == np.float32 and frames["observation.state"].shape == (n, 4)


@pytest.mark.parametrize("codec", ["libx264", "libsvtav1"])
@pytest.mark.parametrize("lengths", [[10] * 6, [9, 14, 7, 12, 10, 8]], ids=["equal", "unequal"])
def test_many_episodes_per_file_each_get_their_own_frames(tmp_path, codec, lengths):
    F.write_lerobot_dataset(tmp_path, lengths, episodes_per_file=4, codec=codec)
    reader = DatasetReader(tmp_path)
    assert_episodes_intact(reader, lengths)
    # Random access by global index lands in the right episode too (the last episode of the first file, the first
    # of the second).
    for ep in (3, 4):
        first = reader.episode(ep)["dataset_from_index"]
        assert F.identify(reader[first + 2]["observation.images.top"]) == (ep, 2)


def test_a_shared_video_is_decoded_once_in_file_order(tmp_path):
    lengths = [8] * 12
    F.write_lerobot_dataset(tmp_path, lengths, episodes_per_file=12)
    reader = DatasetReader(tmp_path)
    for ep in range(reader.num_episodes):
        reader.episode_frames(ep)
    (decoder,) = reader._videos.values()
    assert decoder.frames_decoded <= sum(lengths) + 2  # linear: each frame once (quadratic would be ~6x)


def test_list_float_vectors_read(tmp_path):
    lengths = [6, 9, 5]
    F.write_lerobot_dataset(tmp_path, lengths, episodes_per_file=2, vectors="list")
    import pyarrow as pa
    assert pa.types.is_list(pq.read_schema(tmp_path / "data/chunk-000/file-000.parquet").field("action").type)
    assert_episodes_intact(DatasetReader(tmp_path), lengths)


def test_single_camera_observation_image_reads(tmp_path):
    lengths = [7, 7, 7]
    F.write_lerobot_dataset(tmp_path, lengths, episodes_per_file=3, camera="observation.image")
    reader = DatasetReader(tmp_path)
    assert reader.camera_keys == ["observation.image"]
    assert_episodes_intact(reader, lengths, camera="observation.image")


def test_images_stored_in_parquet_are_decoded(tmp_path):
    lengths = [5, 8, 6]
    F.write_lerobot_dataset(tmp_path, lengths, episodes_per_file=2, storage="image")
    reader = DatasetReader(tmp_path)
    assert reader.image_keys == ["observation.images.top"] and reader.video_keys == []
    assert_episodes_intact(reader, lengths)
    item = reader[6]
    assert item["observation.images.top"].dtype == np.uint8
    np.testing.assert_array_equal(item["observation.images.top"], F.frame_image(1, 1))  # PNG: lossless


def test_damaged_image_bytes_name_the_file(tmp_path):
    F.write_lerobot_dataset(tmp_path, [3], storage="image")
    path = tmp_path / "data/chunk-000/file-000.parquet"
    table = pq.read_table(path)
    import pyarrow as pa
    bad = pa.array([{"bytes": b"not an image", "path": None}] * 3, table.schema.field("observation.images.top").type)
    pq.write_table(table.set_column(0, "observation.images.top", bad), path)
    with pytest.raises(DatasetError, match="not a PNG or JPEG"):
        DatasetReader(tmp_path).episode_frames(0)


def test_episode_missing_its_video_location_is_a_clear_error(tmp_path):
    F.write_lerobot_dataset(tmp_path, [4, 4])
    path = tmp_path / "meta/episodes/chunk-000/file-000.parquet"
    table = pq.read_table(path)
    pq.write_table(table.drop_columns(["videos/observation.images.top/file_index"]), path)
    with pytest.raises(DatasetError, match="videos/observation.images.top/file_index"):
        DatasetReader(tmp_path).episode_frames(1)


FEATURES = {
    "observation.images.top": {"dtype": "video", "shape": [32, 48, 3], "names": ["height", "width", "channels"]},
    "observation.state": {"dtype": "float32", "shape": [4], "names": ["s0", "s1", "s2", "s3"]},
    "action": {"dtype": "float32", "shape": [2], "names": ["a0", "a1"]},
}


def record(writer: DatasetWriter, ep: int, n: int, task: str = "task number 0", success=True) -> dict:
    episode = writer.begin_episode(task, contract="robot: fixture")
    for i in range(n):
        episode.add_frame({"observation.images.top": F.frame_image(ep, i),
                           "observation.state": np.array([ep, i, 0.5, 0.5], np.float32),
                           "action": np.array([ep + 0.25, -i], np.float32), "timestamp": i / 10,
                           "intervention": i < 2, "late": False, "valid": True})
    return episode.save(success=success)


def test_stats_have_lerobots_full_schema_for_every_feature(tmp_path):
    writer = DatasetWriter(tmp_path, 10.0, FEATURES)
    record(writer, 0, 12)
    record(writer, 1, 20)
    stats = json.loads((tmp_path / "meta/stats.json").read_text())
    numeric = ["observation.images.top", "observation.state", "action", "timestamp", "frame_index", "episode_index",
               "index", "task_index", "intervention", "late", "valid"]
    for key in numeric:
        assert set(stats[key]) == set(L.STAT_NAMES), key
    assert stats["index"]["max"] == [31.0] and stats["frame_index"]["q50"][0] == pytest.approx(
        (12 * 5.5 + 20 * 9.5) / 32)  # count-weighted mean of the episodes' medians, as LeRobot aggregates
    assert np.array(stats["observation.images.top"]["q99"]).shape == (3, 1, 1)
    assert stats["observation.state"]["q01"][0] <= stats["observation.state"]["q99"][0]
    episodes = pq.read_table(tmp_path / "meta/episodes/chunk-000/file-000.parquet")
    for key in numeric:
        for stat in L.STAT_NAMES:
            assert f"stats/{key}/{stat}" in episodes.column_names
    row = episodes.to_pylist()[1]
    assert row["stats/observation.state/q50"][1] == pytest.approx(9.5)
    assert row["stats/observation.state/count"] == [20]


def test_non_integral_fps_is_refused():
    with pytest.raises(DatasetError, match="integral fps"):
        DatasetWriter("/nonexistent-never-created", 12.5, FEATURES)


def test_workspace_fields_live_in_a_sidecar_and_fall_back_without_it(tmp_path):
    writer = DatasetWriter(tmp_path, 10, FEATURES)
    record(writer, 0, 6, "push the red block", success=True)
    record(writer, 1, 5, "push the blue block", success=False)
    reader = DatasetReader(tmp_path)
    assert reader.episode(1)["success"] is False and reader.episode(1)["intervention_frames"] == 2
    assert reader.episode(0)["contract"] == "robot: fixture"
    # A copy edited by a tool that does not keep meta/vla (LeRobot's delete/split/merge): the reader falls back.
    copy = tmp_path.parent / "edited"
    shutil.copytree(tmp_path, copy)
    shutil.rmtree(copy / "meta/vla")
    fallback = DatasetReader(copy)
    assert fallback.episode(1)["instruction"] == "push the blue block"  # from tasks
    assert fallback.episode(1)["success"] is None and fallback.episode(1)["contract"] == ""
    # A sidecar that no longer matches (episodes re-indexed) is ignored row by row, with a warning.
    shutil.copytree(tmp_path / "meta/vla", copy / "meta/vla")
    path = copy / "meta/episodes/chunk-000/file-000.parquet"
    table = pq.read_table(path)
    pq.write_table(table.filter(table.column("episode_index").to_numpy() == 1).set_column(
        0, "episode_index", __import__("pyarrow").array([0], __import__("pyarrow").int64())), path)
    with pytest.warns(UserWarning, match="match no episode"):
        reindexed = DatasetReader(copy)
    assert reindexed.episode(0)["success"] is None and reindexed.episode(0)["instruction"] == "push the blue block"


def test_appending_to_a_dataset_lerobot_wrote(tmp_path):
    lengths = [6, 7, 5, 8, 6]
    F.write_lerobot_dataset(tmp_path, lengths, episodes_per_file=3, tasks=["task number 0"] * 5)
    writer = DatasetWriter(tmp_path, 10, FEATURES)
    assert writer.num_episodes == 5
    record(writer, 5, 9)
    record(writer, 6, 4, success=False)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        reader = DatasetReader(tmp_path)
    assert_episodes_intact(reader, lengths + [9, 4])
    assert reader.episode(6)["success"] is False and reader.episode(2)["success"] is None
    assert reader.tasks == {"task number 0": 0}
    info = json.loads((tmp_path / "meta/info.json").read_text())
    assert info["total_episodes"] == 7 and info["total_frames"] == sum(lengths) + 13 and info["fps"] == 10


def test_import_checks_every_episode_then_copies_and_repack_makes_timestamps_exact(tmp_path):
    from vla_core.dataset.lerobot_import import check_dataset, import_dataset, repack_dataset
    src = F.write_lerobot_dataset(tmp_path / "lerobot", [6, 7, 5], episodes_per_file=2, vectors="list")
    report = import_dataset(src, tmp_path / "copy")
    assert report.ok and report.episodes == 3 and report.episodes_per_data_file == 1.5
    assert_episodes_intact(DatasetReader(tmp_path / "copy"), [6, 7, 5])
    import_dataset(src, tmp_path / "repacked", repack=True)
    assert_episodes_intact(DatasetReader(tmp_path / "repacked"), [6, 7, 5])
    assert (tmp_path / "repacked/data/chunk-000/file-002.parquet").is_file()  # one file per episode
    # A workspace dataset recorded keeping its gaps: repack gives exact timestamps, the gap filled and invalid.
    keep = DatasetWriter(tmp_path / "keep", 10, FEATURES, gaps="keep")
    episode = keep.begin_episode("t")
    for i in (0, 1, 2, 4, 5):
        episode.add_frame({"observation.images.top": F.frame_image(0, i), "timestamp": i / 10,
                           "observation.state": np.array([0, i, 0, 0], np.float32),
                           "action": np.zeros(2, np.float32), "intervention": False, "late": False, "valid": True})
    episode.save()
    assert check_dataset(tmp_path / "keep").gaps == 1
    repack_dataset(tmp_path / "keep", tmp_path / "exact")
    frames = DatasetReader(tmp_path / "exact").episode_frames(0)
    assert frames["valid"].tolist() == [True, True, True, False, True, True]
    assert [F.identify(img)[1] for img in frames["observation.images.top"]] == [0, 1, 2, 2, 4, 5]
    assert check_dataset(tmp_path / "exact").gaps == 0


def test_import_refuses_a_damaged_dataset_listing_every_problem(tmp_path):
    from vla_core.dataset.lerobot_import import import_dataset
    src = F.write_lerobot_dataset(tmp_path / "lerobot", [6, 7, 5], episodes_per_file=1)
    (src / "videos/observation.images.top/chunk-000/file-001.mp4").unlink()
    with pytest.raises(DatasetError, match="episode 1: .*file-001.mp4 is missing"):
        import_dataset(src, tmp_path / "copy")
    assert not (tmp_path / "copy").exists()
