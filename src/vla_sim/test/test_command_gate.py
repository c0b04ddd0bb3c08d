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


# ---- reset requests ---------------------------------------------------------------------------------------
from vla_sim.command_gate import MAX_SEED, following_seed, reset_request  # noqa: E402


@pytest.mark.parametrize("seed", [2**63 - 1, 2**32, MAX_SEED + 1])
def test_a_seed_out_of_range_is_refused_with_the_range(seed):
    with pytest.raises(ValueError, match=rf"seed {seed} is out of range.*0 \.\. 4294967295"):
        reset_request(seed, "", next_seed=5)


def test_negative_seed_takes_the_next_and_the_sequence_wraps():
    assert reset_request(-1, "", next_seed=5) == (5, None)
    assert reset_request(MAX_SEED, "  ", next_seed=5) == (MAX_SEED, None)
    assert following_seed(MAX_SEED) == 0 and following_seed(7) == 8


def test_reset_instruction_is_checked_like_every_instruction():
    assert reset_request(3, "  push the red cube onto the purple square ", 0) == (
        3, "push the red cube onto the purple square")
    with pytest.raises(ValueError, match="U\\+001B"):
        reset_request(3, "push the red cube\x1b[2J", 0)
    with pytest.raises(ValueError, match="characters long"):
        reset_request(3, "push " * 200, 0)


# ---- position-controlled robots ----------------------------------------------------------------------------
def test_a_target_outside_the_limits_is_refused_counted_and_never_applied():
    gate = CommandGate(dim=2, timeout=1.0, low=np.array([-1.0, 0.0]), high=np.array([1.0, 0.08]),
                       names=("elbow", "gripper"))
    assert gate.offer(np.array([0.5, 0.04]), now=0.0) is None
    reason = gate.offer(np.array([1.5, 0.04]), now=0.1)
    assert "elbow = 1.5 outside [-1, 1]" in reason and gate.rejected_limits == 1
    assert gate.current(0.2)[0].tolist() == [0.5, 0.04]
    assert gate.counters()["rejected_limits"] == 1


def test_a_stale_position_command_holds_the_positions_of_the_first_stale_step():
    gate = CommandGate(dim=2, timeout=0.5)
    gate.offer(np.array([0.5, 0.04]), now=0.0)
    action, fresh = gate.current(1.0, hold=np.array([0.45, 0.03]))
    assert not fresh and action.tolist() == [0.45, 0.03]
    # Later measurements (a servo sagging under its own hold) do not move the hold.
    assert gate.current(1.1, hold=np.array([0.40, 0.02]))[0].tolist() == [0.45, 0.03]
    gate.offer(np.array([0.2, 0.0]), now=1.2)
    assert gate.current(1.3, hold=np.array([0.4, 0.0]))[0].tolist() == [0.2, 0.0]
    assert gate.current(2.0, hold=np.array([0.21, 0.01]))[0].tolist() == [0.21, 0.01]
