"""Sim-expert lifecycle node: a sim backend's scripted expert as a command source for the safety shield.

Subscribes: sim/state (vla_interfaces/SimState, the sim robot's privileged state).
Publishes: teleop/cmd (the contract's joint command: std_msgs/Float64MultiArray or trajectory_msgs/
JointTrajectory) or teleop/cmd_vel (geometry_msgs/Twist), through the contract's codec; teleop/intervention
(vla_interfaces/Intervention, every tick while active: whether the expert commanded, as the teleop node flags its
devices, so that the recorder marks the frames it drove); /diagnostics.

``mode`` always: the expert drives every tick (demonstrations); on_error: the policy drives, and the expert takes
over when the task makes no progress (:class:`vla_sim.corrector.TakeoverRule`, the continual loop's corrector).

The core is :class:`vla_sim.expert_source.ExpertSource`; this node converts messages and owns the timer, which
follows the ROS clock (simulated time under use_sim_time). Without a fresh state it sends nothing, and the
shield's watchdog holds the robot. INACTIVE never publishes a command.
"""
from __future__ import annotations

from collections import Counter

from diagnostic_msgs.msg import DiagnosticArray, DiagnosticStatus, KeyValue

from vla_core.codecs import TWIST
from vla_core.contract import RobotContract
from vla_core.errors import ConfigError
from vla_core.paths import workspace_path
from vla_interfaces.msg import Intervention, SimState
from vla_ros import node_qos
from vla_ros.convert import command_message_type, vector_to_command
from vla_ros.node_base import ManagedNode, main_for
from vla_sim.corrector import PROGRESS, TakeoverRule
from vla_sim.expert_source import ExpertSource
from vla_sim.sim_expert_params import SIM_EXPERT_PARAMS


class SimExpertNode(ManagedNode):
    PARAMS = SIM_EXPERT_PARAMS

    def __init__(self, **kwargs):
        super().__init__("sim_expert", **kwargs)
        self.source = None
        self.contract = None
        self._timer = None
        self._entities: list = []
        self._pubs: dict = {}

    def configure(self, p: dict) -> None:
        if not p["contract"]:
            raise ConfigError("contract is empty; name the robot contract whose commands the expert sends "
                              "(e.g. params/robots/sim_arm.yaml)")
        self.contract = RobotContract.from_yaml(workspace_path(p["contract"]))
        try:
            self.source = ExpertSource(p["preset"], p["expert_noise"], p["input_timeout"], p["seed"],
                                       rule=self._rule(p))
        except ValueError as exc:
            raise ConfigError(str(exc)) from None
        action = self.contract.action
        topic = "teleop/cmd_vel" if action.type == TWIST else "teleop/cmd"
        lp = self.create_lifecycle_publisher
        self._pubs = {"cmd": lp(command_message_type(action.type), topic, node_qos.COMMAND),
                      "intervention": lp(Intervention, "teleop/intervention", 10),
                      "diagnostics": lp(DiagnosticArray, "/diagnostics", 10)}
        self._entities = [self.create_subscription(SimState, "sim/state", self._on_state, node_qos.SENSOR_SUB)]
        self.sent = 0
        self._takeovers_logged = 0
        self.rejected: Counter[str] = Counter()
        self.get_logger().info(f"{p['preset']} expert -> {topic} ({action.type}) at {p['rate']:g} Hz, mode "
                               f"{p['mode']}")

    @staticmethod
    def _rule(p: dict) -> TakeoverRule | None:
        """The corrector's rule from the parameters; None for a preset whose task has no progress measure (its
        expert can only drive always)."""
        from vla_sim.backends import PRESETS
        if PRESETS.get(p["preset"], {}).get("expert") not in PROGRESS:
            if p["mode"] != "always":
                raise ConfigError(_no_corrector(p))
            return None
        return TakeoverRule(patience=p["corrector_patience"], takeover=p["corrector_takeover"],
                            min_progress=p["corrector_min_progress"], max_takeovers=p["corrector_max_takeovers"],
                            mode=p["mode"] if p["enabled"] else "off")

    def activate(self) -> None:
        self.source.reset()
        self._timer = self.create_timer(1.0 / self.params["rate"], self._tick)
        self.start_diagnostics()

    def deactivate(self) -> None:
        self.stop_diagnostics()
        self._timer = self.drop_timer(self._timer)

    def cleanup(self) -> None:
        for pub in self._pubs.values():
            self.destroy_publisher(pub)
        for sub in self._entities:
            self.destroy_subscription(sub)
        self._pubs, self._entities, self.source = {}, [], None

    def on_parameters_changed(self, changed: dict) -> None:
        """enabled, mode, the corrector's rule, expert_noise and input_timeout apply from the next command."""
        if self.source is None:
            return
        p = self.params
        rule = self.source.rule
        if rule is None and p["mode"] != "always":
            raise ValueError(_no_corrector(p))
        self.source.expert.noise_std = p["expert_noise"]
        self.source.timeout = p["input_timeout"]
        if rule is not None:
            rule.patience, rule.takeover = p["corrector_patience"], p["corrector_takeover"]
            rule.min_progress, rule.max_takeovers = p["corrector_min_progress"], p["corrector_max_takeovers"]
            rule.mode = p["mode"] if p["enabled"] else "off"  # disabled, it only watches: no takeover counted

    def _now(self) -> float:
        return self.get_clock().now().nanoseconds * 1e-9

    def _on_state(self, msg: SimState) -> None:
        if self.source is None or not self.is_active:
            return
        try:
            self.source.observe(msg.privileged, msg.episode_index, self._now())
        except ValueError as exc:
            self.rejected["state"] += 1
            self.get_logger().warning(f"sim/state dropped: {exc}", throttle_duration_sec=5.0)

    def _tick(self) -> None:
        if self.source is None or not self.is_active:
            return
        sent = self.params["enabled"] and self._command()
        flag = Intervention(active=bool(sent), device="sim_expert")
        flag.header.stamp = self.get_clock().now().to_msg()
        self._pubs["intervention"].publish(flag)
        rule = self.source.rule
        if rule is not None and rule.takeovers != self._takeovers_logged:
            self._takeovers_logged = rule.takeovers
            self.get_logger().info(f"corrector took over: {rule.episode_takeovers} takeover(s) this episode, "
                                   f"{rule.takeovers} in all")

    def _command(self) -> bool:
        """Send the expert's command for this tick; False when it sends none."""
        try:
            command = self.source.command(self._now())
            if command is None:
                return False
            action = self.contract.action
            msg = vector_to_command(command, action.type, action.fields, action.names, 1.0 / self.params["rate"])
        except ValueError as exc:  # a state this expert cannot act on, or a command the codec refuses
            self.rejected["command"] += 1
            self.get_logger().warning(f"no command this tick: {exc}", throttle_duration_sec=5.0)
            return False
        self._pubs["cmd"].publish(msg)
        self.sent += 1
        return True

    def _publish_diagnostics(self) -> None:
        dropped = sum(self.rejected.values())
        status = DiagnosticStatus(
            level=DiagnosticStatus.WARN if dropped else DiagnosticStatus.OK, name=f"{self.get_name()}: expert",
            message=f"{dropped} states or commands dropped" if dropped else "ok",
            values=[KeyValue(key=k, value=str(v)) for k, v in {
                "sent": self.sent, "mode": self.params["mode"],
                "takeovers": 0 if self.source.rule is None else self.source.rule.takeovers, **self.rejected}.items()])
        array = DiagnosticArray(status=[status])
        array.header.stamp = self.get_clock().now().to_msg()
        self._pubs["diagnostics"].publish(array)


def _no_corrector(p: dict) -> str:
    return (f"mode {p['mode']}: the {p['preset']} preset's task has no progress measure, so no corrector "
            f"(vla_sim.corrector.PROGRESS has {sorted(PROGRESS)}); use mode always")


main = main_for(SimExpertNode)
