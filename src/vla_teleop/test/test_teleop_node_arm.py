"""The teleop node's arm devices with real rclpy in this process: configure failures with their reason, and the Joy
jog end to end (Joy + joint_states in, the contract's Float64MultiArray on teleop/cmd out). The leader arm across
processes, through the shield and the sim, is in test/test_teleop_arm.py."""
import os
import time
from pathlib import Path

import numpy as np
import pytest
from lifecycle_msgs.msg import State
from sensor_msgs.msg import JointState, Joy
from std_msgs.msg import Float64MultiArray

from vla_interfaces.msg import Intervention
from vla_ros import node_qos
from vla_ros.testing import spinning_probe
from vla_sim.envs.arm_kinematics import HOME_QPOS, ArmKinematics
from vla_teleop.teleop_node import TeleopNode

WS = Path(__file__).resolve().parents[3]
NS = f"/teleop_arm_node_test_{os.getpid()}"
ARM = {"contract": str(WS / "params/robots/sim_arm.yaml"), "arm_link": "tcp", "gripper_joint": "gripper",
       "arm_model": str(WS / "src/vla_sim/vla_sim/envs/assets/arm/arm_tabletop.xml")}
NAMES = ["shoulder_pan", "shoulder_lift", "elbow", "forearm_roll", "wrist_pitch", "wrist_roll", "gripper"]


@pytest.fixture
def ros():
    with spinning_probe(NS) as handles:
        yield handles


def teleop(ctx, **params) -> TeleopNode:
    args = ["--ros-args", "-r", f"__ns:={NS}"]
    for key, value in params.items():
        args += ["-p", f"{key}:={value}"]
    return TeleopNode(context=ctx, cli_args=args, use_global_arguments=False)


@pytest.mark.parametrize("params,fragment", [
    ({"device": "arm_joy"}, "the arm_joy device sends the robot contract's joint command: set contract"),
    ({"device": "arm_joy", "contract": str(WS / "params/robots/tabletop_sim.yaml")},
     "commands a geometry_msgs/msg/Twist; use device keyboard or joy"),
    ({"device": "joy", "contract": ARM["contract"]}, "use device arm_keyboard, arm_joy or leader_arm for an arm"),
    ({"device": "arm_joy", "contract": ARM["contract"]}, "set arm_model (the robot's URDF or MJCF) and arm_link"),
    ({**ARM, "device": "arm_joy", "arm_link": "flange"}, "arm_link 'flange' is neither a site nor a body"),
    ({**ARM, "device": "arm_joy", "gripper_joint": "finger"}, "gripper_joint 'finger' is not one of the contract's"),
    ({**ARM, "device": "arm_joy", "arm_joy_axes": "[1, 0]"}, "arm_joy_axes [1, 0] needs 6 Joy axes"),
    ({"device": "leader_arm", "contract": ARM["contract"], "leader_joint_map": "['x=knee']"},
     "maps onto 'knee', which is not one of the follower's joints"),
    ({"device": "leader_arm", "contract": ARM["contract"], "leader_wait": 0.3},
     f"no leader joint_states on {NS}/leader/joint_states within 0.3 s"),
])
def test_an_arm_device_that_cannot_work_fails_configure_naming_the_fix(ros, params, fragment):
    ctx, _, _ = ros
    node = teleop(ctx, **params)
    try:
        node.trigger_configure()
        assert node.lifecycle_state == State.PRIMARY_STATE_UNCONFIGURED
        assert fragment in node.last_error, node.last_error
    finally:
        node.destroy_node()


def test_the_joy_jog_sends_joint_targets_that_move_the_tool_forward_only_while_the_deadman_is_held(ros):
    ctx, probe, executor = ros
    node = teleop(ctx, device="arm_joy", **ARM)
    cmds, flags = [], []
    probe.create_subscription(Float64MultiArray, f"{NS}/teleop/cmd", lambda m: cmds.append(np.array(m.data)),
                              node_qos.COMMAND)
    probe.create_subscription(Intervention, f"{NS}/teleop/intervention", lambda m: flags.append(m.active), 10)
    joint_pub = probe.create_publisher(JointState, f"{NS}/joint_states", 10)
    joy_pub = probe.create_publisher(Joy, f"{NS}/joy", 10)
    node.trigger_configure()
    assert node.lifecycle_state == State.PRIMARY_STATE_INACTIVE, node.last_error
    node.trigger_activate()
    executor.add_node(node)
    try:
        home = np.r_[HOME_QPOS, 0.04]
        deadline = time.monotonic() + 10.0
        while len(cmds) < 10 and time.monotonic() < deadline:  # left stick up (+x) with the deadman (LB) held
            q = cmds[-1] if cmds else home  # an arm that reaches every target; its joints in another order
            joint_pub.publish(JointState(name=list(reversed(NAMES)), position=q[::-1].tolist()))
            joy_pub.publish(Joy(axes=[0.0, 1.0, 0.0, 0.0, 0.0, 0.0], buttons=[0, 0, 0, 0, 1]))
            time.sleep(0.05)
        assert len(cmds) >= 10, f"{len(cmds)} commands on teleop/cmd"
        fk = ArmKinematics()
        x = [fk.fk(c[:6])[0][0] for c in cmds[:10]]
        assert np.all(np.diff(x) > 0.003) and x[0] > fk.fk(HOME_QPOS)[0][0], x  # 0.005 m per 0.1 s tick
        assert all(c[6] == pytest.approx(0.04) for c in cmds) and any(flags)
        n = len(cmds)
        for _ in range(10):  # deadman released: no command, no intervention
            joint_pub.publish(JointState(name=NAMES, position=home.tolist()))
            joy_pub.publish(Joy(axes=[0.0, 1.0, 0.0, 0.0, 0.0, 0.0], buttons=[0, 0, 0, 0, 0]))
            time.sleep(0.05)
        time.sleep(0.3)
        assert len(cmds) <= n + 2 and not flags[-1]
    finally:
        executor.remove_node(node)
        node.trigger_deactivate()
        node.destroy_node()
