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
