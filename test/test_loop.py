"""`vla demo` end to end, small: record demonstrations through the ROS graph, train through the trainer's action,
hot-swap into the running policy node, evaluate on unseen seeds and phrasings, one continual round with the
corrector, and the reports. Success rates are not asserted here (a few seconds of training); `vla demo` with its
defaults and `vla bench train` measure them."""
import json
from pathlib import Path

import numpy as np
import pytest

from vla_core.artifact import verify_artifact
from vla_core.dataset import DatasetReader

pytestmark = pytest.mark.ros


def test_demo_runs_the_whole_loop(vla, tmp_path):
    out = tmp_path / "demo"
    demo = vla("demo", "--demos", "4", "--eval-episodes", "2", "--rounds", "1", "--round-episodes", "2",
               "--policy", "mlp", "--train-minutes", "0.25", "--round-train-minutes", "0.1",
               "--real-time-factor", "8", "--out", str(out),
               "--train-set", "policy.hidden=64", "--train-set", "policy.channels=16",
               "--train-set", "train.batch_size=16", "--train-set", f"output.models_dir={tmp_path / 'models'}",
               "--train-set", "policy.aux_env_state=1.0", timeout=600)
    assert demo.wait(600) == 0, demo.output
    summary = json.loads(demo.lines[-1])
    report = json.loads((out / "report.json").read_text())
    names = [s["name"] for s in report["stages"]]
    assert names[:5] == ["bring-up", "wait for the graph", "record demonstrations", "round 0: train + deploy",
                         "round 0: evaluate"]
    assert "round 1: record with corrections" in names and "round 1: evaluate" in names
    assert [r["episodes"] for r in report["rounds"]] == [2, 2]
    assert all(e["seed"] >= 100_000 for e in report["episodes"])  # never a recorded seed
    # Recorded through the graph: 4 demonstrations (every frame the operator's) and 2 policy-driven episodes.
    data = DatasetReader(out / "data" / "robot", decode_images=False)
    assert data.num_episodes == 6
    # ... with where the sim said the block and the zone were (the auxiliary loss's target), each frame's own
    # or NaN and counted in the episode's sidecar.
    assert data.features["observation.environment_state"]["names"] == [
        "target_block.x", "target_block.y", "target_zone.x", "target_zone.y"]
    for i in range(6):
        env = np.asarray(data.episode_frames(i)["observation.environment_state"])
        sidecar = json.loads((out / "data" / "robot" / "meta" / "recorder" / f"episode-{i:06d}.json").read_text())
        assert int(np.isnan(env).any(axis=1).sum()) == sidecar["env_state_missing"] <= 2
        assert np.ptp(env[np.isfinite(env).all(axis=1), 2:], axis=0).max() < 1e-6  # the zone stays put
    # Each demonstration frame is labelled with the command the sim executed over it: the pusher's velocity in the
    # next frame's joint state (under simulated time the recorder orders commands by their send time; by arrival,
    # about one label in seven was the previous frame's command).
    labels = wrong = 0
    for i in range(4):
        frames = data.episode_frames(i)
        action, state, valid = (np.asarray(frames[k]) for k in ("action", "observation.state", "valid"))
        ok = valid[:-1] & valid[1:]
        labels += int(ok.sum())
        wrong += int((ok & (np.abs(action[:-1] - state[1:, [1, 3]]).max(axis=1) > 1e-3)).sum())
    assert labels > 40 and wrong <= 2, f"{wrong} of {labels} labels are not the command executed"
    # (the flag may lag a frame or two behind a reset, as in test_recorder)
    assert all(data.episode(i)["intervention_frames"] >= data.episode(i)["length"] - 2 for i in range(4))
    # The round's takeovers, counted from the dataset's per-frame flags, agree with the recorder's episode rows.
    (corrections,) = report["corrections"]
    assert corrections["round"] == 1 and corrections["episodes"] == 2
    assert corrections["intervention_frames"] == sum(data.episode(i)["intervention_frames"] for i in (4, 5))
    assert corrections["frames"] == sum(data.episode(i)["length"] for i in (4, 5))
    assert report["rounds"][1]["interventions"] == corrections["intervention_frames"]
    assert all(0.0 <= r["ci95"][0] <= r["success_rate"] <= r["ci95"][1] <= 1.0 for r in report["rounds"])
    # The artifact each round deployed is verified and was running when the round was evaluated.
    for r in report["rounds"]:
        verify_artifact(Path(r["artifact"]))
    assert report["training"] and report["training"][0]["history"]
    assert report["latency_ms"] and summary["latency_p99_ms"] > 0
    html = (out / "report.html").read_text()
    assert html.count("data:image/png;base64,") >= 3
