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
