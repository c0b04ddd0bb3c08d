"""`vla teleop --device keyboard` in a real pseudo-terminal: keys typed there become commands on ROS."""
from __future__ import annotations

import os
import pty
import signal
import subprocess
import time
from pathlib import Path

import pytest
from diagnostic_msgs.msg import DiagnosticArray
from geometry_msgs.msg import Twist

from vla_interfaces.msg import Intervention, SimState
from vla_ros import node_qos

WS = Path(__file__).resolve().parents[1]

pytestmark = pytest.mark.ros


def test_keyboard_keys_become_commands_and_interventions(probe):
    commands = probe.collect(Twist, "/teleop/cmd_vel", node_qos.COMMAND)
    flags = probe.collect(Intervention, "/teleop/intervention", 10)
    controller, terminal = pty.openpty()
    proc = subprocess.Popen(["vla", "teleop", "--device", "keyboard", "--set", "keyboard_speed=0.05"],
                            stdin=terminal, stdout=terminal, stderr=terminal, start_new_session=True)
    os.close(terminal)
    output = b""
    try:
        deadline = time.monotonic() + 60
        while b"Ctrl-C to stop" not in output and time.monotonic() < deadline:
            output += os.read(controller, 4096)
        assert b"Ctrl-C to stop" in output, output.decode(errors="replace")
        probe.wait_for(lambda: probe.node.count_publishers("/teleop/cmd_vel") > 0, 20, "the teleop publisher")
        time.sleep(0.5)
        assert not commands, "no key pressed yet: no command"
        for _ in range(10):          # a held key: the terminal repeats it
            os.write(controller, b"w")
            time.sleep(0.1)
        probe.wait_for(lambda: commands, 5, "a command after pressing w")
        assert {round(m.linear.x, 3) for _, m in commands} == {0.05}
        assert all(abs(m.linear.y) < 1e-9 for _, m in commands)
        os.write(controller, b"a")
        probe.wait_for(lambda: round(commands[-1][1].linear.y, 3) == 0.05, 5, "a command after pressing a")
        assert any(f.active and f.device == "keyboard" for _, f in flags)
        time.sleep(1.0)              # released: within hold_time the device disengages
        assert flags[-1][1].active is False
    finally:
        proc.send_signal(signal.SIGINT)
        proc.wait(20)
        os.close(controller)


def test_a_bad_sim_state_is_dropped_and_counted_and_the_expert_carries_on(probe, vla, one_node_profile):
    """One SimState with a 1-element privileged vector used to crash the teleop node on its next tick."""
    from vla_sim.envs import TabletopPushEnv
    profile = one_node_profile("teleop", "vla_teleop", WS / "params" / "teleop.yaml",
                               "the teleop node alone (scripted expert), fed sim states by the test")
    commands = probe.collect(Twist, "/teleop/cmd_vel", node_qos.COMMAND)
    diags = probe.collect(DiagnosticArray, "/diagnostics", 10)
    up = vla("up", str(profile), "--quiet", "--set", "teleop.device=expert", "--set", "teleop.diagnostics_period=0.2")
    up.wait_line("all 1 nodes active", 90)
    pub = probe.node.create_publisher(SimState, "/sim/state", node_qos.SENSOR_PUB)
    probe.wait_for(lambda: pub.get_subscription_count() > 0, 20, "the teleop node's sim/state subscription")

    bad = [SimState(env_id="attack", privileged=[1.0]), SimState(env_id="attack", privileged=[float("nan")] * 27),
           SimState(env_id="attack", privileged=[])]
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline and int(probe.diagnostic_values(diags, "teleop: device").get("rejected", 0)) < 6:
        for msg in bad:
            pub.publish(msg)
        time.sleep(0.1)
    values = probe.diagnostic_values(diags, "teleop: device")
    assert int(values.get("rejected_sim_state_invalid", 0)) >= 4, values
    assert int(values.get("rejected_sim_state_empty", 0)) >= 2, values
    assert not commands, "a refused state produced a command"

    env = TabletopPushEnv()
    env.reset(seed=3)
    good = SimState(env_id="TabletopPush-v0", episode_index=0, privileged=env.privileged_state().tolist())
    env.close()
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline and len(commands) < 5:  # still up, and the expert acts on a good state
        pub.publish(good)
        time.sleep(0.05)
    assert len(commands) >= 5 and up.proc.poll() is None, up.output
    assert all(abs(m.linear.x) <= 0.25 + 1e-9 and abs(m.linear.y) <= 0.25 + 1e-9 for _, m in commands)
    up.interrupt()
    assert up.wait(30) == 0, up.output


def _double(name: str, value: float):
    from rcl_interfaces.msg import Parameter, ParameterType, ParameterValue
    return Parameter(name=name, value=ParameterValue(type=ParameterType.PARAMETER_DOUBLE, double_value=value))


def test_a_run_time_parameter_set_from_another_node_takes_effect_and_a_read_only_one_is_refused(
        probe, vla, one_node_profile):
    """`ros2 param set /teleop max_speed 0.1` through the real SetParameters service: the next commands follow."""
    from rcl_interfaces.srv import SetParameters
    from sensor_msgs.msg import Joy
    profile = one_node_profile("teleop", "vla_teleop", WS / "params" / "teleop.yaml",
                               "the teleop node alone (joystick), fed Joy messages by the test")
    commands = probe.collect(Twist, "/teleop/cmd_vel", node_qos.COMMAND)
    up = vla("up", str(profile), "--quiet", "--set", "teleop.device=joy", "--set", "teleop.joy_deadman_button=-1")
    up.wait_line("all 1 nodes active", 90)
    joy = probe.node.create_publisher(Joy, "/joy", node_qos.SENSOR_PUB)
    probe.wait_for(lambda: joy.get_subscription_count() > 0, 20, "the teleop node's joy subscription")
    full_forward = Joy(axes=[0.0, 1.0], buttons=[0] * 8)

    def speeds_after(t0: float, n: int) -> set:
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline:
            joy.publish(full_forward)
            time.sleep(0.05)
            with probe.lock:
                recent = [round(m.linear.x, 4) for t, m in commands if t > t0]
            if len(recent) >= n:
                return set(recent[-n:])
        raise AssertionError(f"fewer than {n} commands after the change")

    assert speeds_after(time.monotonic(), 5) == {0.25}  # params/teleop.yaml's max_speed
    client = "/teleop/set_parameters"
    result = probe.call(SetParameters, client, SetParameters.Request(parameters=[_double("max_speed", 0.1)]))
    assert result.results[0].successful, result.results[0].reason
    assert speeds_after(time.monotonic() + 0.3, 5) == {0.1}
    refused = probe.call(SetParameters, client, SetParameters.Request(parameters=[_double("max_speed", 50.0)]))
    assert not refused.results[0].successful
    refused = probe.call(SetParameters, client, SetParameters.Request(parameters=[_double("rate", 20.0)]))
    assert not refused.results[0].successful and "read-only" in refused.results[0].reason
    assert speeds_after(time.monotonic() + 0.3, 5) == {0.1}  # neither refused change applied
    up.interrupt()
    assert up.wait(30) == 0, up.output
