"""The robot contract's codecs, as every node uses them: one JointState gives one state vector (policy, recorder,
shield, and the sim's own path through the contract), a missing joint one error; one action vector one command.

Each node's own conversion function is called here (the functions their callbacks call), not a stand-in."""
from pathlib import Path

import numpy as np
import pytest
from sensor_msgs.msg import JointState

from vla_core.codecs import StateError, planar_twist_fields
from vla_core.contract import RobotContract
from vla_policy.inputs import InputError, state_vector
from vla_recorder.convert import command_vector, joint_state_vector as recorded_state
from vla_ros.convert import joint_state_msg, joint_state_vector, twist_to_array, vector_to_command
from vla_safety.shield_node import joint_positions

CONTRACT = RobotContract.from_yaml(Path(__file__).resolve().parents[1] / "params" / "robots" / "tabletop_sim.yaml")
JOINTS, FIELDS = CONTRACT.state.joints, CONTRACT.state.fields  # gantry_x, gantry_y; position, velocity


def served(msg: JointState) -> np.ndarray:
    """The policy node's _on_joints conversion."""
    return state_vector(msg.name, msg.position, msg.velocity, msg.effort, JOINTS, FIELDS)


def test_one_joint_state_gives_one_state_vector_in_every_node():
    # Another order than the contract's, and a joint the contract does not name.
    msg = JointState(name=["gantry_y", "wheel", "gantry_x"], position=[0.125, 9.0, -0.0625],
                     velocity=[0.5, 9.0, -0.25], effort=[])
    expected = [-0.0625, -0.25, 0.125, 0.5]  # joint-major, in the contract's order
    policy, recorder = served(msg), recorded_state(msg, CONTRACT)
    assert policy.dtype == np.float32 and policy.tolist() == expected
    assert recorder.tolist() == expected
    assert joint_state_vector(msg, JOINTS, FIELDS).tolist() == expected
    assert joint_positions(msg, JOINTS).tolist() == expected[0::2]  # the shield's positions of the same joints
    # The sim publishes its joints in the contract's order; the evaluation and the demonstrations read the same
    # frame through the contract without a message.
    positions, velocities = np.array([-0.0625, 0.125]), np.array([-0.25, 0.5])
    published = joint_state_msg(JOINTS, positions, velocities)
    np.testing.assert_array_equal(served(published), CONTRACT.state.vector(positions, velocities))
    assert CONTRACT.state.vector(positions, velocities).tolist() == expected


@pytest.mark.parametrize("msg,reason", [
    (JointState(name=["gantry_x"], position=[0.1], velocity=[0.0]), "missing_joint"),
    (JointState(name=["gantry_x", "gantry_y"], position=[0.1], velocity=[0.0, 0.0]), "missing_field"),
])
def test_a_missing_joint_is_the_same_error_in_every_node(msg, reason):
    with pytest.raises(InputError) as policy:
        served(msg)
    with pytest.raises(StateError) as shield:
        joint_positions(msg, JOINTS)
    with pytest.raises(StateError) as codec:
        joint_state_vector(msg, JOINTS, FIELDS)
    assert policy.value.reason == shield.value.reason == codec.value.reason == reason
    assert str(policy.value) == str(codec.value) and "gantry_y" in str(shield.value)
    if reason == "missing_joint":
        assert str(shield.value) == str(codec.value)
    # The recorder keeps what arrived and marks the rest NaN (its row is written, invalid, and counted).
    recorded = recorded_state(msg, CONTRACT)
    np.testing.assert_array_equal(recorded, codec.value.values)
    assert recorded[0] == 0.1 and np.isnan(recorded[2])  # gantry_y.position never arrived


def test_one_action_gives_one_command():
    action = np.array([0.2, -0.125])
    twist = vector_to_command(action, CONTRACT.action.type, CONTRACT.action.fields)  # what the policy publishes
    assert (twist.linear.x, twist.linear.y, twist.angular.z) == (0.2, -0.125, 0.0)
    np.testing.assert_array_equal(command_vector(twist, CONTRACT), action)  # what the recorder records
    np.testing.assert_array_equal(twist_to_array(twist, planar_twist_fields(2)), action)  # what the sim executes
