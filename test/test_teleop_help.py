"""`vla teleop --device keyboard` in a real pseudo-terminal shows the operator the policy's help request
(/policy/help, latched) when it is raised and when it clears, and teleop's diagnostics carry it."""
from __future__ import annotations

import os
import pty
import select
import signal
import subprocess
import time

import pytest
from diagnostic_msgs.msg import DiagnosticArray

from vla_interfaces.msg import HelpRequest
from vla_ros import node_qos

pytestmark = pytest.mark.ros


def read_until(fd: int, text: bytes, timeout: float, seen: bytearray) -> None:
    deadline = time.monotonic() + timeout
    while text not in seen and time.monotonic() < deadline:
        ready, _, _ = select.select([fd], [], [], 0.2)
        if ready:
            seen.extend(os.read(fd, 4096))
    assert text in seen, seen.decode(errors="replace")


def test_the_operator_terminal_shows_the_policys_help_request(probe):
    diags = probe.collect(DiagnosticArray, "/diagnostics", 10)
    helps = probe.node.create_publisher(HelpRequest, "/policy/help", node_qos.LATCHED)
    # Published before teleop starts: the latched request reaches it when it joins.
    helps.publish(HelpRequest(active=True, uncertainty=0.9, threshold=0.5, policy="act/7",
                              reason="uncertainty 0.9 > help_threshold 0.5"))
    controller, terminal = pty.openpty()
    proc = subprocess.Popen(["vla", "teleop", "--device", "keyboard"], stdin=terminal, stdout=terminal,
                            stderr=terminal, start_new_session=True)
    os.close(terminal)
    seen = bytearray()
    try:
        read_until(controller, b"Ctrl-C to stop", 60, seen)
        read_until(controller, b"*** the policy act/7 asks for help: uncertainty 0.9 > help_threshold 0.5", 20, seen)
        probe.wait_for(lambda: probe.diagnostic_values(diags, "teleop: device").get("help_requested") == "True", 10,
                       "teleop's diagnostics showing the request")
        assert "act/7" in probe.diagnostic_values(diags, "teleop: device")["help_reason"]
        # A request with a non-finite value is dropped and counted: the one in force stays.
        helps.publish(HelpRequest(active=False, uncertainty=float("nan"), threshold=0.5, policy="act/7"))
        probe.wait_for(lambda: probe.diagnostic_values(diags, "teleop: device").get(
            "rejected_help_request_nonfinite") == "1", 10, "the bad request counted")
        assert probe.diagnostic_values(diags, "teleop: device")["help_requested"] == "True"
        helps.publish(HelpRequest(active=False, uncertainty=0.1, threshold=0.5, policy="act/7",
                                  reason="uncertainty 0.1 < 0.4"))
        read_until(controller, b"help request cleared (uncertainty 0.1 < 0.4)", 20, seen)
    finally:
        proc.send_signal(signal.SIGINT)
        proc.wait(20)
        os.close(controller)


def test_the_corrector_answers_the_policys_help_request(probe, vla, one_node_profile):
    """corrector_mode on_help: the scripted corrector watches a policy that makes progress and takes over only while
    the policy asks for help (a latched /policy/help), counting the takeover as one the policy asked for."""
    from pathlib import Path

    from geometry_msgs.msg import Twist

    from vla_interfaces.msg import SimState
    from vla_sim.envs import TabletopPushEnv
    ws = Path(__file__).resolve().parents[1]
    profile = one_node_profile("teleop", "vla_teleop", ws / "params" / "teleop.yaml",
                               "the teleop node alone (scripted corrector), fed sim states by the test")
    commands = probe.collect(Twist, "/teleop/cmd_vel", node_qos.COMMAND)
    diags = probe.collect(DiagnosticArray, "/diagnostics", 10)
    up = vla("up", str(profile), "--quiet", "--set", "teleop.device=corrector", "--set",
             "teleop.corrector_mode=on_help", "--set", "teleop.corrector_patience=60.0", "--set",
             "teleop.corrector_takeover=0.5", "--set", "teleop.diagnostics_period=0.2")
    up.wait_line("all 1 nodes active", 90)
    states = probe.node.create_publisher(SimState, "/sim/state", node_qos.SENSOR_PUB)
    helps = probe.node.create_publisher(HelpRequest, "/policy/help", node_qos.LATCHED)
    probe.wait_for(lambda: states.get_subscription_count() > 0 and helps.get_subscription_count() > 0, 20,
                   "the teleop node's sim/state and policy/help subscriptions")
    env = TabletopPushEnv()
    env.reset(seed=3)
    state = SimState(env_id="TabletopPush-v0", episode_index=0, privileged=env.privileged_state().tolist())
    env.close()

    def feed(seconds: float) -> None:
        deadline = time.monotonic() + seconds
        while time.monotonic() < deadline:
            state.header.stamp = probe.node.get_clock().now().to_msg()
            states.publish(state)
            time.sleep(0.05)

    feed(1.5)
    assert not commands, "no help asked and patience not run out: the corrector only watches"
    helps.publish(HelpRequest(active=True, uncertainty=0.9, threshold=0.5, policy="act/7",
                              reason="uncertainty 0.9 > help_threshold 0.5"))
    feed(1.0)
    assert commands, "the corrector did not answer the help request"
    probe.wait_for(lambda: int(probe.diagnostic_values(diags, "teleop: device").get("help_takeovers", 0)) >= 1, 10,
                   "help_takeovers in teleop's diagnostics")
    helps.publish(HelpRequest(active=False, uncertainty=0.1, threshold=0.5, policy="act/7", reason="cleared"))
    feed(1.0)  # the takeover in force (0.5 s) ends and none follows
    quiet = time.monotonic()
    feed(1.0)
    assert not [t for t, _ in commands if t > quiet + 0.2], "the corrector kept driving after the request cleared"
    up.interrupt()
    assert up.wait(30) == 0, up.output
