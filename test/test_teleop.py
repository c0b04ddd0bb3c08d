"""`vla teleop --device keyboard` in a real pseudo-terminal: keys typed there become commands on ROS."""
from __future__ import annotations

import os
import pty
import signal
import subprocess
import time

import pytest
from geometry_msgs.msg import Twist

from vla_interfaces.msg import Intervention
from vla_ros import node_qos

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
