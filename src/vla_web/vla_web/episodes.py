"""Recorded episodes in the Rerun viewer (no ROS): pick a LeRobotDataset v3.0 (as the recorder writes it) and an
episode, and play it with its cameras, state, actions, instruction, intervention / late / valid flags and success.

    python -m vla_web.episodes DATASET --list                 # the episodes: length, success, instruction, counts
    python -m vla_web.episodes DATASET --episode 3            # serve it: prints the viewer's address; Ctrl-C ends
    python -m vla_web.episodes DATASET --episode 3 --save ep3.rrd   # or write a Rerun file (rerun ep3.rrd opens it)

Time lines: ``frame`` (the frame index) and ``episode_time`` (the dataset's timestamp, s). Entities:
``episode/<camera>`` (JPEG), ``episode/state`` and ``episode/action`` (a series per named value),
``episode/flags`` (intervention, late, valid as 0/1), ``episode/info`` (a text document: instruction, success,
late / dropped / invalid / intervention frame counts, achieved fps).
"""
from __future__ import annotations

import argparse
import sys
import time
import urllib.parse

import numpy as np
import rerun as rr

from vla_core.dataset import DatasetError, DatasetReader
from vla_web.frames import to_jpeg

FLAGS = ("intervention", "late", "valid")


def summary(meta: dict) -> str:
    """One line per episode: index, length, success, counts, instruction."""
    success = {True: "success", False: "failure"}.get(meta.get("success"), "unlabelled")
    counts = ", ".join(f"{meta[k]} {k.removesuffix('_frames')}" for k in
                       ("late_frames", "dropped_frames", "invalid_frames", "intervention_frames") if meta.get(k))
    tasks = meta.get("instruction") or "; ".join(meta.get("tasks") or [])
    return (f"episode {meta['episode_index']}: {meta['length']} frames, {success}"
            f"{' (' + counts + ')' if counts else ''}: {tasks}")


def _names(feature: dict, width: int, prefix: str) -> list[str]:
    names = feature.get("names")
    if isinstance(names, dict):  # LeRobot's {"motors": [...]} form
        names = next(iter(names.values()), None)
    if isinstance(names, list) and len(names) == width and all(isinstance(n, str) for n in names):
        return names
    return [f"{prefix}{i}" for i in range(width)]


def log_episode(rec: rr.RecordingStream, reader: DatasetReader, ep: int, jpeg_quality: int = 85) -> int:
    """Log episode ``ep`` of ``reader`` to ``rec``; returns the frames logged."""
    if not 0 <= ep < reader.num_episodes:
        raise DatasetError(f"episode {ep} does not exist in {reader.root}: it has episodes 0..{reader.num_episodes - 1}"
                           " (--list shows them)")
    meta = reader.episode(ep)
    data = reader.episode_data(ep)
    n = int(meta["length"])
    info = [summary(meta)] + [f"{k}: {meta[k]}" for k in ("success", "achieved_fps", "late_frames", "dropped_frames",
                                                          "invalid_frames", "intervention_frames", "encoder_id")
                              if k in meta]
    rec.log("episode/info", rr.TextDocument("\n\n".join(info), media_type="text/markdown"), static=True)
    vectors = {}
    for key, path, prefix in (("observation.state", "episode/state", "s"), ("action", "episode/action", "a")):
        if key in data:
            values = np.asarray(data[key], dtype=np.float64).reshape(n, -1)
            rec.log(path, rr.SeriesLines(names=_names(reader.features[key], values.shape[1], prefix)), static=True)
            vectors[path] = values
    flags = [k for k in FLAGS if k in data]
    if flags:
        rec.log("episode/flags", rr.SeriesLines(names=flags), static=True)
    cameras = {key.rsplit(".", 1)[-1]: reader.episode_images(ep, key) for key in reader.camera_keys}
    stamps = np.asarray(data.get("timestamp", np.arange(n) / reader.fps), dtype=np.float64).reshape(n)
    frames = np.asarray(data.get("frame_index", np.arange(n))).reshape(n)
    for i in range(n):
        rec.set_time("frame", sequence=int(frames[i]))
        rec.set_time("episode_time", duration=float(stamps[i]))
        for name, images in cameras.items():
            rec.log(f"episode/{name}", rr.EncodedImage(contents=to_jpeg(images[i], jpeg_quality),
                                                       media_type="image/jpeg"))
        for path, values in vectors.items():
            rec.log(path, rr.Scalars(values[i]))
        if flags:
            rec.log("episode/flags", rr.Scalars([float(np.asarray(data[k]).reshape(n)[i]) for k in flags]))
    return n


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m vla_web.episodes", description=__doc__.split("\n\n")[0])
    p.add_argument("dataset", help="a LeRobotDataset v3.0 directory (e.g. runs/demo/<time>/data/robot)")
    p.add_argument("--episode", type=int, default=0, help="episode index (default 0)")
    p.add_argument("--list", action="store_true", help="list the episodes and exit")
    p.add_argument("--save", metavar="FILE.rrd", help="write a Rerun file instead of serving")
    p.add_argument("--grpc-port", type=int, default=9877, help="Rerun data stream port (default 9877)")
    p.add_argument("--web-port", type=int, default=9091, help="Rerun web viewer port (default 9091)")
    a = p.parse_args(argv)
    try:
        reader = DatasetReader(a.dataset)
        if a.list:
            for ep in range(reader.num_episodes):
                print(summary(reader.episode(ep)))
            return 0
        rec = rr.RecordingStream("vla_web_episodes", recording_id=f"{reader.root.resolve()}#{a.episode}")
        if a.save:
            rec.save(a.save)
            n = log_episode(rec, reader, a.episode)
            rec.flush()
            print(f"wrote episode {a.episode} ({n} frames) to {a.save}; open it with: rerun {a.save}")
            return 0
        uri = rec.serve_grpc(grpc_port=a.grpc_port)
        rr.serve_web_viewer(web_port=a.web_port, open_browser=False, connect_to=uri)
        n = log_episode(rec, reader, a.episode)
    except (DatasetError, FileNotFoundError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    data = urllib.parse.quote(uri, safe="")
    print(f"episode {a.episode} ({n} frames) in the Rerun viewer: "
          f"http://127.0.0.1:{a.web_port}/?url={data}  (Ctrl-C ends)", flush=True)
    try:
        while True:
            time.sleep(1.0)
    except KeyboardInterrupt:
        return 0


if __name__ == "__main__":
    sys.exit(main())
