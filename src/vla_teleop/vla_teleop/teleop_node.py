"""Teleop lifecycle node: publishes teleop/cmd_vel (geometry_msgs/Twist) and teleop/intervention.

Commands go to ``teleop/cmd_vel``; a bring-up profile routes that topic to the safety shield's teleop input
(or, in profiles without a shield, remaps it onto the robot's cmd_vel). ``teleop/intervention`` says, every
tick, whether the device is commanding: a person taking over from a policy is an intervention the recorder
stores frame by frame. The corrector device is a scripted operator: it takes over from the policy with the
scripted expert when the policy stops making progress (see ``vla_teleop.devices.CorrectorDevice``).
Subscribes: sim/state (expert and corrector devices), joy (joy device). The keyboard device reads this
process's terminal.
"""
from __future__ import annotations

import os
import select
import sys
import termios
import threading
import tty

from sensor_msgs.msg import Joy
from vla_interfaces.msg import Intervention, SimState
from geometry_msgs.msg import Twist

from vla_core.errors import ConfigError
from vla_ros import node_qos
from vla_ros.convert import array_to_twist
from vla_ros.node_base import ManagedNode, main_for
from vla_teleop.devices import CorrectorDevice, ExpertDevice, JoyDevice, KeyboardDevice
from vla_teleop.teleop_params import TELEOP_PARAMS

FIELDS = ("linear.x", "linear.y")


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

    def configure(self, p: dict) -> None:
        kind = p["device"]
        if kind in ("expert", "corrector"):
            from vla_sim.expert import ScriptedExpert  # the expert lives with the simulator it knows
            expert = self._expert = ScriptedExpert(max_speed=p["max_speed"], noise_std=p["expert_noise"])
            if kind == "expert":
                self.device = ExpertDevice(policy=expert.act, on_episode=expert.reset,
                                           state_timeout=p["input_timeout"])
            else:
                self.device = CorrectorDevice(
                    policy=expert.act, on_takeover=expert.reset, state_timeout=p["input_timeout"],
                    patience=p["corrector_patience"], takeover=p["corrector_takeover"],
                    min_progress=p["corrector_min_progress"], max_takeovers=p["corrector_max_takeovers"],
                    mode=p["corrector_mode"])
            self._entities.append(self.create_subscription(SimState, "sim/state", self._on_sim_state,
                                                           node_qos.SENSOR_SUB))
        elif kind == "joy":
            self.device = JoyDevice(max_speed=p["max_speed"], axis_x=p["joy_axis_x"], axis_y=p["joy_axis_y"],
                                    deadman_button=p["joy_deadman_button"], timeout=p["input_timeout"])
            self._entities.append(self.create_subscription(Joy, "joy", self._on_joy, node_qos.SENSOR_SUB))
        else:
            if not sys.stdin.isatty():
                raise ConfigError("the keyboard device reads keys from a terminal, and this process has none; "
                                  "run 'vla teleop --device keyboard' in a terminal, or use device 'joy' or 'expert'")
            self.device = KeyboardDevice(speed=p["keyboard_speed"], hold_time=p["keyboard_hold_time"])
        self._cmd_pub = self.create_lifecycle_publisher(Twist, "teleop/cmd_vel", node_qos.COMMAND)
        self._flag_pub = self.create_lifecycle_publisher(Intervention, "teleop/intervention", 10)
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

    def deactivate(self) -> None:
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
        for name in ("_cmd_pub", "_flag_pub"):
            if getattr(self, name, None) is not None:
                self.destroy_publisher(getattr(self, name))
                setattr(self, name, None)
        self.device = self._expert = None

    # ---- inputs ---------------------------------------------------------------------------------
    def _now(self) -> float:
        # The expert and corrector follow simulated time; a person's keys and sticks follow the wall clock.
        clock = self.get_clock() if isinstance(self.device, (ExpertDevice, CorrectorDevice)) else self._steady
        return clock.now().nanoseconds * 1e-9

    def _on_sim_state(self, msg: SimState) -> None:
        if self.device is not None and self.is_active:
            if not msg.privileged:
                self.get_logger().error(f"sim/state from {msg.env_id} carries no privileged state; the "
                                        f"{self.device.name} device needs an environment with a scripted expert "
                                        "(e.g. tabletop)", throttle_duration_sec=5.0)
                return
            try:
                self.device.observe(msg.privileged, msg.episode_index, self._now())
            except ValueError as exc:  # the corrector reads the state itself: not a tabletop state
                self.get_logger().error(f"sim/state from {msg.env_id} dropped: {exc}; the {self.device.name} "
                                        "device needs the tabletop environment", throttle_duration_sec=5.0)

    def _on_joy(self, msg: Joy) -> None:
        if self.device is not None and self.is_active:
            problem = self.device.update(list(msg.axes), list(msg.buttons), self._now())
            if problem:
                self.get_logger().warn(f"Joy message dropped: {problem}; check joy_axis_*/joy_deadman_button",
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
        if isinstance(self.device, CorrectorDevice):  # a run-time parameter: demonstrations, corrections, watching
            self.device.mode = self.get_parameter("corrector_mode").value
        if self._expert is not None:  # run-time too: noisy demonstrations, clean corrections
            self._expert.noise_std = self.get_parameter("expert_noise").value
        command = self.device.command(self._now())
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


main = main_for(TeleopNode)
