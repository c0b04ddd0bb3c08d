"""Sim-expert lifecycle node: a sim backend's scripted expert as a command source for the safety shield.

Subscribes: sim/state (vla_interfaces/SimState, the sim robot's privileged state).
Publishes: teleop/cmd (the contract's joint command: std_msgs/Float64MultiArray or trajectory_msgs/
JointTrajectory) or teleop/cmd_vel (geometry_msgs/Twist), through the contract's codec; /diagnostics.

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
from vla_interfaces.msg import SimState
from vla_ros import node_qos
from vla_ros.convert import command_message_type, vector_to_command
from vla_ros.node_base import ManagedNode, main_for
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
            self.source = ExpertSource(p["preset"], p["expert_noise"], p["input_timeout"], p["seed"])
        except ValueError as exc:
            raise ConfigError(str(exc)) from None
        action = self.contract.action
        topic = "teleop/cmd_vel" if action.type == TWIST else "teleop/cmd"
        lp = self.create_lifecycle_publisher
        self._pubs = {"cmd": lp(command_message_type(action.type), topic, node_qos.COMMAND),
                      "diagnostics": lp(DiagnosticArray, "/diagnostics", 10)}
        self._entities = [self.create_subscription(SimState, "sim/state", self._on_state, node_qos.SENSOR_SUB)]
        self.sent = 0
        self.rejected: Counter[str] = Counter()
        self.get_logger().info(f"{p['preset']} expert -> {topic} ({action.type}) at {p['rate']:g} Hz")

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
        """enabled, expert_noise and input_timeout apply from the next command."""
        if self.source is not None:
            self.source.expert.noise_std = self.params["expert_noise"]
            self.source.timeout = self.params["input_timeout"]

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
        if self.source is None or not self.is_active or not self.params["enabled"]:
            return
        try:
            command = self.source.command(self._now())
            if command is None:
                return
            action = self.contract.action
            msg = vector_to_command(command, action.type, action.fields, action.names, 1.0 / self.params["rate"])
        except ValueError as exc:  # a state this expert cannot act on, or a command the codec refuses
            self.rejected["command"] += 1
            self.get_logger().warning(f"no command this tick: {exc}", throttle_duration_sec=5.0)
            return
        self._pubs["cmd"].publish(msg)
        self.sent += 1

    def _publish_diagnostics(self) -> None:
        dropped = sum(self.rejected.values())
        status = DiagnosticStatus(
            level=DiagnosticStatus.WARN if dropped else DiagnosticStatus.OK, name=f"{self.get_name()}: expert",
            message=f"{dropped} states or commands dropped" if dropped else "ok",
            values=[KeyValue(key=k, value=str(v)) for k, v in {"sent": self.sent, **self.rejected}.items()])
        array = DiagnosticArray(status=[status])
        array.header.stamp = self.get_clock().now().to_msg()
        self._pubs["diagnostics"].publish(array)


main = main_for(SimExpertNode)
