"""The safety shield in the sim profile (real processes): the only path to the robot, e-stop latency and
reset, operator takeover, rejection and run-time limits, observed over ROS from this process."""
from __future__ import annotations

import time

import numpy as np
import pytest
from geometry_msgs.msg import Twist
from rcl_interfaces.msg import Parameter, ParameterType, ParameterValue
from rcl_interfaces.srv import SetParameters
from std_msgs.msg import Bool
from std_srvs.srv import Trigger

from vla_interfaces.msg import ShieldState
from vla_ros import node_qos

pytestmark = pytest.mark.ros


def vec(msg: Twist) -> np.ndarray:
    return np.array([msg.linear.x, msg.linear.y, msg.linear.z, msg.angular.x, msg.angular.y, msg.angular.z])


def publish_until(probe, pub, msg, predicate, timeout, what):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        pub.publish(msg)
        with probe.lock:
            if predicate():
                return
        time.sleep(0.05)
    raise AssertionError(f"timed out after {timeout:g} s waiting for {what}")


def test_shield_is_the_only_path_and_estop_latches_until_reset(probe, vla):
    commands = probe.collect(Twist, "/cmd_vel", node_qos.COMMAND)
    states = probe.collect(ShieldState, "/safety_shield/state", 10)
    up = vla("up", "sim", "--quiet")
    up.wait_line(r"all \d+ nodes active", 90)
    probe.wait_for(lambda: sum(np.any(vec(m) != 0) for _, m in commands) > 5, 30, "the expert driving via the shield")
    publishers = {i.node_name for i in probe.node.get_publishers_info_by_topic("/cmd_vel")}
    assert publishers == {"safety_shield"}, f"/cmd_vel publishers: {publishers}"
    assert all(s.active_source == "teleop" for _, s in states[-3:])

    estop = probe.node.create_publisher(Bool, "/safety/estop", 10)
    probe.wait_for(lambda: estop.get_subscription_count() > 0, 10, "the shield's safety/estop subscription")
    sent_at = time.monotonic()
    estop.publish(Bool(data=True))
    probe.wait_for(lambda: any(t > sent_at and np.all(vec(m) == 0) for t, m in commands), 10, "a zero cmd_vel")
    latency = next(t for t, m in commands if t > sent_at and np.all(vec(m) == 0)) - sent_at
    print(f"e-stop latency: safety/estop -> first zero cmd_vel {latency * 1e3:.1f} ms")
    # The shield zeroes on the step that takes the e-stop: its first e-stop state already sends zero.
    probe.wait_for(lambda: any(s.estop for _, s in states), 10, "an e-stop state")
    first = next(s for _, s in states if s.estop)
    assert list(first.command) == [0.0] * 6 and "estop" in first.rules and first.active_source == "estop"

    # Latched: the expert keeps commanding, nothing but zero comes out.
    time.sleep(1.0)
    with probe.lock:
        after = [m for t, m in commands if t > sent_at + latency]
    assert len(after) >= 3 and all(np.all(vec(m) == 0) for m in after)
    refused = probe.call(Trigger, "/safety_shield/reset", Trigger.Request())
    assert not refused.success and "release" in refused.message
    estop.publish(Bool(data=False))
    time.sleep(0.3)
    assert all(np.all(vec(m) == 0) for _, m in commands[-3:])  # releasing the button does not reset
    reset = probe.call(Trigger, "/safety_shield/reset", Trigger.Request())
    assert reset.success, reset.message
    reset_at = time.monotonic()
    probe.wait_for(lambda: any(t > reset_at and np.any(vec(m) != 0) for t, m in commands), 20,
                   "the expert driving again after the reset")

    # The ~/estop service latches the same way.
    assert probe.call(Trigger, "/safety_shield/estop", Trigger.Request()).success
    probe.wait_for(lambda: states[-1][1].estop, 5, "e-stop from the service")
    assert probe.call(Trigger, "/safety_shield/reset", Trigger.Request()).success
    up.interrupt()
    assert up.wait(60) == 0, up.output


def test_takeover_rejection_and_limits_at_run_time(probe, vla):
    commands = probe.collect(Twist, "/cmd_vel", node_qos.COMMAND)
    states = probe.collect(ShieldState, "/safety_shield/state", 10)
    up = vla("up", "sim", "--quiet")
    up.wait_line(r"all \d+ nodes active", 90)
    policy = probe.node.create_publisher(Twist, "/policy/cmd_vel", node_qos.COMMAND)
    probe.wait_for(lambda: policy.get_subscription_count() > 0, 10, "the shield's policy input")
    # A policy commanding while the operator (the expert) drives: the operator wins, a takeover is flagged.
    go = Twist()
    go.linear.x = 0.1
    publish_until(probe, policy, go, lambda: any(s.takeover for _, s in states), 20, "a takeover")
    taken = next(s for _, s in states if s.takeover)
    assert taken.active_source == "teleop" and taken.takeovers >= 1

    # A non-finite policy command is rejected and counted, never forwarded.
    bad = Twist()
    bad.linear.y = float("nan")
    publish_until(probe, policy, bad, lambda: states and states[-1][1].rejected >= 3, 10, "3 rejected commands")
    assert all(np.all(np.isfinite(vec(m))) for _, m in commands)

    # Limits change at run time (validated); the output follows at once. Topology does not change.
    client = "/safety_shield/set_parameters"
    slow = Parameter(name="max_velocity", value=ParameterValue(
        type=ParameterType.PARAMETER_DOUBLE_ARRAY, double_array_value=[0.05, 0.05, 0.0, 0.0, 0.0, 0.0]))
    result = probe.call(SetParameters, client, SetParameters.Request(parameters=[slow]))
    assert result.results[0].successful, result.results[0].reason
    changed_at = time.monotonic()
    probe.wait_for(lambda: sum(t > changed_at + 0.3 for t, _ in commands) > 10, 20, "commands under the new limit")
    with probe.lock:
        recent = [vec(m) for t, m in commands if t > changed_at + 0.3]
    assert max(np.abs(v).max() for v in recent) <= 0.05 + 1e-9
    topology = Parameter(name="command_type", value=ParameterValue(
        type=ParameterType.PARAMETER_STRING, string_value="joint_position"))
    result = probe.call(SetParameters, client, SetParameters.Request(parameters=[topology]))
    assert not result.results[0].successful
    up.interrupt()
    assert up.wait(60) == 0, up.output


def test_inactive_shield_never_commands(probe, vla):
    from vla_interfaces.srv import ManageNodes
    commands = probe.collect(Twist, "/cmd_vel", node_qos.COMMAND)
    up = vla("up", "sim", "--quiet", "--set", "lifecycle_manager.autostart=false")
    policy = probe.node.create_publisher(Twist, "/policy/cmd_vel", node_qos.COMMAND)
    manage = "/lifecycle_manager/manage_nodes"
    configured = probe.call(ManageNodes, manage, ManageNodes.Request(command=ManageNodes.Request.CONFIGURE), 60)
    assert configured.success, configured.message
    probe.wait_for(lambda: policy.get_subscription_count() > 0, 10, "the shield's policy input")
    go = Twist()
    go.linear.x = 0.1
    for _ in range(30):  # INACTIVE: connected and readable, never commanding
        policy.publish(go)
        time.sleep(0.05)
    assert not commands, f"an inactive shield published {len(commands)} commands"
    started = probe.call(ManageNodes, manage, ManageNodes.Request(command=ManageNodes.Request.STARTUP), 60)
    assert started.success, started.message
    publish_until(probe, policy, go, lambda: any(np.any(vec(m) != 0) for _, m in commands), 20,
                  "commands forwarded once active")
    up.interrupt()
    assert up.wait(60) == 0, up.output
