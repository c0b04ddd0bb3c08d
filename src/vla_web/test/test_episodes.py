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
