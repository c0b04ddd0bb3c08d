import numpy as np
import pytest

from vla_core.codecs import (PLANAR_TWIST_FIELDS, StateError, finite_state, joint_state_vector, planar_twist_fields,
                             twist_axes)

COLUMNS = {"position": [2.0, 1.0, 9.0], "velocity": [20.0, 10.0, 90.0], "effort": []}


def test_state_is_joint_major_in_the_contracts_order():
    vec = joint_state_vector(["b", "a", "extra"], COLUMNS, ("a", "b"), ("position", "velocity"))
    assert vec.dtype == np.float64 and vec.tolist() == [1.0, 10.0, 2.0, 20.0]


@pytest.mark.parametrize("names,columns,reason,fragment,partial", [
    (["a"], {"position": [1.0], "velocity": [10.0]}, "missing_joint", "joint 'b' is missing from joint_states "
     "(it has: a)", [1.0, 10.0, np.nan, np.nan]),
    (["a", "b"], {"position": [1.0, 2.0], "velocity": [10.0]}, "missing_field", "no velocity for 'b' "
     "(1 velocity values for 2 names)", [1.0, 10.0, 2.0, np.nan]),
    (["a", "b", "c"], {"position": [1.0, 2.0], "velocity": [10.0, 20.0, 30.0]}, "field_size",
     "2 position values for 3 names", [1.0, 10.0, 2.0, 20.0]),
])
def test_a_state_the_message_lacks_raises_with_what_was_there(names, columns, reason, fragment, partial):
    with pytest.raises(StateError) as err:
        joint_state_vector(names, columns, ("a", "b"), ("position", "velocity"))
    assert fragment in str(err.value) and err.value.reason == reason and "publish joint_states" in str(err.value)
    np.testing.assert_array_equal(err.value.values, partial)


def test_non_finite_is_judged_after_the_cast():
    assert finite_state(np.array([1.0, 1e39]), np.float64).tolist() == [1.0, 1e39]
    with pytest.raises(StateError, match="non-finite") as err:
        finite_state(np.array([1.0, 1e39]), np.float32)
    assert err.value.reason == "non_finite"


def test_twist_fields():
    assert twist_axes(["linear.x", "angular.z"]) == (("linear", "x"), ("angular", "z"))
    with pytest.raises(ValueError, match="not Twist fields"):
        twist_axes(["data[0]"])
    assert [planar_twist_fields(n) for n in (1, 2, 3)] == [PLANAR_TWIST_FIELDS[:n] for n in (1, 2, 3)]
    assert planar_twist_fields(3) == ("linear.x", "linear.y", "angular.z")
    with pytest.raises(ValueError, match="Float64MultiArray"):
        planar_twist_fields(4)


def test_check_command_takes_finite_values_of_the_contracts_dimension():
    from vla_core.codecs import check_command
    assert check_command([0.1, -0.2], 2).tolist() == [0.1, -0.2]
    assert check_command((1, 2), 2, low=[0, 0], high=[1, 2]).dtype == np.float64


@pytest.mark.parametrize("values,low,high,reason,fragment", [
    ([0.1], None, None, "dimension", "command has 1 values [0.1] but this robot takes 2 (elbow, gripper); send one"),
    ([0.1, 0.2, 0.3], None, None, "dimension", "takes 2"),
    ([np.nan, 0.0], None, None, "non_finite", "non-finite values at elbow; send finite values"),
    ([0.0, np.inf], None, None, "non_finite", "at gripper"),
    ([3.0, 0.01], [-2.6, 0.0], [2.6, 0.08], "out_of_limits", "elbow = 3 outside [-2.6, 2.6]"),
    ([0.0, -0.01], [-2.6, 0.0], [2.6, 0.08], "out_of_limits", "gripper = -0.01 outside [0, 0.08]"),
    (["a", "b"], None, None, "non_finite", "not a vector of numbers"),
])
def test_a_command_the_robot_must_not_take_is_refused_naming_value_and_fix(values, low, high, reason, fragment):
    from vla_core.codecs import CommandError, check_command
    with pytest.raises(CommandError) as err:
        check_command(values, 2, ("elbow", "gripper"), low, high)
    assert err.value.reason == reason and fragment in str(err.value)


def test_trajectory_joint_names_map_to_the_contracts_order_or_are_listed():
    from vla_core.codecs import CommandError, trajectory_order
    assert trajectory_order(["b", "a"], ("a", "b")).tolist() == [1, 0]
    with pytest.raises(CommandError) as err:
        trajectory_order(["a", "c", "c"], ("a", "b"))
    message = str(err.value)
    assert err.value.reason == "joint_names"
    assert "missing ['b']" in message and "unknown ['c', 'c']" in message and "repeated ['c']" in message
    assert "send exactly ['a', 'b']" in message
