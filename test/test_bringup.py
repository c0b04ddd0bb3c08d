"""The sim profile brought up by `vla up` in real processes, observed from this process over ROS."""
from __future__ import annotations

import os
import re
import signal
import time

import pytest
from geometry_msgs.msg import Twist
from lifecycle_msgs.msg import State, TransitionEvent
from rclpy.qos import QoSProfile

from std_srvs.srv import Trigger

from vla_interfaces.msg import ManagerStatus
from vla_interfaces.srv import ManageNodes
from vla_ros import node_qos

pytestmark = pytest.mark.ros
EVENTS_QOS = QoSProfile(depth=100)  # lifecycle transition events: reliable, volatile


def transitions(probe, nodes):
    # Ordered by when each node published (source time): receipt order across two publishers can differ.
    logs = {n: probe.collect(TransitionEvent, f"/{n}/transition_event", EVENTS_QOS, source_time=True) for n in nodes}

    def ordered():
        # Primary states only (ids 1-4); transition states such as 'configuring' have ids >= 10.
        merged = [(t, n, ev.goal_state.label) for n, items in logs.items() for t, ev in items
                  if ev.goal_state.id < 10]
        return [(n, label) for _, n, label in sorted(merged)]
    return ordered


def test_up_in_order_and_down_in_reverse(probe, vla):
    ordered = transitions(probe, ["sim_robot", "teleop"])
    up = vla("up", "sim", "--quiet", "--set", "lifecycle_manager.autostart=false")
    # Transition events are volatile: start only once this probe is matched with both nodes' publishers.
    probe.wait_for(lambda: all(probe.node.count_publishers(f"/{n}/transition_event") for n in ("sim_robot", "teleop")),
                   60, "both nodes' transition_event publishers")
    time.sleep(0.5)
    inactive = probe.call(Trigger, "/lifecycle_manager/is_active", Trigger.Request())
    assert not inactive.success
    result = probe.call(ManageNodes, "/lifecycle_manager/manage_nodes", ManageNodes.Request(command=ManageNodes.Request.STARTUP), timeout=60)
    assert result.success, result.message
    up.wait_line(r"all \d+ nodes active in [\d.]+ s", timeout=30)
    probe.wait_for(lambda: len(ordered()) >= 4, 10, "four transition events")
    assert ordered() == [("sim_robot", "inactive"), ("teleop", "inactive"),
                         ("sim_robot", "active"), ("teleop", "active")]
    assert probe.call(Trigger, "/lifecycle_manager/is_active", Trigger.Request()).success
    up.interrupt()
    assert up.wait(60) == 0, up.output
    probe.wait_for(lambda: len(ordered()) >= 10, 10, "shutdown transition events")
    assert ordered()[4:] == [("teleop", "inactive"), ("sim_robot", "inactive"),
                             ("teleop", "unconfigured"), ("sim_robot", "unconfigured"),
                             ("teleop", "finalized"), ("sim_robot", "finalized")]
    assert "stopped cleanly" in up.output


def test_node_that_fails_to_configure_fails_bringup_with_its_reason(vla):
    up = vla("up", "sim", "--quiet", "--set", "sim_robot.env_id=vla_sim/DoesNotExist-v0")
    code = up.wait(120)
    assert code == 1, up.output
    assert "sim_robot failed to configure" in up.output
    assert "vla_sim/DoesNotExist-v0" in up.output


def test_killed_node_is_detected_and_command_path_goes_safe(probe, vla):
    status = probe.collect(ManagerStatus, "/lifecycle_manager/status", node_qos.LATCHED)
    commands = probe.collect(Twist, "/cmd_vel", node_qos.COMMAND)
    up = vla("up", "sim", "--set", "lifecycle_manager.heartbeat_timeout=1.0")
    pid = int(up.wait_line(r"started sim_robot \(pid (\d+)\)", 60).group(1))
    up.wait_line(r"all \d+ nodes active", 90)
    probe.wait_for(lambda: len(commands) > 5, 20, "teleop commands on /cmd_vel")
    killed_at = time.monotonic()
    os.kill(pid, signal.SIGKILL)

    def first(phase):
        return next(((t, m) for t, m in status if m.phase == phase and "heartbeat lost" in m.reason), None)
    try:
        probe.wait_for(lambda: first("safe_stop"), 15, "manager safe_stop")
    except AssertionError as exc:
        raise AssertionError(f"{exc}; statuses: {[(m.phase, m.reason) for _, m in status]}\n{up.output}") from None
    detected_at, _ = first("stopping")
    assert detected_at - killed_at < 1.0 + 1.0, f"loss detected {detected_at - killed_at:.2f} s after the kill (timeout 1 s)"
    safe_at, safe = first("safe_stop")
    assert "/sim_robot" in safe.reason
    # At safe_stop every surviving node is INACTIVE (the status carries each node's state) ...
    states = {n.node: n.state for n in safe.nodes}
    assert all(state == State.PRIMARY_STATE_INACTIVE for node, state in states.items() if node != "/sim_robot"), states
    # ... and nothing reaches the robot's command topic any more.
    assert not [t for t, _ in commands if t > safe_at + 0.2]
    assert up.wait(60) == 1
    assert "heartbeat lost from /sim_robot" in up.output


def test_single_process_mode_runs_the_same_profile(probe, vla):
    from rosgraph_msgs.msg import Clock
    clock = probe.collect(Clock, "/clock", node_qos.CLOCK)
    up = vla("up", "sim", "--single-process", "--quiet", "--duration", "3",
             "--set", "sim_robot.real_time_factor=5")
    up.wait_line(r"all \d+ nodes active", 90)
    assert up.wait(60) == 0, up.output
    assert "created sim_robot in this process" in up.output
    assert len(clock) > 10
    sim_span = (clock[-1][1].clock.sec + clock[-1][1].clock.nanosec * 1e-9) - (clock[0][1].clock.sec + clock[0][1].clock.nanosec * 1e-9)
    wall_span = clock[-1][0] - clock[0][0]
    assert sim_span > 2.0 * wall_span, "the sim did not run faster than real time"


def test_bad_profile_input_exits_nonzero_naming_the_problem(vla, tmp_path):
    up = vla("up", "no_such_profile")
    assert up.wait(30) == 2
    assert "unknown profile 'no_such_profile'" in up.output
    assert re.search(r"available profiles: [a-z_, ]*\bsim\b", up.output)
    bad = tmp_path / "bad.yaml"
    bad.write_text("nodes:\n  - {name: sim_robot, package: vla_sim, executable: sim_robot, params: [missing.yaml]}\n")
    up = vla("up", str(bad))
    assert up.wait(30) == 2
    assert "missing.yaml does not exist" in up.output
