"""Recorded episodes into Rerun: a small dataset written by the workspace's own writer, listed, saved as a Rerun
file, and an episode that does not exist named with the range."""
from __future__ import annotations

import numpy as np

from vla_core.dataset import DatasetWriter
from vla_web.episodes import main

FEATURES = {
    "observation.images.top": {"dtype": "video", "shape": [48, 64, 3], "names": ["height", "width", "channels"]},
    "observation.state": {"dtype": "float32", "shape": [2], "names": ["x", "y"]},
    "action": {"dtype": "float32", "shape": [2], "names": ["vx", "vy"]},
}


def dataset(root):
    writer = DatasetWriter(root, 10.0, FEATURES)
    for e, (task, n, ok) in enumerate((("push the red block", 6, True), ("push the blue block", 4, False))):
        ep = writer.begin_episode(task, contract="robot: test")
        for i in range(n):
            y, x = np.mgrid[0:48, 0:64]
            img = np.stack([(x * 3 + i * 7) % 256, (y * 4) % 256, np.full_like(x, 40 * e)], -1).astype(np.uint8)
            ep.add_frame({"observation.images.top": img, "observation.state": np.array([i, -i], np.float32),
                          "action": np.array([0.1, 0.0], np.float32), "timestamp": i / 10.0,
                          "intervention": i == 2, "late": False, "valid": True})
        ep.save(success=ok)
    return root


def test_list_save_and_a_missing_episode(tmp_path, capsys):
    root = dataset(tmp_path / "ds")
    assert main([str(root), "--list"]) == 0
    out = capsys.readouterr().out.splitlines()
    assert out[0].startswith("episode 0: 6 frames, success") and "push the red block" in out[0]
    assert out[1].startswith("episode 1: 4 frames, failure") and "1 intervention" in out[1]
    rrd = tmp_path / "ep1.rrd"
    assert main([str(root), "--episode", "1", "--save", str(rrd)]) == 0
    assert "episode 1 (4 frames)" in capsys.readouterr().out
    assert rrd.stat().st_size > 1000 and rrd.read_bytes()[:4] == b"RRF2"
    assert main([str(root), "--episode", "7", "--save", str(rrd)]) == 2
    assert "episodes 0..1" in capsys.readouterr().err
    assert main([str(tmp_path / "nothing")]) == 2


# ---- the operator page's recorded episodes (vla_web.episode_library through the page's HTTP server) ----------------
import json  # noqa: E402
import os  # noqa: E402
import signal  # noqa: E402
import socket  # noqa: E402
import subprocess  # noqa: E402
import sys  # noqa: E402
import time  # noqa: E402
import urllib.error  # noqa: E402
import urllib.request  # noqa: E402

from vla_web.episode_library import EpisodeLibrary, find_datasets  # noqa: E402
from vla_web.server import OperatorServer  # noqa: E402
from vla_web.view_state import ViewState  # noqa: E402

TOKEN = "library-test-token-0123"


def test_datasets_are_found_under_the_folders_and_not_below_a_dataset(tmp_path):
    a = dataset(tmp_path / "data" / "recordings" / "a")
    b = dataset(tmp_path / "runs" / "demo" / "t1" / "data" / "robot")
    dataset(tmp_path / "runs" / ".hidden" / "c")
    dataset(tmp_path / "deep" / "1" / "2" / "3" / "4" / "5" / "6")
    (a / "nested" / "meta").mkdir(parents=True)
    (a / "nested" / "meta" / "info.json").write_text("{}")  # inside a dataset: not a dataset of its own
    assert find_datasets([tmp_path / "data", tmp_path / "runs", tmp_path / "missing"]) == sorted([a, b])
    assert find_datasets([tmp_path / "deep"]) == []


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _request(base, path, token=TOKEN, body=None):
    req = urllib.request.Request(base + path, data=None if body is None else json.dumps(body).encode(),
                                 method="GET" if body is None else "POST",
                                 headers={"X-VLA-Token": token} if token else {})
    try:
        with urllib.request.urlopen(req, timeout=30) as r:
            return r.status, json.loads(r.read())
    except urllib.error.HTTPError as e:
        return e.code, json.loads(e.read())


def test_the_page_lists_datasets_and_episodes_and_plays_one_into_the_rerun_server(tmp_path):
    """Through the page's HTTP server on a real socket: the token is required, datasets and episodes are listed
    by index, bad indices are refused naming the range, and a played episode reaches a real Rerun gRPC server
    (read back by Rerun's own CLI, which saves what the server holds)."""
    import rerun as rr
    root = dataset(tmp_path / "data" / "recordings" / "tabletop")
    hub = rr.RecordingStream("vla_web")
    uri = hub.serve_grpc(grpc_port=_free_port(), server_memory_limit="32MiB")
    server = OperatorServer(ViewState(["/a"], 30.0), lambda n, a: (True, n), lambda: 0.0, TOKEN, "127.0.0.1", 0,
                            library=EpisodeLibrary([tmp_path / "data"], uri))
    server.extra["viewer"] = "http://127.0.0.1:1/?url=x"
    server.start()
    base = "http://127.0.0.1:%d" % server.address[1]
    saver = None
    try:
        for path, body in (("/api/datasets", None), ("/api/episodes?dataset=0", None),
                           ("/api/play_episode", {"dataset": 0, "episode": 0})):
            code, answer = _request(base, path, token=None, body=body)
            assert code == 401 and "token" in answer["error"]
        code, answer = _request(base, "/api/datasets")
        assert code == 200 and [(d["index"], d["path"], d["episodes"], d["cameras"]) for d in answer["datasets"]] \
            == [(0, str(root), 2, ["top"])]
        code, answer = _request(base, "/api/episodes?dataset=0")
        assert code == 200 and [(e["index"], e["length"], e["success"], e["intervention_frames"], e["instruction"])
                                for e in answer["episodes"]] == [(0, 6, True, 1, "push the red block"),
                                                                 (1, 4, False, 1, "push the blue block")]
        code, answer = _request(base, "/api/episodes?dataset=3")
        assert code == 400 and "no dataset 3" in answer["error"] and "0..0" in answer["error"]
        code, answer = _request(base, "/api/episodes?dataset=../../etc")
        assert code == 400 and "must be an index" in answer["error"]
        code, answer = _request(base, "/api/play_episode", body={"dataset": 0, "episode": 5})
        assert code == 400 and "episodes 0..1" in answer["error"]
        code, answer = _request(base, "/api/play_episode", body={"dataset": "0", "episode": 1})
        assert code == 400 and "no dataset '0'" in answer["error"]
        code, answer = _request(base, "/api/play_episode", body={"dataset": 0, "episode": 1})
        assert code == 200 and answer["ok"] and "tabletop episode 1: 4 frames" in answer["message"], answer
        assert answer["viewer"] == "http://127.0.0.1:1/?url=x"
        # What the server holds, as a viewer would get it.
        saved = tmp_path / "held.rrd"
        saver = subprocess.Popen([sys.executable, "-m", "rerun", uri, "--save", str(saved)],
                                 stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True)
        recording = f"{root.resolve()}#1".encode()
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline and not (saved.exists() and recording in saved.read_bytes()):
            time.sleep(0.2)
        assert saved.exists() and recording in saved.read_bytes(), "the episode never reached the Rerun server"
        server.library.grpc_uri = None  # as with rerun:=false
        code, answer = _request(base, "/api/play_episode", body={"dataset": 0, "episode": 1})
        assert code == 400 and "rerun:=false" in answer["error"] and "--save" in answer["error"]
    finally:
        if saver is not None:
            os.killpg(saver.pid, signal.SIGKILL)
            saver.wait(10)
        server.close()
        hub.disconnect()


def test_a_page_without_datasets_says_so(tmp_path):
    server = OperatorServer(ViewState(["/a"], 30.0), lambda n, a: (True, n), lambda: 0.0, TOKEN, "127.0.0.1", 0)
    server.start()
    try:
        code, answer = _request("http://127.0.0.1:%d" % server.address[1], "/api/datasets")
        assert code == 404 and "datasets parameter is empty" in answer["error"]
    finally:
        server.close()
