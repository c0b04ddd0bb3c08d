"""The runner gives the artifact's uncertainty with each action; the help monitor's threshold and hysteresis;
calibration from in-distribution uncertainties."""
import math
from pathlib import Path

import numpy as np
import pytest

from vla_core.contract import RobotContract
from vla_core.features import LANGUAGE, STATE
from vla_policy.runner import PolicyRunner
from vla_policy.runtime import load_policy
from vla_policy.uncertainty import HelpMonitor, calibrate_threshold

CONTRACT = RobotContract.from_yaml(Path(__file__).resolve().parents[3] / "params" / "robots" / "tabletop_sim.yaml")


def observation(x: float) -> dict:
    return {STATE: np.array([x, 0.0, 0.0, 0.0], np.float32), LANGUAGE: np.zeros(384, np.float32)}


@pytest.mark.parametrize("execution", ["temporal_ensemble", "receding_horizon"])
def test_the_runner_returns_the_uncertainty_of_the_chunk_it_acts_on(models, make_artifact, execution):
    make_artifact(models, "u", bias=0.1, chunk=4, execution=execution, uncertainty=True)
    runner = PolicyRunner(load_policy("tiny/u", models, CONTRACT, "minilm", ["onnxruntime-cpu"]))
    assert runner.has_uncertainty
    action, u = runner.step_with_uncertainty(0, observation(0.3))
    assert action.shape == (2,) and u == pytest.approx(0.3, abs=1e-6)
    got = [runner.step_with_uncertainty(t, observation(-0.7))[1] for t in range(1, 4)]
    if execution == "receding_horizon":  # still acting on the chunk inferred at tick 0
        assert got == pytest.approx([0.3] * 3, abs=1e-6)
    else:  # a new chunk every tick
        assert got == pytest.approx([0.7] * 3, abs=1e-6)
    np.testing.assert_array_equal(runner.step(4, observation(0.0)), runner.chunks.action(4))
    runner.reset()
    assert runner.uncertainty is None


def test_an_artifact_without_uncertainty_gives_none(models, make_artifact):
    make_artifact(models, "a", bias=0.1)
    runner = PolicyRunner(load_policy("tiny/a", models, CONTRACT, "minilm", ["onnxruntime-cpu"]))
    action, u = runner.step_with_uncertainty(0, observation(0.3))
    assert action is not None and u is None and not runner.has_uncertainty


def test_help_is_raised_above_the_threshold_and_cleared_below_its_hysteresis():
    help = HelpMonitor(threshold=0.5, clear_ratio=0.8)
    assert [help.update(u) for u in (0.2, 0.5, 0.51)] == [False, False, True]
    assert help.active and help.requests == 1 and "0.51 > help_threshold 0.5" in help.reason
    assert [help.update(u) for u in (0.9, 0.45, 0.41)] == [False, False, False]  # still above 0.4
    assert help.update(0.39) and not help.active and help.uncertainty == pytest.approx(0.39)
    assert help.update(0.6) and help.requests == 2
    help.configure(0.0, 0.8)  # 0 never asks: the standing request clears on the next proposal
    assert help.update(10.0) and not help.active and "help_threshold is 0" in help.reason
    assert not help.update(10.0)
    help.configure(0.5, 0.8)
    assert help.update(1.0) and help.update(None) and "no uncertainty" in help.reason
    for bad in ((-0.1, 0.8), (math.nan, 0.8), (0.5, 0.0), (0.5, 1.5)):
        with pytest.raises(ValueError, match="help_"):
            help.configure(*bad)


def test_calibration_takes_a_quantile_of_in_distribution_uncertainty():
    values = np.linspace(0.0, 1.0, 101)
    assert calibrate_threshold(values, 0.9) == pytest.approx(0.9)
    assert calibrate_threshold(values, 0.5, margin=2.0) == pytest.approx(1.0)
    with pytest.raises(ValueError, match="at least one tick"):
        calibrate_threshold([])
    with pytest.raises(ValueError, match="not finite"):
        calibrate_threshold([0.1, math.nan])


def test_an_artifact_declaring_an_uncertainty_its_model_lacks_is_refused_at_load(models, make_artifact):
    import json

    from vla_core.artifact import ArtifactError
    art = make_artifact(models, "a", bias=0.1)  # no uncertainty output
    manifest = json.loads((art.path / "manifest.json").read_text())
    manifest["uncertainty"] = {"output": "uncertainty", "kind": "ensemble_std", "heads": 5}
    (art.path / "manifest.json").write_text(json.dumps(manifest))
    with pytest.raises(ArtifactError, match="declares the uncertainty output 'uncertainty'"):
        load_policy("tiny/a", models, CONTRACT, "minilm", ["onnxruntime-cpu"])
