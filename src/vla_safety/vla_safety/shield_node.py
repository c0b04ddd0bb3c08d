"""Safety-shield lifecycle node: the only path from command sources to the actuators.

Subscribes: teleop/cmd_vel and policy/cmd_vel (geometry_msgs/Twist) for command_type twist, or teleop/cmd and
policy/cmd for joint commands (std_msgs/Float64MultiArray, or trajectory_msgs/JointTrajectory where the contract's
action says so: read by joint name, every point checked on arrival; one point is the command, several (an action
chunk) become the command point by point as each falls due, vla_safety.trajectory; a trajectory to other joints,
or with a bad point, is rejected whole); safety/estop (std_msgs/Bool, True = stop);
safety/lock/<name> (std_msgs/Bool); joint_states (joint commands, workspace box); the scan / point-cloud
topics the parameters name (collision zones); <supervisor>/status (vla_interfaces/ManagerStatus) when a
supervisor is named; policy/help (vla_interfaces/HelpRequest, latched: while the policy asks for help its commands
are scaled by help_scale, or held at 0).
Publishes: cmd_vel (Twist) or cmd (the contract's message: Float64MultiArray, or a one-point JointTrajectory whose
time_from_start is one control period), what the robot gets; ~/state (vla_interfaces/
ShieldState) every step; ~/intervention (vla_interfaces/Intervention: an operator overriding a running
policy); /diagnostics; ~/markers (visualization_msgs/MarkerArray: zones, workspace box, a state colour).
Services: ~/estop and ~/reset (std_srvs/Trigger).

The filter is :class:`vla_safety.shield.Shield`; this node converts messages and owns the timers. It steps on
every command received (no added latency, so a simulation faster than real time is followed at its own
pace), on every e-stop and supervisor message (a stop goes out on that same step), and on a timer at
``rate`` on the steady clock. INACTIVE never publishes a command.

Clocks, and why this is safe in simulation and on a robot: every input is stamped with both the steady
clock and the node clock (:mod:`vla_safety.clock`), and counts as fresh only while it is fresh on both. The
steady clock cannot be moved from the network, so a command source that goes silent is stale within its
timeout in real seconds whatever /clock says, and the steady timer keeps stepping while /clock is frozen,
stretched or flooded. The node clock (simulated time under use_sim_time) keeps the timeouts and rate limits
in simulated seconds when the sim runs faster than real time; a second /clock publisher (a replayed bag) can
only make inputs stale, and a clock that goes back or leaps ahead is a clock jump that stops the robot. On a
robot (no use_sim_time) both clocks run at the same rate and the steady one guards against system-clock steps.

Limits: the robot contract (``contract``) declares hard limits, read once at configure; the limit
parameters tune inside them, and a change that would exceed them (or loosen a timeout, the workspace box or
jerk beyond the configured value) is refused with the reason.
"""
from __future__ import annotations

import time

import numpy as np
from diagnostic_msgs.msg import DiagnosticArray, DiagnosticStatus, KeyValue
from geometry_msgs.msg import Twist
from sensor_msgs.msg import JointState, LaserScan, PointCloud2
from std_msgs.msg import Bool, Float64MultiArray
from std_srvs.srv import Trigger
from visualization_msgs.msg import MarkerArray

from vla_core.codecs import FLOAT64_ARRAY, JOINT_TRAJECTORY, CommandError, StateError, finite_state
from vla_core.contract import RobotContract
from vla_core.paths import workspace_path
from vla_interfaces.msg import HelpRequest, Intervention, ManagerStatus, ShieldState
from vla_ros import node_qos
from vla_ros.convert import (array_to_joint_trajectory, array_to_twist, command_message_type, joint_state_vector,
                             joint_trajectory_chunk, time_to_seconds, twist_to_array)
from vla_ros.node_base import ManagedNode, main_for
from vla_safety.clock import Instant
from vla_safety.config import config_from_params, loosened
from vla_safety.hard_limits import hard_limits
from vla_safety.limits import TWIST_FIELDS
from vla_safety.markers import shield_markers
from vla_safety.shield import POLICY, TELEOP, Shield
from vla_safety.shield_params import SHIELD_PARAMS
from vla_safety.trajectory import TrajectoryFollower
from vla_safety.zones import cloud_points, cloud_xyz, scan_points


def joint_positions(msg: JointState, joints) -> np.ndarray:
    """The positions of ``joints`` (float64, in that order) through the robot contract's JointState codec;
    raises StateError for a missing joint or position, a malformed message or a non-finite value."""
    return finite_state(joint_state_vector(msg, joints, ("position",)), np.float64)


class SafetyShieldNode(ManagedNode):
    PARAMS = SHIELD_PARAMS
    FIXED_WHILE_CONFIGURED = {"use_sim_time": "use_sim_time decides which clock the shield's timeouts follow; it "
                                              "is fixed while configured (set it at start-up)"}

    def __init__(self, **kwargs):
        super().__init__("safety_shield", **kwargs)
        self.shield = None
        self.hard = None
        self._timer = None
        self._pubs: dict = {}
        self._entities: list = []

    # ---- lifecycle ------------------------------------------------------------------------------
    def configure(self, p: dict) -> None:
        contract = RobotContract.from_yaml(workspace_path(p["contract"]))
        self.hard = hard_limits(contract, p["command_type"])
        self.shield = Shield(config_from_params(p, self.hard))
        self._configured = self.shield.config
        self._trajectories = TrajectoryFollower()  # multi-point trajectories (a policy's chunk), point by point
        twist = p["command_type"] == "twist"
        # Joint commands travel as the contract says: Float64MultiArray or JointTrajectory.
        self._message = FLOAT64_ARRAY if twist else contract.action.type
        msg_type, suffix = (Twist, "cmd_vel") if twist else (command_message_type(self._message), "cmd")
        lp = self.create_lifecycle_publisher
        self._pubs = {
            "cmd": lp(msg_type, suffix, node_qos.COMMAND),
            "state": lp(ShieldState, "~/state", 10),
            "intervention": lp(Intervention, "~/intervention", 10),
            "diagnostics": lp(DiagnosticArray, "/diagnostics", 10),
            "markers": lp(MarkerArray, "~/markers", node_qos.LATCHED),
        }
        sub = self.create_subscription
        cb = self._on_twist if twist else (self._on_trajectory if self._message == JOINT_TRAJECTORY else self._on_array)
        self._entities = [
            sub(msg_type, f"teleop/{suffix}", lambda m: cb(TELEOP, m), node_qos.COMMAND),
            sub(msg_type, f"policy/{suffix}", lambda m: cb(POLICY, m), node_qos.COMMAND),
            # Reliable with a queue: no e-stop message may be lost or overwritten by a later one.
            sub(Bool, "safety/estop", self._on_estop, 10),
            sub(HelpRequest, "policy/help", self._on_help, node_qos.LATCHED),
            self.create_service(Trigger, "~/estop", self._on_estop_service),
            self.create_service(Trigger, "~/reset", self._on_reset_service),
        ]
        if p["supervisor"]:
            self._entities.append(sub(ManagerStatus, f"{p['supervisor']}/status", self._on_supervisor,
                                      node_qos.LATCHED))
        self._supervisor_said = None
        for name, _, _ in self.shield.config.locks:
            self._entities.append(sub(Bool, f"safety/lock/{name}", lambda m, n=name: self._on_lock(n, m), 10))
        if not twist or p["workspace_enabled"]:
            self._position_index = None
            self._entities.append(sub(JointState, "joint_states", self._on_joint_states, node_qos.SENSOR_SUB))
        if p["scan_topic"]:
            self._entities.append(sub(LaserScan, p["scan_topic"], self._on_scan, node_qos.SENSOR_SUB))
        if p["pointcloud_topic"]:
            self._entities.append(sub(PointCloud2, p["pointcloud_topic"], self._on_cloud, node_qos.SENSOR_SUB))
        self.dropped = {"commands": 0, "scans": 0, "clouds": 0, "joint_states": 0, "help_requests": 0}
        self._last_report = None
        self.get_logger().info(
            f"{p['command_type']} at {p['rate']:g} Hz; sources teleop > policy; "
            f"{len(self.shield.config.locks)} locks, {len(self.shield.config.zones)} zones; hard limits from "
            f"{self.hard.source}; " + (f"supervised by {p['supervisor']}" if p["supervisor"] else "no supervisor"))

    def activate(self) -> None:
        self.shield.clear()  # no command from before the activation survives it
        self._trajectories.clear()
        # Steady clock: a frozen or stretched /clock cannot keep the watchdog from firing.
        self._sent, self._sent_at = None, -float("inf")
        self._timer = self.create_timer(1.0 / self.params["rate"], self._on_timer, clock=self._steady)
        self.start_diagnostics()
        self._pubs["markers"].publish(shield_markers(self.shield, None, self._stamp()))

    def deactivate(self) -> None:
        was_ticking = self._timer is not None
        self.stop_diagnostics()
        self._timer = self.drop_timer(self._timer)
        if was_ticking and self.shield is not None:
            # Leave the robot stopped rather than waiting for its own command timeout: zero velocity, or for
            # joint positions the hold (measured positions, never zeros; nothing when there is none).
            if self.shield.config.command_type == "joint_position":
                hold = self.shield.hold_position(self._now())
                if hold is not None:
                    self._pubs["cmd"].publish(self._command_msg(hold))
            else:
                self._pubs["cmd"].publish(self._command_msg(np.zeros(self.shield.config.dim)))

    def cleanup(self) -> None:
        for pub in self._pubs.values():
            self.destroy_publisher(pub)
        for entity in self._entities:
            (self.destroy_service if hasattr(entity, "srv_type") else self.destroy_subscription)(entity)
        self._pubs, self._entities, self.shield, self.hard = {}, [], None, None

    # ---- parameters at run time -------------------------------------------------------------------
    def on_parameters_changed(self, changed: dict) -> None:
        """Limits changed at run time: validated together, within the contract's hard limits, and only
        tightening what was configured (timeouts, the workspace box, jerk); refused as a whole otherwise."""
        config = config_from_params(self.params, self.hard)  # ValueError beyond the contract's hard limits
        problems = loosened(config, self._configured)
        if problems:
            raise ValueError("; ".join(problems))
        self.shield.update_limits(config)
        self.get_logger().info("limits updated: " + ", ".join(changed))

    # ---- inputs -----------------------------------------------------------------------------------
    def _now(self) -> Instant:
        return Instant(self._steady.now().nanoseconds * 1e-9, self.get_clock().now().nanoseconds * 1e-9)

    def _stamp(self):
        return self.get_clock().now().to_msg()

    def _on_twist(self, source: str, msg: Twist) -> None:
        self._offer(source, twist_to_array(msg, TWIST_FIELDS))

    def _on_array(self, source: str, msg: Float64MultiArray) -> None:
        self._offer(source, np.asarray(msg.data, dtype=np.float64))

    def _on_trajectory(self, source: str, msg) -> None:
        if not self.is_active or self.shield is None:
            return
        try:  # every point is checked now: joint names, sizes, finite values, increasing time_from_start
            points, times = joint_trajectory_chunk(msg, self.hard.names)
        except CommandError as exc:  # other joints, no points, a short point, NaN/Inf
            self._trajectories.drop(source)
            self.shield.refuse(source, self._now())
            self.dropped["commands"] += 1
            self.get_logger().warning(f"command rejected and the robot stopped: {exc}", throttle_duration_sec=1.0)
            self._tick()
            return
        if len(points) == 1:
            self._trajectories.drop(source)
            self._offer(source, points[0])
            return
        # A chunk: each point becomes the command when it is due (vla_safety.trajectory) and passes every limit.
        self._offer(source, self._trajectories.start(source, points, times, self._now().ros))

    def _offer(self, source: str, values: np.ndarray) -> None:
        if not self.is_active or self.shield is None:
            return  # INACTIVE: connected, never commanding
        reason = self.shield.offer_command(source, values, self._now())
        if reason:
            self.dropped["commands"] += 1
            self.get_logger().warning(f"command rejected and the robot stopped: {reason}", throttle_duration_sec=1.0)
        self._tick(trigger=source)

    def _on_estop(self, msg: Bool) -> None:
        if self.shield is None:
            return
        self.shield.estop_input(msg.data, self._now())
        if msg.data:
            self.get_logger().warning("e-stop from safety/estop: output zero until ~/reset",
                                   throttle_duration_sec=1.0)
        self._tick()  # zero on this very step, not the next timer tick

    def _on_estop_service(self, request, response):
        if self.shield is None:
            response.success, response.message = False, "safety_shield is not configured"
            return response
        self.shield.trigger_estop()
        self._tick()
        self.get_logger().warning("e-stop from ~/estop: output zero until ~/reset")
        response.success, response.message = True, "e-stop engaged; call ~/reset to release it"
        return response

    def _on_reset_service(self, request, response):
        if self.shield is None:
            response.success, response.message = False, "safety_shield is not configured"
            return response
        response.success, response.message = self.shield.reset()
        self._trajectories.clear()  # nothing sent before the reset is followed after it
        self.get_logger().info(f"reset: {response.message}")
        return response

    def _on_supervisor(self, msg: ManagerStatus) -> None:
        if self.shield is None:
            return
        now = self._now()
        self.shield.supervisor_input(msg.active, msg.phase, msg.reason, now)
        said = self.shield.supervisor_problem(now)
        if said != self._supervisor_said:
            log = self.get_logger()
            (log.warning(f"stopping: {said}") if said else log.info("the supervisor reports active"))
            self._supervisor_said = said
        self._tick()  # a not-active status stops the robot on this very message

    def _on_help(self, msg: HelpRequest) -> None:
        if self.shield is None:
            return
        if not (np.isfinite(msg.uncertainty) and np.isfinite(msg.threshold)):
            self.dropped["help_requests"] += 1  # the state in force stays
            self.get_logger().warning(f"help request dropped: non-finite uncertainty {msg.uncertainty} or threshold "
                                      f"{msg.threshold}", throttle_duration_sec=2.0)
            return
        if msg.active == self.shield.help_requested:
            return
        self.shield.help_input(msg.active, self._now())
        scale = self.shield.config.help_scale
        if msg.active:  # two call sites: rclpy fixes a call site's severity at its first call
            self.get_logger().warning(f"the policy asks for help ({msg.reason[:200]}): its commands "
                                      + (f"scaled by {scale:g}" if scale > 0 else "held") + " until it clears")
        else:
            self.get_logger().info("the policy's help request cleared: its commands pass unscaled")
        self._tick()  # slowed or held on this very message

    def _on_lock(self, name: str, msg: Bool) -> None:
        if self.shield is not None:
            self.shield.set_lock(name, msg.data, self._now())

    def _on_joint_states(self, msg: JointState) -> None:
        if self.shield is None:
            return
        names = self.hard.names if self.params["command_type"] != "twist" else self.params["workspace_joints"]
        try:
            q = joint_positions(msg, names)
        except StateError as exc:
            self.dropped["joint_states"] += 1
            self.get_logger().warning(f"joint_states dropped ({exc.reason}): {exc}", throttle_duration_sec=2.0)
            return
        self.shield.set_position(q, self._now())

    def _on_scan(self, msg: LaserScan) -> None:
        if self.shield is None:
            return
        if msg.angle_increment == 0.0 or not np.isfinite(msg.angle_increment):
            self.dropped["scans"] += 1
            self.get_logger().warning(f"LaserScan dropped: angle_increment {msg.angle_increment}",
                                   throttle_duration_sec=2.0)
            return
        pts = scan_points(msg.ranges, msg.angle_min, msg.angle_increment, msg.range_min, msg.range_max,
                          tuple(self.params["scan_pose"]))
        self.shield.offer_points("scan", pts, self._sensor_time(msg.header.stamp))

    def _on_cloud(self, msg: PointCloud2) -> None:
        if self.shield is None:
            return
        try:
            xyz = cloud_xyz(msg)
        except ValueError as exc:
            self.dropped["clouds"] += 1
            self.get_logger().warning(f"PointCloud2 dropped: {exc}", throttle_duration_sec=2.0)
            return
        pts = cloud_points(xyz, self.params["min_height"], self.params["max_height"],
                           tuple(self.params["pointcloud_pose"]))
        self.shield.offer_points("pointcloud", pts, self._sensor_time(msg.header.stamp))

    def _sensor_time(self, stamp) -> Instant:
        """Receipt on the steady clock, measurement (header stamp) on the ROS clock."""
        now = self._now()
        t = time_to_seconds(stamp)
        return Instant(now.steady, t if t > 0 else now.ros)  # unstamped data counts from its arrival

    # ---- output -----------------------------------------------------------------------------------
    def _command_msg(self, values: np.ndarray):
        if self.shield.config.command_type == "twist":
            return array_to_twist(values, TWIST_FIELDS)
        if self._message == JOINT_TRAJECTORY:  # one point, reached within one control period
            return array_to_joint_trajectory(values, self.hard.names, 1.0 / self.params["rate"])
        return Float64MultiArray(data=[float(v) for v in values])

    def on_callback_error(self, where: str, exc: Exception) -> None:
        """A bug in a callback: forget every held command (only new ones may move the robot) and step at once,
        so the watchdog's stop (zero, or hold for joint positions) goes out now."""
        if self.shield is not None and self.is_active:
            self.shield.mux.clear()
            self._trajectories.clear()
            self._tick()

    def _on_timer(self) -> None:
        self._tick()

    def _tick(self, trigger: str | None = None) -> None:
        """One step of the shield: on every timer tick and on every input that can change the command.

        A tick leaves out a source's command identical to one it published less than half a source timeout ago
        (the smaller of teleop_timeout and policy_timeout), unless the tick is that source's own new message
        (``trigger``): the source's own stream, forwarded as it arrives, is what the robot follows, and a timer
        tick, the supervisor's status or another source's message (the policy proposing while the operator
        drives) does not send it again. Without the stream the robot still gets the command at least twice per
        timeout, until the watchdog's stop. A lockstep simulator, which steps on the next command it receives,
        is then not stepped by a repeat of the previous one. Stops and holds (no source, or the e-stop) go out on
        every tick."""
        if not self.is_active or self.shield is None:
            return  # INACTIVE never publishes a command
        now = self._now()
        for source in self._trajectories.sources():
            point = self._trajectories.due(source, now.ros)
            if point is not None and self.shield.offer_command(source, point, now):
                self._trajectories.drop(source)
        command, report = self.shield.step(now)
        jumped = "clock_jump" in (r for r, _ in report.rules)
        if jumped:
            self._trajectories.clear()
        if report.why and jumped:
            self.get_logger().warning(f"clock jump, robot stopped and held commands dropped: {report.why}",
                                      throttle_duration_sec=1.0)
        if command is not None:
            wall, p = time.monotonic(), self.params
            repeat = (trigger != report.source and report.source not in ("none", "estop") and self._sent is not None
                      and wall - self._sent_at < 0.5 * min(p["teleop_timeout"], p["policy_timeout"])
                      and np.array_equal(command, self._sent))
            if not repeat:
                self._pubs["cmd"].publish(self._command_msg(command))
                self._sent, self._sent_at = np.array(command, copy=True), wall
        self._last_report = report
        stamp = self._stamp()
        c = self.shield.counters
        state = ShieldState(active_source=report.source, estop=report.estop, takeover=report.takeover,
                            rules=[r for r, _ in report.rules], amounts=[float(a) for _, a in report.rules],
                            command=[] if command is None else [float(v) for v in command],
                            ticks=c.ticks, rejected=c.rejected, stale_ticks=c.stale_ticks, estops=c.estops,
                            takeovers=c.takeovers)
        state.header.stamp, state.header.frame_id = stamp, "base_link"
        self._pubs["state"].publish(state)
        flag = Intervention(active=report.takeover, device=TELEOP)
        flag.header.stamp = stamp
        self._pubs["intervention"].publish(flag)
        if self._pubs["markers"].get_subscription_count() > 0:
            self._pubs["markers"].publish(shield_markers(self.shield, report, stamp))

    def _publish_diagnostics(self) -> None:
        if self.shield is None:
            return
        c, report = self.shield.counters, self._last_report
        if self.shield.estopped:
            level, message = DiagnosticStatus.ERROR, "e-stop latched; call ~/reset"
        elif report is not None and report.stopped:
            level, message = DiagnosticStatus.WARN, "stopped: " + ", ".join(r for r, _ in report.rules) + (
                f" ({report.why})" if report.why else "")
        elif c.rejected or any(self.dropped.values()):
            level, message = DiagnosticStatus.WARN, f"{c.rejected} commands rejected"
        else:
            level, message = DiagnosticStatus.OK, "forwarding " + (report.source if report else "nothing yet")
        values = {"ticks": c.ticks, "rejected": c.rejected, "stale_ticks": c.stale_ticks, "estops": c.estops,
                  "takeovers": c.takeovers, "estop_latched": self.shield.estopped,
                  "help_requested": self.shield.help_requested,
                  "supervisor": (self.shield.supervisor_problem(self._now()) or "active") if self.params["supervisor"]
                  else "none", "hard_limits": self.hard.source,
                  **{f"dropped_{k}": v for k, v in self.dropped.items()},
                  **{f"rule {k}": v for k, v in sorted(c.rules.items())}}
        status = DiagnosticStatus(level=level, name=f"{self.get_name()}: shield", hardware_id="safety_shield",
                                  message=message, values=[KeyValue(key=k, value=str(v)) for k, v in values.items()])
        array = DiagnosticArray(status=[status])
        array.header.stamp = self._stamp()
        self._pubs["diagnostics"].publish(array)


main = main_for(SafetyShieldNode)
