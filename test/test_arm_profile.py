"""The arm profile in real processes (vla up arm): the MuJoCo arm's two cameras and joint_states, a joint command
through the safety shield that moves the arm, commands the shield and the robot must refuse, and stops that hold
position (never zeros)."""
from __future__ import annotations

import time
from pathlib import Path

import numpy as np
import pytest
from diagnostic_msgs.msg import DiagnosticArray
from sensor_msgs.msg import Image, JointState
from std_msgs.msg import Float64MultiArray, String

from vla_core.contract import RobotContract
from vla_interfaces.msg import EpisodeEvent, ShieldState
from vla_ros import node_qos
from vla_safety.kinematics import forward_kinematics

WS = Path(__file__).resolve().parents[1]
pytestmark = pytest.mark.ros

CONTRACT = RobotContract.from_yaml(WS / "params" / "robots" / "sim_arm.yaml")
JOINTS = CONTRACT.state.joints  # six arm joints and the gripper
LOW, HIGH = np.array(CONTRACT.action.low), np.array(CONTRACT.action.high)


def latest(messages):
    return messages[-1][1]


def positions(msg: JointState) -> np.ndarray:
    assert tuple(msg.name) == JOINTS
    return np.array(msg.position)


def test_arm_profile_cameras_joint_commands_rejections_and_holds(probe, vla):
    scene = probe.collect(Image, "/camera/scene/image_raw", node_qos.SENSOR_SUB)
    wrist = probe.collect(Image, "/camera/wrist/image_raw", node_qos.SENSOR_SUB)
    joints = probe.collect(JointState, "/joint_states", node_qos.SENSOR_SUB)
    shield = probe.collect(ShieldState, "/safety_shield/state", 10)
    sent = probe.collect(Float64MultiArray, "/cmd", node_qos.COMMAND)
    diags = probe.collect(DiagnosticArray, "/diagnostics", 10)
    events = probe.collect(EpisodeEvent, "/episode/events", node_qos.EVENTS)
    instruction = probe.collect(String, "/instruction", node_qos.LATCHED)
    # The scripted expert watches only: the test drives the shield's teleop input itself. No episode ends.
    up = vla("up", "arm", "--quiet", "--set", "sim_expert.enabled=false", "--set", "sim_robot.max_episode_steps=100000",
             "--set", "sim_robot.diagnostics_period=0.2")
    up.wait_line(r"all 3 nodes active", 90)

    probe.wait_for(lambda: len(scene) > 3 and len(wrist) > 3 and len(joints) > 3 and instruction and events, 20,
                   "both cameras, joint_states, the instruction and the episode's START")
    for images, frame_id in ((scene, "camera_scene_optical_frame"), (wrist, "camera_wrist_optical_frame")):
        image = latest(images)
        assert (image.height, image.width, image.encoding, image.header.frame_id) == (96, 96, "rgb8", frame_id)
    assert bytes(latest(scene).data) != bytes(latest(wrist).data)
    assert events[0][1].event == EpisodeEvent.START and latest(instruction).data
    state = latest(joints)
    assert len(state.velocity) == len(JOINTS)
    start = positions(state)

    # A joint command through the shield moves the arm toward it: shoulder_pan +0.4 rad, the gripper half shut.
    target = start.copy()
    target[0] += 0.4
    target[6] = 0.04
    teleop = probe.node.create_publisher(Float64MultiArray, "/teleop/cmd", node_qos.COMMAND)
    probe.wait_for(lambda: teleop.get_subscription_count() > 0, 10, "the shield's teleop/cmd subscription")
    probe.publish_until(teleop, Float64MultiArray(data=target.tolist()),
                        lambda: abs(positions(latest(joints))[0] - target[0]) < 0.1, 20, "shoulder_pan near its target")
    moved = positions(latest(joints))
    assert abs(moved[6] - 0.04) < 0.01, moved  # the gripper is one more joint of the same command
    assert np.all(np.abs(moved[1:6] - start[1:6]) < 0.1), (start, moved)  # the others held
    assert latest(shield).active_source == "teleop"

    # NaN through the shield: rejected, counted, and the arm holds where it is (the shield sends the hold).
    rejected = latest(shield).rejected
    nan = target.copy()
    nan[2] = float("nan")
    probe.publish_until(teleop, Float64MultiArray(data=nan.tolist()),
                        lambda: latest(shield).rejected >= rejected + 3, 10, "3 NaN commands rejected by the shield")
    assert any(r.startswith("reject") for r in latest(shield).rules)
    assert all(np.all(np.isfinite(m.data)) for _, m in sent)
    # Out of the contract's limits through the shield: clamped to them and reported (never sent beyond).
    beyond = target.copy()
    beyond[1] = HIGH[1] + 1.0
    probe.publish_until(teleop, Float64MultiArray(data=beyond.tolist()),
                        lambda: "limit.position" in latest(shield).rules, 10, "the shield's position limit")
    assert all(np.all((np.array(m.data) >= LOW) & (np.array(m.data) <= HIGH)) for _, m in sent)
    # That target (shoulder_lift 1.9 rad) would take the tcp through the table: the end-effector box (through the
    # MJCF's kinematics) stops it at z = 0.01 m.
    probe.publish_until(teleop, Float64MultiArray(data=beyond.tolist()),
                        lambda: "limit.workspace" in latest(shield).rules, 15, "the shield's workspace box")
    fk = forward_kinematics(WS / "src/vla_sim/vla_sim/envs/assets/arm/arm_tabletop.xml", "tcp", JOINTS)
    assert min(fk.position(np.array(m.data))[2] for _, m in sent) >= 0.01 - 1e-3

    # Watchdog: the operator goes silent; the shield holds the measured position, never zeros, and the arm stays.
    teleop.publish(Float64MultiArray(data=positions(latest(joints)).tolist()))
    probe.wait_for(lambda: "watchdog" in latest(shield).rules, 5, "the shield's watchdog")
    time.sleep(0.5)
    held = np.array(latest(sent).data)
    now = positions(latest(joints))
    assert np.all(np.abs(held - now) < 0.03), (held, now)
    assert not np.allclose(held[:6], 0.0)
    time.sleep(1.0)
    assert np.all(np.abs(positions(latest(joints)) - now) < 0.02)

    # The robot's own check behind the shield: a rogue NaN, wrong-length or out-of-limit command on cmd is
    # refused, counted and never applied.
    rogue = probe.node.create_publisher(Float64MultiArray, "/cmd", node_qos.COMMAND)
    probe.wait_for(lambda: rogue.get_subscription_count() > 0, 10, "the sim robot's cmd subscription")
    out = now.copy()
    out[0] = HIGH[0] + 0.5
    for bad, key in ((out, "rejected_limits"), (nan, "rejected_nonfinite"), (now[:6], "rejected_dimension")):
        probe.publish_until(rogue, Float64MultiArray(data=bad.tolist()),
                            lambda key=key: probe.count(diags, "sim_robot: simulation", key) >= 2, 10,
                            f"{key} on the sim robot")
    assert np.all(np.isfinite(positions(latest(joints))))
    assert positions(latest(joints))[0] < HIGH[0]

    up.interrupt()
    assert up.wait(30) == 0, up.output


def test_a_robot_that_does_not_take_the_contracts_command_fails_configure_naming_both(vla):
    up = vla("up", "arm", "--quiet", "--set", "sim_robot.command_type=joint_trajectory")
    assert up.wait(60) == 1, up.output
    assert ("the contract's action is std_msgs/msg/Float64MultiArray, but this robot takes "
            "trajectory_msgs/msg/JointTrajectory" in up.output), up.output


def test_the_arm_takes_joint_trajectories_when_its_contract_says_so(probe, vla, tmp_path, one_node_profile):
    """The sim robot as a JointTrajectoryController arm: a trajectory (joints in any order) moves it; one to other
    joints is refused and counted."""
    from trajectory_msgs.msg import JointTrajectory

    from vla_ros.convert import array_to_joint_trajectory
    text = (WS / "params" / "robots" / "sim_arm.yaml").read_text()
    text = text.replace("type: std_msgs/msg/Float64MultiArray", "type: trajectory_msgs/msg/JointTrajectory")
    text = text.replace('fields: ["data[0]", "data[1]", "data[2]", "data[3]", "data[4]", "data[5]", "data[6]"]',
                        f"fields: [{', '.join(JOINTS)}]")
    contract = tmp_path / "sim_arm_trajectory.yaml"
    contract.write_text(text)
    profile = one_node_profile("sim_robot", "vla_sim", WS / "params" / "sim_robot_arm.yaml",
                               "the arm alone, commanded by the test", file="arm_only.yaml")
    joints = probe.collect(JointState, "/joint_states", node_qos.SENSOR_SUB)
    diags = probe.collect(DiagnosticArray, "/diagnostics", 10)
    up = vla("up", str(profile), "--quiet", "--set", "sim_robot.command_type=joint_trajectory",
             "--set", f"sim_robot.contract={contract}", "--set", "sim_robot.publish_clock=false",
             "--set", "sim_robot.diagnostics_period=0.2", "--set", "sim_robot.max_episode_steps=100000")
    up.wait_line("all 1 nodes active", 90)
    probe.wait_for(lambda: joints, 20, "joint_states")
    target = positions(latest(joints))
    target[0] -= 0.3
    cmd = probe.node.create_publisher(JointTrajectory, "/cmd", node_qos.COMMAND)
    probe.wait_for(lambda: cmd.get_subscription_count() > 0, 10, "the sim robot's cmd subscription")
    order = list(reversed(JOINTS))
    probe.publish_until(cmd, array_to_joint_trajectory(target[::-1], order, dt=0.1),
                        lambda: abs(positions(latest(joints))[0] - target[0]) < 0.1, 20, "shoulder_pan near its target")
    other = array_to_joint_trajectory(target, list(JOINTS[:6]) + ["finger"], dt=0.1)
    probe.publish_until(cmd, other, lambda: probe.count(diags, "sim_robot: simulation", "rejected_malformed") >= 2, 10,
                        "trajectories to other joints refused")
    up.interrupt()
    assert up.wait(30) == 0, up.output
