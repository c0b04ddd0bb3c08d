"""Write datasets the way LeRobot's own writer lays them out by default, independently of vla_core.dataset.

LeRobot packs many episodes into one data parquet and one MP4 per camera and locates each episode in the shared
video by ``videos/<key>/from_timestamp`` and ``to_timestamp``. Every episode here has content of its own (each
frame's colour names its episode, its brightness its frame; the state is [episode, frame, ...]) so that a reader
that hands one episode another's frames is caught. Variants: vector columns as fixed-size lists (HF datasets)
or plain ``list<float>`` (pandas, LeRobot's merge), one camera ``observation.image``, images stored in the parquet
(``dtype: image``), and the codec (h264 or AV1, LeRobot's default).

Load it from a test with ``load_fixture_module()`` below (test files are imported by path).
"""
from __future__ import annotations

import json
from fractions import Fraction
from pathlib import Path

import av
import cv2
import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from vla_core.sched import no_realtime_escalation

H, W = 32, 48


def episode_colour(episode: int) -> np.ndarray:
    """The RGB colour of every frame of ``episode`` (distinct for the first 12 episodes at least)."""
    palette = [(220, 40, 40), (40, 220, 40), (40, 40, 220), (220, 220, 40), (220, 40, 220), (40, 220, 220),
               (240, 140, 20), (140, 20, 240), (20, 240, 140), (120, 120, 120), (250, 250, 250), (10, 10, 10)]
    return np.array(palette[episode % len(palette)], np.uint8)


def frame_image(episode: int, frame: int) -> np.ndarray:
    """Colour of the episode on the left two thirds, the frame number as grey level on the right third."""
    img = np.empty((H, W, 3), np.uint8)
    img[:] = episode_colour(episode)
    img[:, 2 * W // 3:] = (frame * 9) % 256
    return img


def identify(img: np.ndarray) -> tuple[int, int]:
    """(episode, frame mod 28) a decoded image shows (nearest palette colour, grey level / 9)."""
    left = img[4:-4, 4:2 * W // 3 - 4].reshape(-1, 3).mean(0)
    episode = int(np.argmin([np.abs(left - episode_colour(e)).sum() for e in range(12)]))
    grey = float(img[4:-4, 2 * W // 3 + 4:-4].mean())
    return episode, int(round(grey / 9.0))


@no_realtime_escalation()  # SVT-AV1 run as root makes the writing thread real-time
def write_lerobot_dataset(root: Path, lengths: list[int], fps: int = 10, episodes_per_file: int = 100,
                          camera: str = "observation.images.top", storage: str = "video", codec: str = "libx264",
                          vectors: str = "fixed", state_dim: int = 4, action_dim: int = 2,
                          tasks: list[str] | None = None) -> Path:
    """A LeRobotDataset v3.0 at ``root`` with ``len(lengths)`` episodes, ``episodes_per_file`` per data parquet
    and per MP4. ``storage``: "video" or "image"; ``vectors``: "fixed" (fixed_size_list) or "list" (list<float>)."""
    root = Path(root)
    tasks = tasks or [f"task number {e % 3}" for e in range(len(lengths))]
    task_names = list(dict.fromkeys(tasks))
    features = {
        camera: {"dtype": storage, "shape": [H, W, 3], "names": ["height", "width", "channels"]},
        "observation.state": {"dtype": "float32", "shape": [state_dim], "names": [f"s{i}" for i in range(state_dim)]},
        "action": {"dtype": "float32", "shape": [action_dim], "names": [f"a{i}" for i in range(action_dim)]},
        "timestamp": {"dtype": "float32", "shape": [1], "names": None},
        "frame_index": {"dtype": "int64", "shape": [1], "names": None},
        "episode_index": {"dtype": "int64", "shape": [1], "names": None},
        "index": {"dtype": "int64", "shape": [1], "names": None},
        "task_index": {"dtype": "int64", "shape": [1], "names": None},
    }
    if storage == "video":
        codec_name = {"libx264": "h264", "libsvtav1": "av1"}[codec]  # the stream's name, as LeRobot probes it
        features[camera]["info"] = {"video.height": H, "video.width": W, "video.codec": codec_name,
                                    "video.pix_fmt": "yuv420p", "video.is_depth_map": False, "video.fps": fps,
                                    "video.channels": 3, "has_audio": False}
    groups = [list(range(i, min(i + episodes_per_file, len(lengths))))
              for i in range(0, len(lengths), episodes_per_file)]
    episode_rows = []
    index = 0
    for file_index, group in enumerate(groups):
        cols: dict[str, list] = {k: [] for k in ("state", "action", "timestamp", "frame_index", "episode_index",
                                                 "index", "task_index", "image")}
        offset = 0  # frames of the shared video before this episode
        container = stream = None
        if storage == "video":
            path = root / f"videos/{camera}/chunk-000/file-{file_index:03d}.mp4"
            path.parent.mkdir(parents=True, exist_ok=True)
            container = av.open(str(path), mode="w")
            stream = container.add_stream(codec, rate=Fraction(fps), options={"g": "2"} if codec == "libx264"
                                          else {"g": "2", "preset": "12"})
            stream.width, stream.height, stream.pix_fmt = W, H, "yuv420p"
            stream.time_base = Fraction(1, fps)
        for ep in group:
            n = lengths[ep]
            for i in range(n):
                img = frame_image(ep, i)
                cols["state"].append([float(ep), float(i)] + [0.5] * (state_dim - 2))
                cols["action"].append([ep + 0.25, -float(i)] + [0.0] * (action_dim - 2))
                cols["timestamp"].append(i / fps)
                cols["frame_index"].append(i)
                cols["episode_index"].append(ep)
                cols["index"].append(index + i)
                cols["task_index"].append(task_names.index(tasks[ep]))
                if storage == "video":
                    frame = av.VideoFrame.from_ndarray(img, format="rgb24")
                    frame.pts = offset + i
                    for packet in stream.encode(frame):
                        container.mux(packet)
                else:
                    ok, png = cv2.imencode(".png", img[..., ::-1])
                    cols["image"].append({"bytes": png.tobytes(), "path": f"frame_{index + i:06d}.png"})
            row = {"episode_index": ep, "tasks": [tasks[ep]], "length": n,
                   "data/chunk_index": 0, "data/file_index": file_index,
                   "dataset_from_index": index, "dataset_to_index": index + n}
            if storage == "video":
                row.update({f"videos/{camera}/chunk_index": 0, f"videos/{camera}/file_index": file_index,
                            f"videos/{camera}/from_timestamp": offset / fps,
                            f"videos/{camera}/to_timestamp": (offset + n) / fps})
            row.update({"meta/episodes/chunk_index": 0, "meta/episodes/file_index": 0})
            state = np.asarray(cols["state"][-n:])
            row.update({f"stats/observation.state/{s}": getattr(np, s)(state, 0).tolist()
                        for s in ("min", "max", "mean", "std")})
            row["stats/observation.state/count"] = [n]
            episode_rows.append(row)
            index += n
            offset += n
        if container is not None:
            for packet in stream.encode(None):
                container.mux(packet)
            container.close()
        vec = (lambda d: pa.list_(pa.float32(), d)) if vectors == "fixed" else (lambda d: pa.list_(pa.float32()))
        arrays = {}
        if storage == "image":
            arrays[camera] = pa.array(cols["image"], pa.struct([("bytes", pa.binary()), ("path", pa.string())]))
        arrays.update({
            "observation.state": pa.array(cols["state"], vec(state_dim)),
            "action": pa.array(cols["action"], vec(action_dim)),
            "timestamp": pa.array(cols["timestamp"], pa.float32()),
            "frame_index": pa.array(cols["frame_index"], pa.int64()),
            "episode_index": pa.array(cols["episode_index"], pa.int64()),
            "index": pa.array(cols["index"], pa.int64()),
            "task_index": pa.array(cols["task_index"], pa.int64()),
        })
        path = root / f"data/chunk-000/file-{file_index:03d}.parquet"
        path.parent.mkdir(parents=True, exist_ok=True)
        pq.write_table(pa.table(arrays), path)
    (root / "meta/episodes/chunk-000").mkdir(parents=True, exist_ok=True)
    pq.write_table(pa.Table.from_pylist(episode_rows), root / "meta/episodes/chunk-000/file-000.parquet")
    pq.write_table(pa.table({"task_index": pa.array(range(len(task_names)), pa.int64()),
                             "task": pa.array(task_names)}), root / "meta/tasks.parquet")
    info = {"codebase_version": "v3.0", "robot_type": "fixture", "total_episodes": len(lengths),
            "total_frames": index, "total_tasks": len(task_names), "chunks_size": 1000, "data_files_size_in_mb": 100,
            "video_files_size_in_mb": 200, "fps": fps, "splits": {"train": f"0:{len(lengths)}"},
            "data_path": "data/chunk-{chunk_index:03d}/file-{file_index:03d}.parquet",
            "video_path": "videos/{video_key}/chunk-{chunk_index:03d}/file-{file_index:03d}.mp4"
            if storage == "video" else None, "features": features}
    (root / "meta/info.json").write_text(json.dumps(info, indent=4))
    (root / "meta/stats.json").write_text("{}")
    return root


def load_fixture_module():
    """This module, for test files in other packages (pytest imports test files by path)."""
    import importlib.util
    import sys
    name = "vla_lerobot_layout_fixture"
    if name not in sys.modules:
        spec = importlib.util.spec_from_file_location(name, Path(__file__))
        module = importlib.util.module_from_spec(spec)
        sys.modules[name] = module
        spec.loader.exec_module(module)
    return sys.modules[name]
