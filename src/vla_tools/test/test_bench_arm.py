"""`vla bench arm`: its settings, the sim and expert parts' figures, and (on request) the whole --quick run's JSON.

The whole run trains and exports a policy, which takes over a minute on a loaded 2-core machine even at three
steps, so it runs only with VLA_BENCH_ARM_SMOKE=1; the parts below it run always, in seconds.
"""
import json
import os
import subprocess
import sys
from argparse import Namespace

import pytest

from vla_core.contract import RobotContract
from vla_core.paths import workspace_path
from vla_tools.bench_arm import DEFAULTS, QUICK, expert_figures, settings, sim_rates, train_config

FLAGS = dict(quick=False, seeds=None, demos=None, steps=None, episodes=None, policy=None, noise=None)


def test_settings_are_the_defaults_then_quick_then_the_flags():
    assert settings(Namespace(**FLAGS)) == DEFAULTS
    quick = settings(Namespace(**{**FLAGS, "quick": True}))
    assert quick == {**DEFAULTS, **QUICK}
    given = settings(Namespace(**{**FLAGS, "quick": True, "demos": 20, "steps": 300, "policy": "mlp"}))
    assert (given["demos"], given["steps"], given["policy"], given["seeds"]) == (20, 300, "mlp", QUICK["seeds"])
    assert settings(Namespace(quick=False)) == DEFAULTS  # a namespace without the arm flags (vla bench all)


@pytest.mark.parametrize("flag, value, message", [
    ("demos", 0, "--demos 0: give at least 1"),
    ("episodes", -2, "--episodes -2: give at least 1"),
    ("policy", "cnn", "--policy 'cnn': choose act, mlp or diffusion"),
    ("noise", -0.1, "--noise -0.1: the demonstrations' DART noise"),
])
def test_settings_name_a_flag_that_cannot_run(flag, value, message):
    with pytest.raises(ValueError, match=message):
        settings(Namespace(**{**FLAGS, flag: value}))


@pytest.mark.parametrize("policy", ["act", "mlp", "diffusion"])
def test_the_bench_trains_the_arm_recipe_with_its_own_steps_and_directories(tmp_path, policy):
    import yaml
    recipe = yaml.safe_load(workspace_path("params/train/arm_act.yaml").read_text())
    config = train_config(tmp_path, policy, 7)
    assert config.policy["type"] == policy
    assert config.policy["relative_actions"] == tuple(recipe["policy"]["relative_actions"])
    assert config.train.max_steps == 7 and config.train.threads == recipe["train"]["threads"]
    assert config.data.paths == (str(tmp_path / "demos"),)
    assert config.output.execution == recipe["output"]["execution"] and config.output.models_dir == str(
        tmp_path / "models")


def test_the_sim_and_the_expert_report_their_figures():
    lines = []
    contract = RobotContract.from_yaml(workspace_path("params/robots/sim_arm.yaml"))
    rates = sim_rates(contract, 2, lines.append)
    assert set(rates) == {"96x96", "640x480"}
    for rate in rates.values():
        assert rate["steps_per_s"] > 0 and rate["realtime_factor"] > 0
    expert = expert_figures(2, lines.append)
    assert expert["episodes"] == 2 and 0 <= expert["successes"] <= 2
    assert 0.0 <= expert["ci95"][0] <= expert["success_rate"] <= expert["ci95"][1] <= 1.0
    assert len(lines) == 4 and "640x480" in lines[1] and "scripted expert: " in lines[3]


@pytest.mark.skipif(os.environ.get("VLA_BENCH_ARM_SMOKE") != "1",
                    reason="trains and exports a policy (over a minute on 2 cores); set VLA_BENCH_ARM_SMOKE=1")
def test_a_quick_run_prints_progress_then_one_json_object():
    proc = subprocess.run([sys.executable, "-m", "vla_tools.cli", "bench", "arm", "--quick"], capture_output=True,
                          text=True, timeout=600)
    assert proc.returncode == 0, proc.stderr[-2000:]
    *progress, last = proc.stdout.strip().splitlines()
    result = json.loads(last)
    assert len(progress) >= 10
    assert result["bench"] == "arm" and result["cameras"] == ["scene", "wrist"]
    assert set(result["sim_step_render"]) == {"96x96", "640x480"}
    assert result["expert"]["episodes"] == QUICK["seeds"]
    trained = result["policy_from_demos"]
    assert set(trained["evaluation"]) == {"train", "heldout"}
    assert trained["training"]["steps"] == QUICK["steps"] and trained["cpu_minutes_demos_plus_training"] > 0
    tick = result["policy_tick"]
    assert tick["inputs"] == ["observation.images.scene", "observation.images.wrist", "observation.language",
                              "observation.state"]
    assert 0 < tick["p50_ms"] <= tick["p99_ms"]
