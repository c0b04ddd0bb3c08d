"""The safety shield in real processes: in the sim profile, the only path to the robot, e-stop latency and
reset, operator takeover, rejection and run-time limits; on its own, what it trusts (a forged /clock, limit
changes beyond the contract's hard limits, a supervisor that goes away), observed over ROS from this process."""
from __future__ import annotations

import os
import subprocess
import sys
import threading
import time

import numpy as np
import pytest
from geometry_msgs.msg import Twist
from lifecycle_msgs.msg import Transition
from lifecycle_msgs.srv import ChangeState
from rcl_interfaces.msg import Parameter, ParameterType, ParameterValue
from rcl_interfaces.srv import SetParameters
from rosgraph_msgs.msg import Clock
from std_msgs.msg import Bool
from std_srvs.srv import Trigger

from vla_interfaces.msg import ManagerStatus, ShieldState
from vla_ros import node_qos
from vla_ros.convert import seconds_to_time

pytestmark = pytest.mark.ros


def vec(msg: Twist) -> np.ndarray:
    return np.array([msg.linear.x, msg.linear.y, msg.linear.z, msg.angular.x, msg.angular.y, msg.angular.z])


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
    probe.publish_until(policy, go, lambda: any(s.takeover for _, s in states), 20, "a takeover")
    taken = next(s for _, s in states if s.takeover)
    assert taken.active_source == "teleop" and taken.takeovers >= 1

    # A non-finite policy command is rejected and counted, never forwarded.
    bad = Twist()
    bad.linear.y = float("nan")
    probe.publish_until(policy, bad, lambda: states and states[-1][1].rejected >= 3, 10, "3 rejected commands")
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
    probe.publish_until(policy, go, lambda: any(np.any(vec(m) != 0) for _, m in commands), 20,
                        "commands forwarded once active")
    up.interrupt()
    assert up.wait(60) == 0, up.output


# ---- the shield on its own, in its own process ----------------------------------------------------------------
class ShieldProcess:
    """safety_shield in a child process under namespace ``ns``, configured and activated from the probe."""

    def __init__(self, probe, ns: str, **params):
        self.ns = ns
        args = ["--ros-args", "-r", f"__ns:={ns}", "-r", f"/clock:={ns}/clock"]  # a private /clock
        for key, value in params.items():
            args += ["-p", f"{key}:={value}"]
        code = "import sys; from vla_safety.shield_node import main; main(sys.argv[1:])"
        self.proc = subprocess.Popen([sys.executable, "-c", code, *args], stdout=subprocess.PIPE,
                                     stderr=subprocess.STDOUT, text=True)
        for transition in (Transition.TRANSITION_CONFIGURE, Transition.TRANSITION_ACTIVATE):
            result = probe.call(ChangeState, f"{ns}/safety_shield/change_state",
                                ChangeState.Request(transition=Transition(id=transition)), 30)
            assert result.success, self.stop()

    def stop(self) -> str:
        self.proc.terminate()
        try:
            out, _ = self.proc.communicate(timeout=10)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            out, _ = self.proc.communicate()
        return out


class Repeater:
    """Calls ``fn`` every ``period`` s on a thread until stopped."""

    def __init__(self, fn, period: float):
        self.fn, self.period, self.running = fn, period, True
        self.thread = threading.Thread(target=self._run, daemon=True)
        self.thread.start()

    def _run(self):
        while self.running:
            self.fn()
            time.sleep(self.period)

    def stop(self):
        self.running = False
        self.thread.join(2.0)


@pytest.fixture
def shield_process(probe):
    started = []

    def start(**params) -> ShieldProcess:
        ns = f"/shield_{os.getpid()}_{len(started)}"
        started.append(ShieldProcess(probe, ns, **params))
        return started[-1]
    yield start
    for shield in started:
        shield.stop()


def go_back(vx=-0.2) -> Twist:
    msg = Twist()
    msg.linear.x = vx
    return msg


def test_a_forged_clock_cannot_keep_the_last_command_alive(probe, shield_process):
    """/clock = 1e6 s at 50 Hz for 1 s while commanding (a replayed bag's clock), then the only command source
    goes silent: the shield stops within its timeout, and never forwards the old command again."""
    shield = shield_process(use_sim_time=True, policy_timeout=0.5)
    ns = shield.ns
    commands = probe.collect(Twist, f"{ns}/cmd_vel", node_qos.COMMAND)
    states = probe.collect(ShieldState, f"{ns}/safety_shield/state", 50)
    clock = probe.node.create_publisher(Clock, f"{ns}/clock", node_qos.CLOCK)
    policy = probe.node.create_publisher(Twist, f"{ns}/policy/cmd_vel", node_qos.COMMAND)
    t0 = time.monotonic()

    def simulator():
        return Repeater(lambda: clock.publish(Clock(clock=seconds_to_time(100.0 + time.monotonic() - t0))), 0.01)
    sim, driver = simulator(), Repeater(lambda: policy.publish(go_back()), 0.05)
    try:
        probe.wait_for(lambda: any(m.linear.x < 0 for _, m in commands), 15, "the policy's command forwarded")
        sim.stop()  # a paused simulator, while a bag's clock plays
        attack = Repeater(lambda: clock.publish(Clock(clock=seconds_to_time(1e6))), 0.02)
        time.sleep(1.0)
        driver.stop()
        attack.stop()
        silent_at = time.monotonic()
        sim = simulator()
        time.sleep(3.0)
    finally:
        sim.stop()
        driver.stop()
    with probe.lock:
        after = [(t - silent_at, m.linear.x) for t, m in commands if t > silent_at]
        rules = {r for _, s in states for r in s.rules}
    first_zero = next((dt for dt, vx in after if vx == 0.0), None)
    print(f"forged /clock, then silence: first zero cmd_vel after {first_zero} s, {len(after)} commands in 3 s")
    assert first_zero is not None and first_zero < 0.5 + 1.0, after[:20]  # the timeout, plus a loaded machine
    assert all(vx == 0.0 for dt, vx in after if dt >= first_zero), after
    assert len(after) >= 20  # the steady timer kept stepping at 10 Hz while /clock jumped about
    assert "clock_jump" in rules  # the forged clock was seen and counted


def _double_array(name: str, values) -> Parameter:
    return Parameter(name=name, value=ParameterValue(type=ParameterType.PARAMETER_DOUBLE_ARRAY,
                                                     double_array_value=[float(v) for v in values]))


def test_limits_set_at_run_time_stay_within_the_contracts_hard_limits(probe, shield_process):
    shield = shield_process(max_velocity="[0.2,0.2,0.0,0.0,0.0,0.0]")
    client = f"{shield.ns}/safety_shield/set_parameters"

    def set_(*parameters):
        return probe.call(SetParameters, client, SetParameters.Request(parameters=list(parameters))).results[0]

    refused = set_(_double_array("max_velocity", [100.0] * 6))
    assert not refused.successful and "hard limit 0.25" in refused.reason and "tabletop_sim.yaml" in refused.reason
    refused = set_(_double_array("max_velocity", [0.25, 0.25, 0.0, 0.0, 0.0, 1.5]))  # the contract forbids angular.z
    assert not refused.successful and "angular.z 1.5 > hard limit 0" in refused.reason
    refused = set_(Parameter(name="policy_timeout", value=ParameterValue(type=ParameterType.PARAMETER_DOUBLE,
                                                                       double_value=10.0)))
    assert not refused.successful and "may only tighten" in refused.reason
    refused = set_(Parameter(name="use_sim_time", value=ParameterValue(type=ParameterType.PARAMETER_BOOL,
                                                                     bool_value=True)))
    assert not refused.successful and "fixed while configured" in refused.reason
    assert set_(_double_array("max_velocity", [0.1, 0.25, 0.0, 0.0, 0.0, 0.0])).successful

    commands = probe.collect(Twist, f"{shield.ns}/cmd_vel", node_qos.COMMAND)
    policy = probe.node.create_publisher(Twist, f"{shield.ns}/policy/cmd_vel", node_qos.COMMAND)
    fast = Twist()
    fast.linear.x, fast.angular.z = 5.0, 1.5
    probe.publish_until(policy, fast, lambda: sum(m.linear.x > 0 for _, m in commands) >= 10, 15,
                        "commands under the tightened limit")
    with probe.lock:
        assert max(m.linear.x for _, m in commands) <= 0.1 + 1e-9 and all(m.angular.z == 0 for _, m in commands)


def test_the_command_path_stops_when_its_supervisor_goes(probe, shield_process):
    shield = shield_process(supervisor="fake_manager", supervisor_timeout=0.5, rate=1.0, policy_timeout=2.0)
    ns = shield.ns
    commands = probe.collect(Twist, f"{ns}/cmd_vel", node_qos.COMMAND, source_time=True)
    states = probe.collect(ShieldState, f"{ns}/safety_shield/state", 50, source_time=True)
    policy = probe.node.create_publisher(Twist, f"{ns}/policy/cmd_vel", node_qos.COMMAND)

    def status_publisher(active=True, phase="active"):
        pub = probe.node.create_publisher(ManagerStatus, f"{ns}/fake_manager/status", node_qos.LATCHED)
        return pub, Repeater(lambda: pub.publish(ManagerStatus(active=active, phase=phase)), 0.2)

    def moving():
        return any(m.linear.x < 0 for _, m in commands)

    driver = Repeater(lambda: policy.publish(go_back()), 0.05)
    try:
        time.sleep(1.0)
        assert not moving(), "an unsupervised shield moved before its supervisor was heard"
        pub, beat = status_publisher()
        probe.wait_for(moving, 15, "commands forwarded while the supervisor is active")
        beat.stop()
        probe.node.destroy_publisher(pub)  # the manager is gone (SIGKILL looks the same to the shield)
        gone_at = time.time()
        probe.wait_for(lambda: any(t > gone_at and m.linear.x == 0 for t, m in commands), 5, "a stop")
        with probe.lock:
            stop = next(t for t, m in commands if t > gone_at and m.linear.x == 0) - gone_at
            first = next(s for t, s in states if t > gone_at and "supervisor" in s.rules)
        print(f"supervisor gone -> first zero cmd_vel {stop * 1e3:.0f} ms (supervisor_timeout 500 ms)")
        assert stop < 0.5 + 0.5, f"stopped {stop:.2f} s after the supervisor went"  # timeout + a loaded machine
        assert list(first.command) == [0.0] * 6
        time.sleep(0.5)
        with probe.lock:
            assert all(m.linear.x == 0 for t, m in commands if t > gone_at + stop)

        pub, beat = status_publisher()
        resumed_at = time.time()
        probe.wait_for(lambda: any(t > resumed_at and m.linear.x < 0 for t, m in commands), 15, "resumed")
        driver.stop()
        time.sleep(0.2)
        beat.stop()
        # The manager reports a fault: the shield stops on that message, not at its next 1 Hz tick.
        said_at = time.time()
        pub.publish(ManagerStatus(active=False, phase="stopping", reason="heartbeat lost from /policy"))
        probe.wait_for(lambda: any(t > said_at and "supervisor" in s.rules for t, s in states), 5, "a stop")
        with probe.lock:
            at = next(t for t, s in states if t > said_at and "supervisor" in s.rules) - said_at
            assert all(m.linear.x == 0 for t, m in commands if t > said_at + at)
        print(f"supervisor reports a fault -> stop state {at * 1e3:.1f} ms")
        assert at < 0.3, f"stopped {at:.2f} s after the fault was reported"
    finally:
        driver.stop()


@pytest.mark.parametrize("sig", ["SIGINT", "SIGTERM"])
def test_a_shield_stopped_by_a_signal_sends_its_stop_first(probe, shield_process, sig):
    """Ctrl-C (or a supervisor's SIGTERM) of a shield that is forwarding a command: its last command is a stop,
    sent while the node finalizes, before the ROS context goes down."""
    import signal as signals
    shield = shield_process(rate=20.0, policy_timeout=5.0)
    commands = probe.collect(Twist, f"{shield.ns}/cmd_vel", node_qos.COMMAND)
    policy = probe.node.create_publisher(Twist, f"{shield.ns}/policy/cmd_vel", node_qos.COMMAND)
    probe.publish_until(policy, go_back(), lambda: any(vec(m)[0] < 0 for _, m in commands), 20,
                        "the policy's command forwarded")
    shield.proc.send_signal(getattr(signals, sig))
    code = shield.proc.wait(15)
    assert code == 0, f"the shield exited {code} after {sig}:\n{shield.proc.stdout.read()[-3000:]}"
    probe.wait_for(lambda: commands and np.all(vec(commands[-1][1]) == 0), 5, "a zero command as the last one")
