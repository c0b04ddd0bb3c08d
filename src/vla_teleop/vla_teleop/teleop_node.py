"""Teleop lifecycle node: publishes teleop/cmd_vel (geometry_msgs/Twist) and teleop/intervention.

Commands go to ``teleop/cmd_vel``; a bring-up profile routes that topic to the safety shield's teleop input
(or, in profiles without a shield, remaps it onto the robot's cmd_vel). ``teleop/intervention`` says, every
tick, whether the device is commanding: a person taking over from a policy is an intervention the recorder
stores frame by frame. The corrector device is a scripted operator: it takes over from the policy with the
scripted expert when the policy stops making progress (see ``vla_teleop.devices.CorrectorDevice``).
Subscribes: sim/state (expert and corrector devices), joy (joy device). The keyboard device reads this
process's terminal. Publishes /diagnostics: commands sent, inputs rejected per reason.

Every input is validated before a device uses it (a sim state the expert cannot act on, a Joy message without
the configured axes, non-finite values): it is dropped, counted per reason, and reported with a throttled
warning; the device then has no fresh input and stops commanding. A device that fails to compute a command
(or computes a non-finite one) sends nothing that tick, counted the same way.
"""
from __future__ import annotations

import os
import select
import sys
import termios
import threading
import tty
from collections import Counter

import numpy as np
from diagnostic_msgs.msg import DiagnosticArray, DiagnosticStatus, KeyValue
from sensor_msgs.msg import Joy
from vla_interfaces.msg import Intervention, SimState
from geometry_msgs.msg import Twist

from vla_core.codecs import planar_twist_fields
from vla_core.errors import ConfigError
from vla_ros import node_qos
from vla_ros.convert import array_to_twist
from vla_ros.node_base import ManagedNode, main_for
from vla_teleop.devices import (DEVICES, CorrectorDevice, ExpertDevice, KeyboardDevice, check_tabletop_state,
                                device_from_params)
from vla_teleop.teleop_params import TELEOP_PARAMS

FIELDS = planar_twist_fields(2)  # the devices command a planar base: vx, vy


class TeleopNode(ManagedNode):
    PARAMS = TELEOP_PARAMS

    def __init__(self, **kwargs):
        super().__init__("teleop", **kwargs)
        self.device = None
        self._expert = None
        self._entities: list = []
        self._timer = None
        self._keyboard_thread = None
        self._stop_keyboard = threading.Event()
        self.rejected: Counter[str] = Counter()  # inputs (and ticks) dropped, per reason
        self.last_problem = ""

    def configure(self, p: dict) -> None:
        kind = DEVICES.get(p["device"])  # the parameter's choices are the registered devices
        hooks = {}
        if kind.INPUT == "sim_state":
            from vla_sim.experts import make_expert  # the expert lives with the simulator it knows
            expert = self._expert = make_expert("tabletop", max_speed=p["max_speed"], noise_std=p["expert_noise"])
            hooks = {"policy": expert.act, "check": check_tabletop_state,
                     ("on_takeover" if kind is CorrectorDevice else "on_episode"): expert.reset}
        elif kind.INPUT == "keys" and not sys.stdin.isatty():
            raise ConfigError("the keyboard device reads keys from a terminal, and this process has none; "
                              "run 'vla teleop --device keyboard' in a terminal, or use device 'joy' or 'expert'")
        self.device = device_from_params(p["device"], p, **hooks)
        if kind.INPUT == "sim_state":
            self._entities.append(self.create_subscription(SimState, "sim/state", self._on_sim_state,
                                                           node_qos.SENSOR_SUB))
        elif kind.INPUT == "joy":
            self._entities.append(self.create_subscription(Joy, "joy", self._on_joy, node_qos.SENSOR_SUB))
        self._cmd_pub = self.create_lifecycle_publisher(Twist, "teleop/cmd_vel", node_qos.COMMAND)
        self._flag_pub = self.create_lifecycle_publisher(Intervention, "teleop/intervention", 10)
        self._diag_pub = self.create_lifecycle_publisher(DiagnosticArray, "/diagnostics", 10)
        self.sent = 0
        self._takeovers_logged = 0

    def activate(self) -> None:
        self.device.reset()
        self._timer = self.create_timer(1.0 / self.params["rate"], self._tick)
        if isinstance(self.device, KeyboardDevice):
            self._stop_keyboard.clear()
            self._keyboard_thread = threading.Thread(target=self._read_keys, daemon=True)
            self._keyboard_thread.start()
            print("teleop: w/s forward/back, a/d left/right, space stops (arrow keys work too)", file=sys.stderr)
        self.start_diagnostics()

    def deactivate(self) -> None:
        self.stop_diagnostics()
        if self._timer is not None:
            self.destroy_timer(self._timer)
            self._timer = None
        self._stop_keyboard.set()
        if self._keyboard_thread is not None:
            self._keyboard_thread.join(timeout=1.0)
            self._keyboard_thread = None

    def cleanup(self) -> None:
        for sub in self._entities:
            self.destroy_subscription(sub)
        self._entities = []
        for name in ("_cmd_pub", "_flag_pub", "_diag_pub"):
            if getattr(self, name, None) is not None:
                self.destroy_publisher(getattr(self, name))
                setattr(self, name, None)
        self.device = self._expert = None

    def on_parameters_changed(self, changed: dict) -> None:
        """Speeds, timeouts, axes and the corrector's rule apply from the next tick (``device.PARAMETERS``
        names the field each sets); the scripted expert takes max_speed and expert_noise."""
        for name, value in changed.items():
            if self.device is not None and name in self.device.PARAMETERS:
                setattr(self.device, self.device.PARAMETERS[name], value)
        if self.device is not None and changed.keys() & {"joy_axis_x", "joy_axis_y", "joy_deadman_button"}:
            self.device.reset()  # a held Joy message may not have the new axes: wait for the next one
        if self._expert is not None:
            self._expert.max_speed = self.params["max_speed"]
            self._expert.noise_std = self.params["expert_noise"]

    def on_callback_error(self, where: str, exc: Exception) -> None:
        """A bug in a callback: forget the device's state (held keys, the expert's view), so that nothing is
        commanded until fresh input arrives, as with stale input."""
        if self.device is not None:
            self.device.reset()

    # ---- inputs ---------------------------------------------------------------------------------
    def _now(self) -> float:
        # The expert and corrector follow simulated time; a person's keys and sticks follow the wall clock.
        clock = self.get_clock() if isinstance(self.device, (ExpertDevice, CorrectorDevice)) else self._steady
        return clock.now().nanoseconds * 1e-9

    def _reject(self, reason: str, problem: str) -> None:
        self.rejected[reason] += 1
        self.last_problem = problem

    def _on_sim_state(self, msg: SimState) -> None:
        if self.device is None or not self.is_active:
            return
        if not msg.privileged:
            self._reject("sim_state_empty", f"sim/state from {msg.env_id!r} carries no privileged state")
            self.get_logger().error(f"sim/state from {msg.env_id!r} carries no privileged state; the "
                                    f"{self.device.name} device needs an environment with a scripted expert "
                                    "(e.g. tabletop)", throttle_duration_sec=5.0)
            return
        try:
            self.device.observe(msg.privileged, msg.episode_index, self._now())
        except ValueError as exc:  # the check names what is wrong: size, version, non-finite, indices
            self._reject("sim_state_invalid", f"sim/state from {msg.env_id!r}: {exc}")
            self.get_logger().warning(f"sim/state from {msg.env_id!r} dropped ({self.rejected['sim_state_invalid']} "
                                      f"so far): {exc}; the {self.device.name} device needs the tabletop "
                                      "environment's state", throttle_duration_sec=5.0)

    def _on_joy(self, msg: Joy) -> None:
        if self.device is not None and self.is_active:
            problem = self.device.update(list(msg.axes), list(msg.buttons), self._now())
            if problem:
                self._reject("joy_invalid", problem)
                self.get_logger().warning(f"Joy message dropped: {problem}; check joy_axis_*/joy_deadman_button",
                                          throttle_duration_sec=2.0)

    def _read_keys(self) -> None:
        fd = sys.stdin.fileno()
        saved = termios.tcgetattr(fd)
        try:
            tty.setcbreak(fd)
            while not self._stop_keyboard.is_set():
                if select.select([fd], [], [], 0.1)[0]:
                    key = os.read(fd, 3).decode(errors="ignore")
                    self.device.press(key, self._now())
        finally:
            termios.tcsetattr(fd, termios.TCSADRAIN, saved)

    # ---- output ---------------------------------------------------------------------------------
    def _tick(self) -> None:
        if not self.is_active or self.device is None:
            return
        command = self._command()
        flag = Intervention(active=command is not None, device=self.device.name)
        flag.header.stamp = self.get_clock().now().to_msg()
        self._flag_pub.publish(flag)
        if command is not None:
            self._cmd_pub.publish(array_to_twist(command, FIELDS))
            self.sent += 1
        if isinstance(self.device, CorrectorDevice) and self.device.takeovers != self._takeovers_logged:
            self._takeovers_logged = self.device.takeovers
            self.get_logger().info(f"corrector took over: {self.device.episode_takeovers} takeover(s) this episode, "
                                   f"{self.device.takeovers} in all")

    def _command(self):
        """The device's command for this tick, or None: a device that fails, or proposes a non-finite
        command, sends nothing (the operator is not commanding; the policy or the shield's stop applies)."""
        try:
            command = self.device.command(self._now())
        except Exception as exc:  # noqa: BLE001 - a failing device must not stop the node; counted and reported
            self._reject("device_error", f"{self.device.name} device failed: {type(exc).__name__}: {exc}")
            self.get_logger().error(f"{self.device.name} device failed, no command sent: {type(exc).__name__}: "
                                    f"{exc}", throttle_duration_sec=5.0)
            return None
        if command is not None and not np.all(np.isfinite(command)):
            self._reject("command_nonfinite", f"{self.device.name} device proposed {list(command)}")
            self.get_logger().error(f"{self.device.name} device proposed the non-finite command {list(command)}; "
                                    "not sent", throttle_duration_sec=5.0)
            return None
        return command

    def _publish_diagnostics(self) -> None:
        dropped = sum(self.rejected.values())
        values = {"device": self.device.name if self.device else "none", "sent": self.sent, "rejected": dropped,
                  **{f"rejected_{k}": v for k, v in sorted(self.rejected.items())}}
        if isinstance(self.device, CorrectorDevice):
            values["takeovers"] = self.device.takeovers
        status = DiagnosticStatus(
            level=DiagnosticStatus.WARN if dropped else DiagnosticStatus.OK, name=f"{self.get_name()}: device",
            message=f"{dropped} inputs rejected; last: {self.last_problem}" if dropped else "ok",
            values=[KeyValue(key=k, value=str(v)) for k, v in values.items()])
        array = DiagnosticArray(status=[status])
        array.header.stamp = self.get_clock().now().to_msg()
        self._diag_pub.publish(array)


main = main_for(TeleopNode)
