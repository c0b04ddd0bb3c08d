"""The shield node with real rclpy in this process: LaserScan zones over topics, the sensor timeout,
configure failures with their reason, markers. Cross-process behaviour is in test/test_safety_shield.py."""
import math
import os
import time

import numpy as np
import pytest
from geometry_msgs.msg import Twist
from lifecycle_msgs.msg import State
from sensor_msgs.msg import LaserScan
from visualization_msgs.msg import MarkerArray

from vla_interfaces.msg import ShieldState
from vla_ros import node_qos
from vla_ros.testing import spinning_probe
from vla_safety.shield_node import SafetyShieldNode

NS = f"/shield_node_test_{os.getpid()}"
ZONES = "[{name: front, type: stop, min_points: 2, points: [[0.0, -0.2], [0.4, -0.2], [0.4, 0.2], [0.0, 0.2]]}]"


@pytest.fixture
def ros():
    with spinning_probe(NS) as handles:
        yield handles


def shield(ctx, executor, **overrides):
    args = ["--ros-args", "-r", f"__ns:={NS}"]
    for key, value in overrides.items():
        args += ["-p", f"{key}:={value}"]
    node = SafetyShieldNode(context=ctx, cli_args=args, use_global_arguments=False)
    executor.add_node(node)
    return node


def wait(predicate, timeout, what):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return
        time.sleep(0.02)
    raise AssertionError(f"timed out after {timeout} s waiting for {what}")


def scan(probe, ranges):
    msg = LaserScan(angle_min=-math.pi, angle_increment=2 * math.pi / len(ranges), range_min=0.05, range_max=5.0,
                    ranges=[float(r) for r in ranges])
    msg.header.stamp = probe.get_clock().now().to_msg()
    return msg


def test_scan_zone_stops_and_silent_scanner_stops(ros):
    ctx, probe, executor = ros
    node = shield(ctx, executor, zones=f'"{ZONES}"', scan_topic="scan", rate=20.0, sensor_timeout=0.6)
    out, states, markers = [], [], []
    probe.create_subscription(Twist, "cmd_vel", lambda m: out.append(m), node_qos.COMMAND)
    probe.create_subscription(ShieldState, "safety_shield/state", lambda m: states.append(m), 10)
    probe.create_subscription(MarkerArray, "safety_shield/markers", lambda m: markers.append(m), node_qos.LATCHED)
    cmd = probe.create_publisher(Twist, "policy/cmd_vel", node_qos.COMMAND)
    scans = probe.create_publisher(LaserScan, "scan", node_qos.SENSOR_PUB)
    node.trigger_configure()
    node.trigger_activate()
    assert node.is_active
    wait(lambda: cmd.get_subscription_count() and scans.get_subscription_count(), 10, "the shield's inputs")
    go = Twist()
    go.linear.x = 0.2
    clear = np.full(360, 3.0)
    blocked = clear.copy()
    blocked[178:183] = 0.2  # 5 returns straight ahead (angle ~0) at 0.2 m: inside the stop zone

    def drive(ranges, seconds):
        end = time.monotonic() + seconds
        while time.monotonic() < end:
            if ranges is not None:
                scans.publish(scan(probe, ranges))
            cmd.publish(go)
            time.sleep(0.03)

    drive(clear, 1.0)
    assert out and out[-1].linear.x > 0.1 and states[-1].active_source == "policy"
    first_blocked = len(states)
    drive(blocked, 0.5)
    # Stopped, and by the stop zone (a loaded machine may also delay a scan past sensor_timeout: also a stop).
    assert out[-1].linear.x == 0.0
    assert any("zone.stop:front" in s.rules for s in states[first_blocked:]), [s.rules for s in states[first_blocked:]]
    drive(clear, 0.5)
    assert out[-1].linear.x > 0.0
    drive(None, 1.2)  # the scanner goes silent (past sensor_timeout): stop
    assert out[-1].linear.x == 0.0 and "zone.source_timeout:scan" in states[-1].rules, \
        [(list(s.rules), list(s.command)) for s in states[-8:]]
    wait(lambda: markers, 5, "markers")
    assert any(m.ns == "zone/front" and m.type == m.LINE_STRIP for m in markers[-1].markers)
    drive(clear, 0.5)
    node.trigger_deactivate()
    time.sleep(0.3)
    assert out[-1].linear.x == 0.0  # deactivation leaves the robot stopped
    count = len(out)
    drive(clear, 0.4)
    assert len(out) == count  # INACTIVE never publishes
    node.trigger_cleanup()
    node.destroy_node()


def test_bad_zones_fail_configure_with_the_reason(ros):
    ctx, _, executor = ros
    node = shield(ctx, executor, zones='"[{name: z, type: wall, points: [[0, 0], [1, 0], [0, 1]]}]"',
                  scan_topic="scan")
    node.trigger_configure()
    assert node.lifecycle_state == State.PRIMARY_STATE_UNCONFIGURED
    assert "type 'wall'" in node.last_error and "stop" in node.last_error
    node.destroy_node()


def test_a_bug_in_a_callback_stops_the_robot_and_the_shield_stays_active(ros):
    """An exception escaping one of the shield's callbacks is caught by the node base; the shield forgets the
    commands it held and sends a stop at once instead of forwarding the last command until its timeout."""
    ctx, probe, executor = ros
    node = shield(ctx, executor, rate=20.0, policy_timeout=5.0)
    out = []
    probe.create_subscription(Twist, "cmd_vel", lambda m: out.append(m.linear.x), node_qos.COMMAND)
    cmd = probe.create_publisher(Twist, "policy/cmd_vel", node_qos.COMMAND)
    node.trigger_configure()
    node.trigger_activate()
    wait(lambda: cmd.get_subscription_count(), 10, "the shield's command input")
    go = Twist()
    go.linear.x = 0.2
    cmd.publish(go)
    wait(lambda: out and out[-1] > 0.0, 5, "the policy's command forwarded")
    original = node.shield.offer_command

    def broken(*args, **kwargs):
        raise RuntimeError("injected bug")

    node.shield.offer_command = broken
    cmd.publish(go)
    wait(lambda: node.callback_errors, 5, "the callback's exception caught")
    n = len(out)
    wait(lambda: len(out) > n, 5, "a command after the exception")
    assert out[-1] == 0.0, f"after a callback bug the shield sent {out[-1]} instead of a stop"
    assert node.is_active
    node.shield.offer_command = original
    time.sleep(0.3)  # the watchdog ticks meanwhile: nothing old comes back (policy_timeout is 5 s)
    assert all(v == 0.0 for v in out[n:]), out[n:]


TRAJECTORY_CONTRACT = """
robot: trajectory_arm
fps: 10
state: {topic: joint_states, joints: [a, b, gripper], fields: [position, velocity]}
action:
  topic: cmd
  type: trajectory_msgs/msg/JointTrajectory
  fields: [a, b, gripper]
  low: [-1.0, -1.0, 0.0]
  high: [1.0, 1.0, 0.08]
  max_velocity: [2.0, 2.0, 1.0]
  max_acceleration: [50.0, 50.0, 50.0]
"""


def test_joint_trajectory_commands_in_and_out_and_a_trajectory_to_other_joints_holds(ros, tmp_path):
    """A JointTrajectoryController arm: the shield reads teleop/cmd trajectories by joint name and sends one
    point to cmd; a trajectory to other joints is rejected and the arm holds its measured position."""
    from sensor_msgs.msg import JointState
    from trajectory_msgs.msg import JointTrajectory

    from vla_ros.convert import array_to_joint_trajectory, joint_trajectory_chunk
    contract = tmp_path / "trajectory_arm.yaml"
    contract.write_text(TRAJECTORY_CONTRACT)
    ctx, probe, executor = ros
    node = shield(ctx, executor, command_type="joint_position", contract=str(contract), rate=10.0,
                  hold_command_joints="[gripper]")
    out, states = [], []
    probe.create_subscription(JointTrajectory, "cmd", lambda m: out.append(m), node_qos.COMMAND)
    probe.create_subscription(ShieldState, "safety_shield/state", lambda m: states.append(m), 10)
    cmd = probe.create_publisher(JointTrajectory, "teleop/cmd", node_qos.COMMAND)
    joints = probe.create_publisher(JointState, "joint_states", node_qos.SENSOR_PUB)
    node.trigger_configure()
    node.trigger_activate()
    assert node.is_active
    wait(lambda: cmd.get_subscription_count() and joints.get_subscription_count(), 10, "the shield's inputs")
    measured = JointState(name=["gripper", "b", "a"], position=[0.05, -0.2, 0.1], velocity=[0.0] * 3)

    def send(msg, predicate, what):
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline and not predicate():
            measured.header.stamp = probe.get_clock().now().to_msg()
            joints.publish(measured)
            cmd.publish(msg)
            time.sleep(0.05)
        assert predicate(), what

    # Another order of the same joints; the first point of a two-point chunk is the command.
    chunk = np.array([[0.02, 0.12, -0.19], [0.04, 0.14, -0.18]])  # gripper, a, b
    incoming = array_to_joint_trajectory(chunk, ["gripper", "a", "b"], dt=0.1)
    send(incoming, lambda: any(len(m.points) == 1 for m in out), "a trajectory out")
    sent = out[-1]
    assert sent.joint_names == ["a", "b", "gripper"]
    assert sent.points[0].time_from_start.nanosec == 100_000_000  # one control period
    np.testing.assert_allclose(joint_trajectory_chunk(sent, ("a", "b", "gripper"))[0][0], [0.12, -0.19, 0.02])

    wrong = array_to_joint_trajectory(np.array([0.1, 0.1, 0.1]), ["a", "b", "finger"])
    rejected = states[-1].rejected
    send(wrong, lambda: states and states[-1].rejected > rejected, "the trajectory to other joints rejected")
    wait(lambda: any(r.startswith("reject") for r in states[-1].rules), 5, "the stop")
    # Arm joints hold where they were measured; the gripper keeps its last commanded opening.
    wait(lambda: np.allclose(joint_trajectory_chunk(out[-1], ("a", "b", "gripper"))[0][0], [0.1, -0.2, 0.02]), 5,
         f"the hold [0.1, -0.2, 0.02] (last sent: {list(out[-1].points[0].positions)})")
    node.trigger_deactivate()
    node.trigger_cleanup()
    node.destroy_node()
