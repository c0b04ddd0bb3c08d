"""The safety shield's filter: mux, e-stop, watchdog, rejection, limits and collision zones in one step.

Pure Python + numpy, deterministic: the node feeds inputs as they arrive (``offer_command``, ``set_lock``,
``offer_points``, ``set_position``, ``estop_input``/``trigger_estop``, ``supervisor_input``) stamped with
an :class:`~vla_safety.clock.Instant` (steady and ROS clock, s), and calls ``step(now)`` on every control
tick and on every accepted command. ``step`` returns the command to send (or None: nothing may be sent) and
a :class:`Report` of what acted.

Time: every freshness check (command sources, locks, joint states, obstacle sensors) must pass on both
clocks (:mod:`vla_safety.clock`), so a stray /clock can make inputs stale but never keep them fresh; a
ROS clock that goes back, or leaps ahead of the steady clock by more than ``max_clock_jump`` s, stops the
robot on that step and forgets every held command (rule ``clock_jump``). The supervisor (the lifecycle
manager) is watched on the steady clock alone: it reports on a steady timer whatever the sim speed.

Ticks: rate limits (acceleration, jerk, step) are applied against the output in effect at the end of the
previous control period (``1 / rate`` s), with dt = that period. Several steps within one period (a timer
tick and a command arriving at the same simulated instant) therefore all limit against the same reference,
and the robot, which applies the newest command once per period, never sees more than the limits allow.

Stops are never rate-limited: e-stop, a clock jump, a lost or not-active supervisor, watchdog (nothing
fresh), a rejected command, an engaged lock, a stop zone and a silent obstacle sensor take effect on the
same step. A stop is zero velocity for Twist and joint velocity commands. For joint position commands a stop holds
position, never "go to zero": the joint positions measured when the stop began (fresh joint_states, within the
position limits), latched while the stop lasts so that a servo's sag under its own hold is not followed down;
joints in ``hold_command_joints`` (a gripper squeezing an object) keep their last commanded target instead.
Without a fresh measurement the last position sent is held; with neither, nothing is sent.

Help: while the policy asks for help (``help_input``, the policy node's ~/help), the policy's commands are
scaled by ``help_scale`` before every limit (rule ``help.slow``, the amount the command lost): velocities
times the scale, joint positions a step of that fraction from the reference toward the target, so the usual
rate limits bring the robot down to the slower speed; ``help_scale`` 0 holds instead (rule ``help.hold``, a
stop). The operator's commands are never scaled: a person who takes over is the help asked for.
"""
from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from vla_safety.clock import ClockWatch, Instant, fresh, instant
from vla_safety.limits import (JointLimits, Rules, TwistLimits, WorkspaceBox, limit_joint_position,
                               limit_joint_velocity, limit_twist)
from vla_safety.kinematics import JointWorkspace
from vla_safety.mux import Lock, Mux, Source
from vla_safety.zones import Zone, apply_zones

COMMAND_TYPES = ("twist", "joint_position", "joint_velocity")
TELEOP, POLICY = "teleop", "policy"
# Operator above policy, fixed by design; locks take priorities relative to these (twist_mux semantics).
TELEOP_PRIORITY, POLICY_PRIORITY = 100, 50
# Header stamps of obstacle data may lead this machine's clock by this much (clock sync between machines).
SENSOR_SKEW = 0.05


@dataclass(frozen=True)
class ShieldConfig:
    """Validated shield configuration. ``locks``: (name, priority, timeout s). ``sensors``: names of the
    obstacle sources the zones need (each must deliver points within ``sensor_timeout`` s).
    ``supervisor_timeout``: None when no supervisor watches the command path, else the longest silence (s,
    steady clock) before the robot stops. ``max_clock_jump``: the ROS clock's largest lead over the steady
    clock between two steps (s) before it counts as a jump."""

    command_type: str = "twist"
    rate: float = 10.0
    teleop_timeout: float = 0.5
    policy_timeout: float = 0.5
    locks: tuple = ()
    twist: TwistLimits | None = None
    joints: JointLimits | None = None
    workspace: WorkspaceBox | None = None
    zones: tuple[Zone, ...] = ()
    sensors: tuple[str, ...] = ()
    sensor_timeout: float = 0.5
    state_timeout: float = 0.5
    supervisor_timeout: float | None = None
    max_clock_jump: float = 1.0
    hold_command_joints: tuple[int, ...] = ()
    joint_workspace: "JointWorkspace | None" = None  # end-effector box of joint_position commands
    help_scale: float = 0.5  # the policy's commands while it asks for help: scaled by this; 0 holds


    def __post_init__(self):
        problems = []
        if self.command_type not in COMMAND_TYPES:
            problems.append(f"command_type {self.command_type!r}: expected one of {', '.join(COMMAND_TYPES)}")
        if not self.rate > 0:
            problems.append(f"rate {self.rate} must be > 0 Hz")
        if self.command_type == "twist" and self.twist is None:
            problems.append("command_type twist needs Twist limits (max_velocity, max_accel, ...)")
        if self.command_type != "twist" and self.joints is None:
            problems.append(f"command_type {self.command_type} needs joint limits (joint_lower, joint_upper, ...)")
        if self.zones and self.command_type != "twist":
            problems.append("collision zones apply to Twist commands (mobile bases); remove zones or use twist")
        if self.zones and not self.sensors:
            problems.append("zones are configured but no obstacle source is: set scan_topic or pointcloud_topic")
        if self.joint_workspace is not None and self.command_type != "joint_position":
            problems.append("the end-effector box through forward kinematics bounds joint_position commands")
        if self.workspace is not None and self.command_type != "twist":
            problems.append("the workspace box bounds Cartesian (Twist) motion; joint commands use joint limits")
        if not 0.0 <= self.help_scale <= 1.0:
            problems.append(f"help_scale {self.help_scale} must be in [0, 1] (0 holds while the policy asks for help)")
        if self.supervisor_timeout is not None and not self.supervisor_timeout > 0:
            problems.append(f"supervisor_timeout {self.supervisor_timeout} must be > 0 s")
        if not self.max_clock_jump > 0:
            problems.append(f"max_clock_jump {self.max_clock_jump} must be > 0 s")
        if self.hold_command_joints and (self.command_type != "joint_position" or any(
                not 0 <= i < self.joints.dim for i in self.hold_command_joints)):
            problems.append(f"hold_command_joints {list(self.hold_command_joints)} must index joints of "
                            "joint_position commands")
        for name, priority, timeout in self.locks:
            if not 0 <= priority <= 255 or timeout < 0:
                problems.append(f"lock {name!r}: priority must be in [0, 255] and timeout >= 0")
        if problems:
            raise ValueError("; ".join(problems))

    @property
    def dim(self) -> int:
        return 6 if self.command_type == "twist" else self.joints.dim


@dataclass
class Report:
    """What one step did: the source forwarded, e-stop, takeover, rules that acted with amounts, and why a
    clock or supervisor stop happened (``why``, empty otherwise)."""

    source: str
    estop: bool
    takeover: bool
    rules: Rules
    command: np.ndarray | None
    why: str = ""

    @property
    def stopped(self) -> bool:
        return any(r[0] in STOP_RULES or r[0].split(":")[0] in STOP_RULES for r in self.rules)


STOP_RULES = {"estop", "clock_jump", "supervisor", "watchdog", "reject", "lock", "zone.stop", "zone.source_timeout",
              "no_position", "help.hold"}


@dataclass
class _Output:
    v: np.ndarray            # velocity sent (Twist 6 or joint velocities n); joint position: implied velocity
    a: np.ndarray            # acceleration of the last change (Twist jerk limit)
    q: np.ndarray | None = None  # joint positions sent (joint_position)
    held: bool = False           # a stop's hold (joint_position): kept while the stop lasts


@dataclass
class Counters:
    ticks: int = 0
    rejected: int = 0
    stale_ticks: int = 0
    estops: int = 0
    takeovers: int = 0
    rules: dict = field(default_factory=dict)


class Shield:
    def __init__(self, config: ShieldConfig):
        self.config = config
        self.mux = Mux([Source(TELEOP, TELEOP_PRIORITY, config.teleop_timeout),
                        Source(POLICY, POLICY_PRIORITY, config.policy_timeout)],
                       [Lock(name, int(p), float(t)) for name, p, t in config.locks])
        self.counters = Counters()
        self.estopped = False
        self.estop_asserted = False
        self._points: dict[str, tuple[np.ndarray, Instant]] = {}
        self._position: tuple[np.ndarray, Instant] | None = None
        self._supervisor: tuple[bool, str, Instant] | None = None
        self._clock = ClockWatch(config.max_clock_jump)
        self._was_takeover = False
        self.help_requested = False  # the policy asks for help (kept across activations: a latched input)
        self.clear()

    # ---- configuration -------------------------------------------------------------------------
    def update_limits(self, config: ShieldConfig) -> None:
        """Change limits at run time; topology (command type, dimension, sources, locks, sensors) may not."""
        old = self.config
        if (config.command_type, config.dim, config.locks, config.sensors, config.supervisor_timeout,
                config.max_clock_jump) != (old.command_type, old.dim, old.locks, old.sensors,
                                           old.supervisor_timeout, old.max_clock_jump):
            raise ValueError("command type, joint count, locks, obstacle sources, supervisor and clock checks are "
                             "topology, fixed at configure; edit the parameter file and restart the shield")
        self.config = config
        self.mux.sources[TELEOP].timeout = config.teleop_timeout
        self.mux.sources[POLICY].timeout = config.policy_timeout

    @property
    def dt(self) -> float:
        return 1.0 / self.config.rate

    def clear(self) -> None:
        """Forget commands and motion state (on activation and reset): nothing old is executed."""
        self.mux.clear()
        dim = self.config.dim
        self._ref = _Output(np.zeros(dim), np.zeros(dim))
        self._last = self._ref
        self._period_start: float | None = None

    # ---- inputs -------------------------------------------------------------------------------
    def offer_command(self, source: str, values, now: Instant | float) -> str | None:
        """A command from ``source`` ('teleop' or 'policy') received at ``now``. Returns why it was rejected
        (it then stops the robot while fresh, and is counted), or None."""
        now = instant(now)
        values = np.asarray(values, dtype=np.float64).reshape(-1)
        dim = self.config.dim
        reason = None
        if values.shape != (dim,):
            reason = (f"{source} command has {values.size} values but this robot takes {dim}; "
                      f"send {dim} values ({self.config.command_type})")
        elif not np.isfinite(values).all():
            reason = f"{source} command {values.tolist()} has non-finite values"
        if reason:
            self.counters.rejected += 1
            self.mux.offer(source, None, now)
            return reason
        self.mux.offer(source, values, now)
        return None

    def refuse(self, source: str, now: Instant | float) -> None:
        """A command from ``source`` that could not even be read (a trajectory to other joints, a malformed
        message): counted and, while fresh, it stops the robot like any rejected command."""
        self.counters.rejected += 1
        self.mux.offer(source, None, instant(now))

    def set_lock(self, name: str, locked: bool, now: Instant | float) -> None:
        self.mux.set_lock(name, locked, instant(now))

    def offer_points(self, sensor: str, points: np.ndarray, stamp: Instant | float) -> None:
        """Obstacle points (N, 2) in base_link from ``sensor``: ``stamp`` is its receipt on the steady clock
        and its measurement time (header stamp) on the ROS clock."""
        self._points[sensor] = (np.asarray(points, dtype=np.float64).reshape(-1, 2), instant(stamp))

    def set_position(self, position, now: Instant | float) -> None:
        """Measured joint positions (joint commands) or end-effector position (workspace box), at ``now``."""
        self._position = (np.asarray(position, dtype=np.float64), instant(now))

    def supervisor_input(self, active: bool, phase: str, reason: str, now: Instant | float) -> None:
        """The supervisor's status: ``active`` (everything it manages is up) and its ``phase`` and ``reason``.
        Ignored when no supervisor is configured."""
        self._supervisor = (bool(active), f"{phase}: {reason}" if reason else phase, instant(now))

    def supervisor_problem(self, now: Instant | float) -> str | None:
        """Why the supervisor does not allow motion at ``now`` (None: it does, or none is configured)."""
        timeout = self.config.supervisor_timeout
        if timeout is None:
            return None
        if self._supervisor is None:
            return "no status from the supervisor yet"
        active, phase, stamp = self._supervisor
        age = instant(now).steady - stamp.steady
        if age > timeout:
            return f"the supervisor has been silent for {age:.2f} s (supervisor_timeout {timeout:g} s)"
        if not active:
            return f"the supervisor reports {phase}"
        return None

    def help_input(self, active: bool, now: Instant | float) -> None:
        """The policy's help request (its ~/help): while ``active`` its commands are slowed or held."""
        self.help_requested = bool(active)

    def estop_input(self, asserted: bool, now: Instant | float) -> None:
        """The e-stop topic: True latches the e-stop; False only allows a later reset."""
        self.estop_asserted = bool(asserted)
        if asserted:
            self.trigger_estop()

    def trigger_estop(self) -> None:
        if not self.estopped:
            self.counters.estops += 1
        self.estopped = True

    def reset(self) -> tuple[bool, str]:
        """Release a latched e-stop; held commands are forgotten so only new ones move the robot."""
        if self.estop_asserted:
            return False, "safety/estop still reports True; release the e-stop (publish False) first"
        was = self.estopped
        self.estopped = False
        self.clear()
        return True, "e-stop released" if was else "e-stop was not engaged"

    # ---- the filter ---------------------------------------------------------------------------------
    def _fresh_position(self, now: Instant) -> np.ndarray | None:
        if self._position is None or not fresh(self._position[1], now, self.config.state_timeout):
            return None
        return self._position[0]

    def hold_position(self, now: Instant | float) -> np.ndarray | None:
        """Where a joint-position robot stops at ``now``: the hold in effect if a stop is already holding, else
        the fresh measured positions (within the position limits; ``hold_command_joints`` at their last
        commanded target), else the last position sent; None without any of them."""
        if self.config.command_type != "joint_position":
            return None
        last = self._last
        if last.held:
            return last.q
        measured = self._fresh_position(instant(now))
        if measured is None or measured.shape != (self.config.dim,):
            return last.q
        lim = self.config.joints
        q = np.minimum(np.maximum(measured, lim.lower), lim.upper)
        if last.q is not None and self.config.hold_command_joints:
            idx = list(self.config.hold_command_joints)
            q[idx] = last.q[idx]
        return q

    def _stop(self, now: Instant) -> _Output:
        dim = self.config.dim
        zero = np.zeros(dim)
        if self.config.command_type == "joint_position":
            q = self.hold_position(now)
            return _Output(zero, zero, q, held=q is not None)
        return _Output(zero, zero)

    def _emit(self, out: _Output) -> np.ndarray | None:
        return out.q if self.config.command_type == "joint_position" else out.v

    def step(self, now: Instant | float) -> tuple[np.ndarray | None, Report]:
        """One control step at ``now``: the command to send (None: send nothing) and why. Rate limits count
        control periods on the ROS clock (simulated time under use_sim_time)."""
        now = instant(now)
        jump = self._clock.jumped(now)
        if jump:
            self.mux.clear()  # nothing stamped before the jump can be trusted: only new commands move
            self._period_start = None
        t = now.ros
        if self._period_start is None or t - self._period_start >= self.dt - 1e-9 or t < self._period_start:
            self._ref, self._period_start = self._last, t
        self.counters.ticks += 1
        rules: Rules = []
        supervisor = self.supervisor_problem(now)
        why = jump or supervisor or ""
        winner, fresh_sources = self.mux.select(now)
        blocked = self.estopped or bool(why)
        takeover = winner is not None and winner.name == TELEOP and POLICY in fresh_sources and not blocked
        if takeover and not self._was_takeover:
            self.counters.takeovers += 1
        self._was_takeover = takeover
        source = "estop" if self.estopped else ("none" if why or winner is None else winner.name)
        out = None
        if self.estopped:
            rules.append(("estop", 0.0))
        elif jump:
            rules.append(("clock_jump", 0.0))
        elif supervisor:
            rules.append(("supervisor", 0.0))
        elif winner is None:
            floor, lock = self.mux.lock_priority(now)
            rules.append((f"lock:{lock}", 0.0) if fresh_sources and floor >= 0 else ("watchdog", 0.0))
            self.counters.stale_ticks += not fresh_sources
        elif winner.command is None:
            rules.append((f"reject:{winner.name}", 0.0))
        elif winner.name == POLICY and self.help_requested and self.config.help_scale == 0.0:
            rules.append(("help.hold", 0.0))
        elif winner.name == POLICY and self.help_requested:
            target = self._help_scaled(winner.command, now)
            rules.append(("help.slow", float(np.linalg.norm(winner.command - target))))
            out = self._limit(target, now, rules)
        else:
            out = self._limit(winner.command, now, rules)
        if out is None:
            out = self._stop(now)
            ref = self._emit(self._ref)
            sent = self._emit(out)
            if ref is not None and sent is not None:
                rules[-1] = (rules[-1][0], float(np.linalg.norm(ref - sent)))
        self._last = out
        for name, _ in rules:
            self.counters.rules[name] = self.counters.rules.get(name, 0) + 1
        return self._emit(out), Report(source, self.estopped, takeover, rules, self._emit(out), why)

    def _help_scaled(self, target: np.ndarray, now: Instant) -> np.ndarray:
        """The policy's command slowed by ``help_scale``: velocities scaled; a joint-position target brought
        that fraction of the way from the reference (the last output, else the measured position; unchanged
        without either: the no_position rule then stops)."""
        scale = self.config.help_scale
        if self.config.command_type != "joint_position":
            return target * scale
        q_ref = self._ref.q if self._ref.q is not None else self._fresh_position(now)
        if q_ref is None or q_ref.shape != target.shape:
            return target
        return q_ref + scale * (target - q_ref)

    def _limit(self, target: np.ndarray, now: Instant, rules: Rules) -> _Output | None:
        cfg, ref, dt = self.config, self._ref, self.dt
        if cfg.command_type == "twist":
            v, a, r = limit_twist(target, ref.v, ref.a, dt, cfg.twist)
            rules.extend(r)
            if cfg.workspace is not None:
                p = self._fresh_position(now)
                if p is None or len(p) < len(cfg.workspace.low):
                    rules.append(("no_position", 0.0))
                    return None
                v, r = cfg.workspace.limit_velocity(p[: len(cfg.workspace.low)], v, dt)
                rules.extend(r)
            if cfg.zones:
                points = []
                for sensor in cfg.sensors:
                    pts, stamp = self._points.get(sensor, (None, None))
                    if stamp is None or not fresh(stamp, now, cfg.sensor_timeout, SENSOR_SKEW):
                        rules.append((f"zone.source_timeout:{sensor}", 0.0))
                        return None
                    points.append(pts)
                v2, rule, amount = apply_zones(v, np.concatenate(points), cfg.zones)
                if rule.startswith("zone.stop"):
                    rules.append((rule, 0.0))
                    return None
                if rule:
                    rules.append((rule, amount))
                    v = v2
            return _Output(v, (v - ref.v) / dt)
        q_meas = self._fresh_position(now)
        if cfg.command_type == "joint_velocity":
            if q_meas is not None and q_meas.shape != (cfg.dim,):
                q_meas = None
            v, r = limit_joint_velocity(target, ref.v, q_meas, dt, cfg.joints)
            rules.extend(r)
            return _Output(v, (v - ref.v) / dt)
        q_ref = ref.q if ref.q is not None else q_meas
        if q_ref is None or q_ref.shape != (cfg.dim,):
            rules.append(("no_position", 0.0))
            return None
        q, v, r = limit_joint_position(target, q_ref, ref.v, dt, cfg.joints)
        rules.extend(r)
        if cfg.joint_workspace is not None:
            q, r = cfg.joint_workspace.limit(q, q_ref)
            if r:
                rules.extend(r)
                v = (q - q_ref) / dt
        return _Output(v, (v - ref.v) / dt, q)
