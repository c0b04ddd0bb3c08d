import numpy as np
import pytest

from vla_sim.command_gate import CommandGate


def test_fresh_command_is_applied_then_goes_stale():
    gate = CommandGate(dim=2, timeout=0.5)
    assert gate.offer(np.array([0.1, -0.2]), now=1.0) is None
    action, fresh = gate.current(1.4)
    assert fresh and action.tolist() == [0.1, -0.2]
    action, fresh = gate.current(1.6)
    assert not fresh and action.tolist() == [0.0, 0.0]
    assert gate.stale_steps == 1


@pytest.mark.parametrize("bad", [[np.nan, 0.0], [0.0, np.inf], [-np.inf, 1.0]])
def test_non_finite_is_refused_and_previous_command_kept(bad):
    gate = CommandGate(dim=2, timeout=1.0)
    gate.offer(np.array([0.1, 0.1]), now=0.0)
    reason = gate.offer(np.array(bad), now=0.1)
    assert "non-finite" in reason
    assert gate.rejected_nonfinite == 1
    action, _ = gate.current(0.2)
    assert np.all(np.isfinite(action)) and action.tolist() == [0.1, 0.1]


@pytest.mark.parametrize("bad", [[0.1], [0.1, 0.2, 0.3], []])
def test_wrong_dimension_is_refused(bad):
    gate = CommandGate(dim=2, timeout=1.0)
    reason = gate.offer(np.array(bad), now=0.0)
    assert "dimension 2" in reason and gate.rejected_dimension == 1
    assert gate.current(0.0)[1] is False


def test_clear_forgets_command():
    gate = CommandGate(dim=2, timeout=10.0)
    gate.offer(np.array([0.2, 0.2]), now=0.0)
    gate.clear()
    action, fresh = gate.current(0.1)
    assert not fresh and action.tolist() == [0.0, 0.0]
