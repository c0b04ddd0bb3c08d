"""`vla demo` and `vla bench` end to end, as a user runs them."""
import json

import pytest

pytestmark = pytest.mark.ros


def test_demo_runs_the_loop_and_reports(vla):
    demo = vla("demo", "--expert-only", "--episodes", "3", "--real-time-factor", "5", "--seed", "500")
    assert demo.wait(240) == 0, demo.output
    report = json.loads(demo.lines[-1])
    assert report["episodes"] == 3
    assert report["success_rate"] >= 2 / 3, demo.output
    assert report["bringup_s"] > 0 and report["episodes_s"] > 0
    assert "episode   3/3" in demo.output


def test_bench_sim_quick_prints_json_last(vla):
    bench = vla("bench", "sim", "--quick")
    assert bench.wait(240) == 0, bench.output
    result = json.loads(bench.lines[-1])
    for key in ("env_steps_per_s_96x96", "env_steps_per_s_640x480", "node_real_time_factor_96x96",
                "up_to_active_s"):
        assert result[key] > 0, key


def test_unknown_bench_is_an_error(vla):
    bench = vla("bench", "nope")
    assert bench.wait(60) == 2
    assert "sim" in bench.output.split("available:")[1].replace(",", " ").split()


def children_of(pid: int) -> dict[int, str]:
    """Child processes of ``pid``: {pid: command line}."""
    from pathlib import Path
    out = {}
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
            if int(fields[1]) == pid:
                out[int(stat.parent.name)] = (stat.parent / "cmdline").read_text().replace("\0", " ")
        except (OSError, IndexError, ValueError):
            continue
    return out


def test_record_notices_a_killed_recorder_at_once(vla, tmp_path):
    """`vla record --up`: SIGKILL of the recorder mid-episode ends the session within seconds, non-zero, with a
    last line that says what happened (it used to wait out its 900 s timeout)."""
    import os
    import signal
    import time
    profile = tmp_path / "rec.yaml"
    profile.write_text("use_sim_time: true\nmanager: {name: lifecycle_manager, params: lifecycle_manager.yaml}\nnodes:\n"
                       + "".join(f"  - {{name: {n}, package: {p}, executable: {n}, params: [{n}.yaml]}}\n"
                                 for n, p in (("sim_robot", "vla_sim"), ("recorder", "vla_recorder"),
                                              ("safety_shield", "vla_safety"), ("teleop", "vla_teleop"))))
    rec = vla("record", "--up", str(profile), "--root", str(tmp_path / "ds"), "--episodes", "3", "--episode-time",
              "120", "--no-keys", "--set", "recorder.follow_episode_events=false")
    rec.wait_line(r"episode 1/3 recording: \d+ frames", 120)
    recorder = next(pid for pid, cmd in children_of(rec.proc.pid).items() if "vla_recorder/recorder" in cmd)
    killed_at = time.monotonic()
    os.kill(recorder, signal.SIGKILL)
    assert rec.wait(60) == 1, rec.output
    took = time.monotonic() - killed_at
    assert took < 10.0, f"vla record took {took:.1f} s to exit after its recorder was killed:\n{rec.output}"
    assert "error: the recorder is gone: recorder exited with code -9" in rec.lines[-1], rec.output
    assert "0 of 3 episodes saved" in rec.lines[-1]
