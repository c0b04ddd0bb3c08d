"""Teleop lifecycle node: publishes teleop/cmd_vel (geometry_msgs/Twist) or teleop/cmd (an arm's joint command)
and teleop/intervention.

The planar devices (expert, corrector, keyboard, joy) send a Twist on ``teleop/cmd_vel``; a bring-up profile routes
that topic to the safety shield's teleop input (or, in profiles without a shield, remaps it onto the robot's
cmd_vel). The arm devices (arm_keyboard and arm_joy: end-effector jog through the arm's kinematics; leader_arm:
a leader arm's joint_states mirrored) send the robot contract's joint command (``contract``: its message type,
``action.mode`` and limits, through the contract codec) on ``teleop/cmd``, the shield's joint teleop input.

``teleop/intervention`` says, every tick, whether the device is commanding: a person taking over from a policy is an intervention the recorder
stores frame by frame. The corrector device is a scripted operator: it takes over from the policy with the
scripted expert when the policy stops making progress (see ``vla_teleop.devices.CorrectorDevice``).
Subscribes: sim/state (expert and corrector devices), joy (joy and arm_joy devices), the contract's joint_states
(jog devices; leader_arm in delta mode), ``leader_topic`` (leader_arm), policy/help (vla_interfaces/HelpRequest:
the policy asking for help, logged, printed on the keyboard devices' terminal and in /diagnostics). The keyboard
devices read this process's terminal. Publishes /diagnostics: commands sent, inputs rejected per reason, joint values clipped to the
contract's limits per joint.

A leader arm is checked at configure: the node waits ``leader_wait`` s for its first joint_states, and a leader
whose joint names do not match the follower's contract fails configure with the missing and extra names.

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
import time
import tty
from collections import Counter

import numpy as np
from diagnostic_msgs.msg import DiagnosticArray, DiagnosticStatus, KeyValue
from sensor_msgs.msg import JointState, Joy
from vla_interfaces.msg import HelpRequest, Intervention, SimState
from geometry_msgs.msg import Twist

from vla_core.codecs import TWIST, planar_twist_fields
from vla_core.contract import RobotContract
from vla_core.errors import ConfigError
from vla_core.paths import workspace_path
from vla_ros import node_qos
from vla_ros.convert import (array_to_twist, command_message_type, joint_state_vector, time_to_seconds,
                             vector_to_command)
from vla_ros.node_base import ManagedNode, main_for
from vla_ros.input_wait import InputWait
from vla_teleop.arm_jog import EndEffectorJog
from vla_core.kinematics import ArmModel  # MuJoCo loads when an ArmModel is built, for the jog only
from vla_teleop.devices import DEVICES, CorrectorDevice, ExpertDevice, check_tabletop_state, device_from_params
from vla_teleop.joint_commands import JointLimits
from vla_teleop.leader_arm import LeaderMapping, LeaderMismatch
from vla_teleop.teleop_params import TELEOP_PARAMS

FIELDS = planar_twist_fields(2)  # the planar devices command a base: vx, vy
PLANAR_KEYS_HELP = "teleop: w/s forward/back, a/d left/right, space stops (arrow keys work too)"


class TeleopNode(ManagedNode):
    PARAMS = TELEOP_PARAMS

    def __init__(self, **kwargs):
        super().__init__("teleop", **kwargs)
        self.device = None
        self.contract = None
        self._expert = None
        self._entities: list = []
        self._input_wait: InputWait | None = None  # a scripted device waits for the sim/state of its tick
        self._timer = None
        self._keyboard_thread = None
        self._stop_keyboard = threading.Event()
        self.rejected: Counter[str] = Counter()  # inputs (and ticks) dropped, per reason
        self.last_problem = ""

    def configure(self, p: dict) -> None:
        kind = DEVICES.get(p["device"])  # the parameter's choices are the registered devices
        self.contract = self._load_contract(p, kind)
        hooks = {}
        if kind.INPUT == "sim_state":
            from vla_sim.experts import make_expert  # the expert lives with the simulator it knows
            expert = self._expert = make_expert("tabletop", max_speed=p["max_speed"], noise_std=p["expert_noise"])
            hooks = {"policy": expert.act, "check": check_tabletop_state,
                     ("on_takeover" if kind is CorrectorDevice else "on_episode"): expert.reset}
        elif kind.INPUT == "keys" and not sys.stdin.isatty():
            raise ConfigError(f"the {kind.name} device reads keys from a terminal, and this process has none; "
                              f"run 'vla teleop --device {kind.name}' in a terminal, or use a joy or scripted device")
        if kind.COMMANDS_JOINTS:
            hooks = self._arm_hooks(p, kind)
        try:
            self.device = device_from_params(p["device"], p, **hooks)
        except ValueError as exc:  # a device's own check of its parameters (e.g. arm_joy's axes)
            raise ConfigError(str(exc)) from None
        if kind.INPUT == "sim_state":
            self._entities.append(self.create_subscription(SimState, "sim/state", self._on_sim_state,
                                                           node_qos.SENSOR_SUB))
        elif kind.INPUT == "joy":
            self._entities.append(self.create_subscription(Joy, "joy", self._on_joy, node_qos.SENSOR_SUB))
        elif kind.INPUT == "leader":
            self._entities.append(self.create_subscription(JointState, p["leader_topic"], self._on_leader,
                                                           node_qos.SENSOR_SUB))
        if self.device.needs_joint_states():
            self._entities.append(self.create_subscription(JointState, self.contract.state.topic,
                                                           self._on_joint_states, node_qos.SENSOR_SUB))
        if kind.COMMANDS_JOINTS:
            action = self.contract.action
            self._cmd_pub = self.create_lifecycle_publisher(command_message_type(action.type), "teleop/cmd",
                                                            node_qos.COMMAND)
            self.get_logger().info(f"{kind.name} -> teleop/cmd ({action.type}, {action.mode} joint commands to "
                                   f"{list(action.names)})")
        else:
            self._cmd_pub = self.create_lifecycle_publisher(Twist, "teleop/cmd_vel", node_qos.COMMAND)
        self._flag_pub = self.create_lifecycle_publisher(Intervention, "teleop/intervention", 10)
        # The policy's help request (latched): shown to the operator, in this terminal for a keyboard.
        self.help_request: HelpRequest | None = None
        self._entities.append(self.create_subscription(HelpRequest, "policy/help", self._on_help, node_qos.LATCHED))
        self._diag_pub = self.create_lifecycle_publisher(DiagnosticArray, "/diagnostics", 10)
        self.sent = 0
        self._takeovers_logged = 0

    def _load_contract(self, p: dict, kind) -> RobotContract | None:
        """The robot contract, checked against the device: the arm devices need one whose action is a joint
        command; the planar devices send a Twist."""
        if not p["contract"]:
            if kind.COMMANDS_JOINTS:
                raise ConfigError(f"the {kind.name} device sends the robot contract's joint command: set contract "
                                  "(e.g. params/robots/sim_arm.yaml)")
            return None
        contract = RobotContract.from_yaml(workspace_path(p["contract"]))
        action = contract.action
        if kind.COMMANDS_JOINTS and action.type == TWIST:
            raise ConfigError(f"the {kind.name} device sends joint commands, but the contract {p['contract']} "
                              f"commands a {TWIST}; use device keyboard or joy for a base")
        if not kind.COMMANDS_JOINTS and action.type != TWIST:
            raise ConfigError(f"the {kind.name} device commands a planar base ({TWIST}), but the contract "
                              f"{p['contract']} commands {action.type}; use device arm_keyboard, arm_joy or "
                              "leader_arm for an arm")
        return contract

    def _arm_hooks(self, p: dict, kind) -> dict:
        """What an arm device is built on: the contract's limits and mode, and the arm's kinematics (jog) or the
        leader's joint mapping, checked against the leader's first joint_states (leader_arm)."""
        action, state = self.contract.action, self.contract.state
        limits = JointLimits.from_action(action)
        needs_state = kind.INPUT != "leader" or action.mode == "delta"
        unmeasured = [n for n in action.names if n not in state.joints]
        if needs_state and unmeasured:
            raise ConfigError(f"the {kind.name} device reads the follower's joint positions from {state.topic}, "
                              f"but the contract's state lacks the action's joints {unmeasured}; name the action "
                              "after the joints (action.names)")
        if kind.INPUT == "leader":
            try:
                mapping = LeaderMapping.parse(action.names, p["leader_joint_map"])
            except ValueError as exc:
                raise ConfigError(str(exc)) from None
            self._check_leader(mapping, p["leader_topic"], p["leader_wait"])
            return {"mapping": mapping, "limits": limits}
        gripper = p["gripper_joint"]
        if gripper and gripper not in action.names:
            raise ConfigError(f"gripper_joint {gripper!r} is not one of the contract's action names "
                              f"{list(action.names)}; name it, or leave it empty for none")
        if not p["arm_model"] or not p["arm_link"]:
            raise ConfigError(f"the {kind.name} device jogs the end effector through the arm's kinematics: set "
                              "arm_model (the robot's URDF or MJCF) and arm_link (its end effector's site or body)")
        try:
            model = ArmModel(workspace_path(p["arm_model"]), p["arm_link"], action.names,
                             exclude=(gripper,) if gripper else ())
            jog = EndEffectorJog(model, limits, 1.0 / p["rate"], action.names.index(gripper) if gripper else None)
        except ValueError as exc:
            raise ConfigError(str(exc)) from None
        self.get_logger().info(f"jog: {p['arm_link']} of {p['arm_model']} over {list(model.joints)}"
                               + (f", gripper {gripper}" if gripper else ""))
        return {"jog": jog}

    def _check_leader(self, mapping: LeaderMapping, topic: str, wait: float) -> None:
        """Wait up to ``wait`` s for the leader's joint_states and check its joint names against the follower's."""
        from rclpy.wait_for_message import wait_for_message
        name = self.resolve_topic_name(topic)
        deadline = time.monotonic() + wait
        ok, msg = False, None
        # configure runs on this node's executor thread, so nothing else takes the message; should another
        # executor thread take it first, wait_for_message returns early without one: wait again until the deadline.
        while not ok and (left := deadline - time.monotonic()) > 0:
            ok, msg = wait_for_message(JointState, self, topic, qos_profile=node_qos.SENSOR_SUB, time_to_wait=left)
        if not ok:
            raise ConfigError(f"no leader joint_states on {name} within {wait:g} s; start the leader arm's driver "
                              "first, set leader_topic, or raise leader_wait")
        try:
            mapping.order(list(msg.name))
        except LeaderMismatch as exc:
            raise ConfigError(f"leader on {name}: {exc}") from None
        self.get_logger().info(f"leader on {name}: joints {list(msg.name)} mirror onto {list(mapping.follower)}")

    def activate(self) -> None:
        self.device.reset()
        self._state_stamp, self._tick_time = -float("inf"), -float("inf")
        self._timer = self.create_timer(1.0 / self.params["rate"], self._on_timer)
        self._input_wait = InputWait(self, self._tick, self._state_is_fresh, lambda: self.params["input_wait"])
        if self.device.INPUT == "keys":
            self._stop_keyboard.clear()
            self._keyboard_thread = threading.Thread(target=self._read_keys, daemon=True)
            self._keyboard_thread.start()
            print(getattr(self.device, "HELP", PLANAR_KEYS_HELP), file=sys.stderr)
        self.start_diagnostics()

    def deactivate(self) -> None:
        self.stop_diagnostics()
        self._timer = self.drop_timer(self._timer)
        if self._input_wait is not None:
            self._input_wait.destroy()
            self._input_wait = None
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
        self.device = self._expert = self.contract = None

    def on_parameters_changed(self, changed: dict) -> None:
        """Speeds, timeouts, axes and the corrector's rule apply from the next tick (``device.PARAMETERS``
        names the field each sets); the scripted expert takes max_speed and expert_noise."""
        for name, value in changed.items():
            if self.device is not None and name in self.device.PARAMETERS:
                setattr(self.device, self.device.PARAMETERS[name], value)
        if self.device is not None and changed.keys() & {"arm_joy_axes", "arm_joy_gripper_buttons"}:
            self.device.check_mapping()  # ValueError: the change is refused and undone
        if self.device is not None and changed.keys() & {"joy_axis_x", "joy_axis_y", "joy_deadman_button",
                                                         "arm_joy_axes", "arm_joy_gripper_buttons"}:
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
            self._state_stamp = max(self._state_stamp, time_to_seconds(msg.header.stamp))
        except ValueError as exc:  # the check names what is wrong: size, version, non-finite, indices
            self._reject("sim_state_invalid", f"sim/state from {msg.env_id!r}: {exc}")
            self.get_logger().warning(f"sim/state from {msg.env_id!r} dropped ({self.rejected['sim_state_invalid']} "
                                      f"so far): {exc}; the {self.device.name} device needs the tabletop "
                                      "environment's state", throttle_duration_sec=5.0)
        if self._input_wait is not None:
            self._input_wait.arrived()  # the state of the waiting tick's instant: command from it now

    def _on_help(self, msg: HelpRequest) -> None:
        if not (np.isfinite(msg.uncertainty) and np.isfinite(msg.threshold)):
            self._reject("help_request_nonfinite", f"help request with uncertainty {msg.uncertainty}, threshold "
                                                   f"{msg.threshold}")
            return
        was = self.help_request is not None and self.help_request.active
        self.help_request = msg
        if hasattr(self.device, "help_requested"):  # the scripted corrector answers it (corrector_mode on_help)
            self.device.help_requested = bool(msg.active)
        if msg.active == was:
            return
        text = (f"the policy {msg.policy[:100]} asks for help: {msg.reason[:300]}; take over to help it" if msg.active
                else f"the policy's help request cleared ({msg.reason[:300]})")
        if msg.active:  # two call sites: rclpy fixes a call site's severity at its first call
            self.get_logger().warning(text)
        else:
            self.get_logger().info(text)
        if self.device is not None and self.device.INPUT == "keys":  # the operator's terminal
            print(("*** " if msg.active else "") + text, file=sys.stderr, flush=True)

    def _on_joy(self, msg: Joy) -> None:
        if self.device is not None and self.is_active:
            problem = self.device.update(list(msg.axes), list(msg.buttons), self._now())
            if problem:
                self._reject("joy_invalid", problem)
                self.get_logger().warning(f"Joy message dropped: {problem}; check the {self.device.name} device's "
                                          "axis and button parameters", throttle_duration_sec=2.0)

    def _on_leader(self, msg: JointState) -> None:
        if self.device is None or not self.is_active:
            return
        try:
            self.device.observe_leader(list(msg.name), list(msg.position), self._now())
        except LeaderMismatch as exc:
            self._reject("leader_joint_names", str(exc))
            self.throttled_warning("leader_names", f"leader joint_states dropped: {exc}", 5.0)
        except ValueError as exc:
            self._reject("leader_invalid", str(exc))
            self.throttled_warning("leader_invalid", f"leader joint_states dropped: {exc}", 5.0)

    def _on_joint_states(self, msg: JointState) -> None:
        if self.device is None or not self.is_active:
            return
        try:
            positions = joint_state_vector(msg, self.contract.action.names, ("position",))
            self.device.observe_joints(positions, self._now())
        except ValueError as exc:  # StateError: a joint missing; a non-finite position
            self._reject("joint_states_invalid", str(exc))
            self.throttled_warning("joint_states", f"joint_states dropped: {exc}", 5.0)

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
    def _on_timer(self) -> None:
        """A tick; a scripted device with input_wait first waits for the sim/state of the tick's instant."""
        if not self._input_wait.waiting:  # a tick that comes while one waits merges into it
            self._tick_time = self._now()
        self._input_wait.tick()

    def _state_is_fresh(self) -> bool:
        """A scripted device has the sim/state of the tick's instant (other devices wait for nothing)."""
        return (not isinstance(self.device, (ExpertDevice, CorrectorDevice))
                or self._state_stamp >= self._tick_time - 1e-6)

    def _tick(self) -> None:
        if not self.is_active or self.device is None:
            return
        command = self._command()
        flag = Intervention(active=command is not None, device=self.device.name)
        flag.header.stamp = self.get_clock().now().to_msg()
        self._flag_pub.publish(flag)
        if command is not None:
            if self.device.COMMANDS_JOINTS:
                a = self.contract.action
                self._cmd_pub.publish(vector_to_command(command, a.type, a.fields, a.names, 1.0 / self.params["rate"]))
            else:
                self._cmd_pub.publish(array_to_twist(command, FIELDS))
            self.sent += 1
        if isinstance(self.device, CorrectorDevice) and self.device.takeovers != self._takeovers_logged:
            self._takeovers_logged = self.device.takeovers
            self.get_logger().info(f"corrector took over: {self.device.episode_takeovers} takeover(s) this episode, "
                                   f"{self.device.takeovers} in all ({self.device.help_takeovers} asked for by the "
                                   "policy)")

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
            values["help_takeovers"] = self.device.help_takeovers  # of them, asked for by the policy
        help_request = getattr(self, "help_request", None)
        values["help_requested"] = bool(help_request and help_request.active)
        if help_request is not None and help_request.active:
            values["help_reason"] = f"{help_request.policy}: {help_request.reason}"
        limits = getattr(self.device, "limits", None)
        if limits is not None:  # joint values clipped to the contract's limits, counted per joint
            values["clipped"] = limits.commands_clipped
            values.update({f"clipped_{k}": v for k, v in sorted(limits.clipped.items())})
        status = DiagnosticStatus(
            level=DiagnosticStatus.WARN if dropped else DiagnosticStatus.OK, name=f"{self.get_name()}: device",
            message=f"{dropped} inputs rejected; last: {self.last_problem}" if dropped else "ok",
            values=[KeyValue(key=k, value=str(v)) for k, v in values.items()])
        array = DiagnosticArray(status=[status])
        array.header.stamp = self.get_clock().now().to_msg()
        self._diag_pub.publish(array)


main = main_for(TeleopNode)
