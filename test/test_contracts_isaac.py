"""The Isaac Sim Franka contract (params/robots/isaac_sim_franka.yaml) against the schema and the nodes that use it.

Isaac Sim does not run here: these tests check that the contract loads, declares the features a Franka policy is
trained on, names topics the way Isaac Sim's ROS 2 camera helpers publish them, and fits what the safety shield
publishes and the recorder records for joint commands.
"""
from __future__ import annotations

from pathlib import Path

import pytest

from vla_core.contract import RobotContract

WS = Path(__file__).resolve().parents[1]
CONTRACT = WS / "params" / "robots" / "isaac_sim_franka.yaml"
ARM = [f"panda_joint{i}" for i in range(1, 8)]
JOINTS = ARM + ["panda_finger_joint1", "panda_finger_joint2"]


@pytest.fixture(scope="module")
def contract() -> RobotContract:
    return RobotContract.from_yaml(CONTRACT)


def test_features_are_two_cameras_joint_state_and_joint_positions(contract):
    feats = contract.features()
    assert sorted(k for k in feats if k.startswith("observation.images.")) == [
        "observation.images.front", "observation.images.wrist"]
    assert all(feats[f"observation.images.{c}"]["shape"] == [224, 224, 3] for c in ("front", "wrist"))
    assert feats["observation.state"]["names"] == [f"{j}.{f}" for j in JOINTS for f in ("position", "velocity")]
    assert feats["action"]["shape"] == [len(JOINTS)] and feats["action"]["names"] == JOINTS
    assert contract.fps == 15 and contract.base_frame == "base_link"


def test_cameras_follow_isaac_camera_helper_names(contract):
    # ROS2 Camera Helper publishes <nodeNamespace>/<topicName>, its info helper <nodeNamespace>/camera_info.
    for cam in contract.cameras:
        assert cam.topic == f"{cam.name}/rgb" and cam.info_topic == f"{cam.name}/camera_info"
        assert cam.encoding == "rgb8" and cam.frame_id


def test_every_commanded_joint_is_observed(contract):
    assert list(contract.state.joints) == JOINTS and contract.state.topic == "joint_states"
    assert list(contract.action.names) == list(contract.state.joints)
    assert list(contract.action.fields) == [f"data[{i}]" for i in range(len(JOINTS))]


def test_action_is_what_the_shield_sends_and_the_recorder_records(contract):
    from std_msgs.msg import Float64MultiArray

    from vla_recorder.convert import command_type, command_vector
    assert contract.action.topic == "cmd" and contract.action.type == "std_msgs/msg/Float64MultiArray"
    shield = (WS / "src/vla_safety/vla_safety/shield_node.py").read_text()
    # The shield sends joint commands on cmd in the contract's own message type.
    assert '(command_message_type(self._message), "cmd")' in shield, "the shield's joint-command output is no longer cmd"
    assert command_type(contract) is Float64MultiArray
    q = [0.0, -0.5, 0.0, -2.0, 0.0, 1.5, 0.8, 0.02, 0.02]
    assert command_vector(Float64MultiArray(data=q), contract).tolist() == q


def test_the_shields_hard_limits_are_the_contracts(contract):
    from vla_safety.hard_limits import hard_limits
    hard = hard_limits(contract, "joint_position")
    assert hard.names == tuple(JOINTS) and list(hard.lower) == list(contract.action.low)
    assert list(hard.upper) == list(contract.action.high) and list(hard.velocity) == list(contract.action.max_velocity)
    assert contract.action.low[7:] == (0.0, 0.0) and contract.action.high[7:] == (0.04, 0.04)
