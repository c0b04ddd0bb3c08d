import pytest

from vla_ros.convert import seconds_to_time, time_to_seconds


@pytest.mark.parametrize("t", [0.0, 0.1, 12.9999999999, 13.0, 1795290453.602512339])
def test_stamps_round_trip(t):
    stamp = seconds_to_time(t)
    assert 0 <= stamp.nanosec < 1_000_000_000
    assert time_to_seconds(stamp) == pytest.approx(t, abs=1e-6)


def test_just_below_a_second_rounds_up_not_a_second_back():
    assert (seconds_to_time(12.9999999999).sec, seconds_to_time(12.9999999999).nanosec) == (13, 0)


# ---- the contract's command codecs: every command type round-trips --------------------------------------
import numpy as np  # noqa: E402
from geometry_msgs.msg import Twist  # noqa: E402
from std_msgs.msg import Float64MultiArray  # noqa: E402
from trajectory_msgs.msg import JointTrajectory  # noqa: E402

from vla_core import codecs  # noqa: E402
from vla_ros.convert import (array_to_joint_trajectory, command_message_type, command_to_vector,  # noqa: E402
                             joint_trajectory_chunk, vector_to_command)

ARM_NAMES = ("shoulder_pan", "shoulder_lift", "elbow", "forearm_roll", "wrist_pitch", "wrist_roll", "gripper")
ARM_FIELDS = tuple(f"data[{i}]" for i in range(7))
ARM_ACTION = np.array([0.1, 0.21, 1.59, -0.3, 1.34, 2.5, 0.04])


@pytest.mark.parametrize("action_type,fields,names,values,cls", [
    (codecs.TWIST, ("linear.x", "linear.y"), None, np.array([0.2, -0.125]), Twist),
    (codecs.TWIST, codecs.TWIST_FIELDS, None, np.array([0.1, 0.2, 0.3, 0.4, 0.5, 0.6]), Twist),
    (codecs.FLOAT64_ARRAY, ARM_FIELDS, ARM_NAMES, ARM_ACTION, Float64MultiArray),
    (codecs.JOINT_TRAJECTORY, ARM_NAMES, None, ARM_ACTION, JointTrajectory),
    (codecs.JOINT_TRAJECTORY, ARM_FIELDS, ARM_NAMES, ARM_ACTION, JointTrajectory),
], ids=["twist-planar", "twist-6", "float64_multiarray", "trajectory", "trajectory-names"])
def test_every_command_type_round_trips(action_type, fields, names, values, cls):
    msg = vector_to_command(values, action_type, fields, names)
    assert isinstance(msg, cls) and command_message_type(action_type) is cls
    back = command_to_vector(msg, action_type, fields, names)
    assert back.dtype == np.float64 and back.tolist() == values.tolist()


def test_a_trajectory_names_the_contracts_joints_and_the_gripper_is_one_more_joint():
    msg = vector_to_command(ARM_ACTION, codecs.JOINT_TRAJECTORY, ARM_FIELDS, ARM_NAMES, dt=0.1)
    assert msg.joint_names == list(ARM_NAMES) and len(msg.points) == 1
    point = msg.points[0]
    assert point.positions.tolist() == ARM_ACTION.tolist()
    assert (point.time_from_start.sec, point.time_from_start.nanosec) == (0, 100_000_000)
    # Another order of the same joints reads back in the contract's order.
    msg.joint_names = list(reversed(ARM_NAMES))
    point.positions = list(reversed(ARM_ACTION.tolist()))
    assert command_to_vector(msg, codecs.JOINT_TRAJECTORY, ARM_FIELDS, ARM_NAMES).tolist() == ARM_ACTION.tolist()


def test_a_chunk_goes_out_as_one_trajectory_with_time_from_start():
    chunk = ARM_ACTION + np.arange(5)[:, None] * 0.01
    msg = array_to_joint_trajectory(chunk, ARM_NAMES, dt=0.1)
    assert len(msg.points) == 5
    positions, times = joint_trajectory_chunk(msg, ARM_NAMES)
    np.testing.assert_array_equal(positions, chunk)
    np.testing.assert_allclose(times, [0.1, 0.2, 0.3, 0.4, 0.5])
    # What a robot executes now is the first point.
    assert command_to_vector(msg, codecs.JOINT_TRAJECTORY, ARM_NAMES).tolist() == chunk[0].tolist()


def _trajectory(**change):
    msg = array_to_joint_trajectory(np.stack([ARM_ACTION, ARM_ACTION]), ARM_NAMES, dt=0.1)
    for key, value in change.items():
        if key == "positions":
            msg.points[1].positions = value
        elif key == "times":
            for point, t in zip(msg.points, value):
                point.time_from_start.sec, point.time_from_start.nanosec = 0, int(t * 1e9)
        else:
            setattr(msg, key, value)
    return msg


@pytest.mark.parametrize("msg,reason,fragment", [
    (_trajectory(joint_names=list(ARM_NAMES[:6]) + ["finger"]), "joint_names", "missing ['gripper']; unknown ['finger']"),
    (_trajectory(points=[]), "no_points", "has no points"),
    (_trajectory(positions=[0.0] * 6), "point_size", "point 1 has 6 positions for 7 joint_names"),
    (_trajectory(positions=[0.0] * 6 + [float("nan")]), "non_finite", "non-finite values at gripper"),
    (_trajectory(positions=[float("inf")] + [0.0] * 6), "non_finite", "at shoulder_pan"),
    (_trajectory(times=[0.2, 0.1]), "time_from_start", "must increase"),
], ids=["joint-names", "no-points", "point-size", "nan", "inf", "times"])
def test_a_bad_trajectory_is_refused_naming_value_and_fix(msg, reason, fragment):
    with pytest.raises(codecs.CommandError) as err:
        command_to_vector(msg, codecs.JOINT_TRAJECTORY, ARM_NAMES)
    assert err.value.reason == reason and fragment in str(err.value)


@pytest.mark.parametrize("values,dt,reason", [
    (ARM_ACTION[:6], 0.1, "dimension"),
    (np.append(ARM_ACTION[:6], np.nan), 0.1, "non_finite"),
    (np.stack([ARM_ACTION, ARM_ACTION]), None, "time_from_start"),
])
def test_a_trajectory_is_not_built_from_a_bad_action(values, dt, reason):
    with pytest.raises(codecs.CommandError) as err:
        vector_to_command(values, codecs.JOINT_TRAJECTORY, ARM_NAMES, dt=dt)
    assert err.value.reason == reason


def test_an_action_type_without_a_codec_names_those_with_one():
    with pytest.raises(ValueError, match="JointTrajectory"):
        command_message_type("control_msgs/msg/GripperCommand")
