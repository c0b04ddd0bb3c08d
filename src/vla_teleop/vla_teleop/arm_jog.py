"""End-effector jog for arms (no ROS): a Cartesian velocity of the tool and a gripper rate, as keys or a Joy
message, become joint-position targets through the arm's kinematics, as MoveIt Servo does.

Each control tick (``period`` s) the jog moves a pose goal by the commanded twist (base_link: linear m/s, angular
rad/s about the base axes), then takes one damped-least-squares step on the Jacobian towards it from the last
joint target (``dq = J^T (J J^T + damping^2 I)^-1 e``, e = position and rotation error of the goal). Stepping
from the last target, not the measurement, keeps a gravity-loaded arm's steady-state error from dragging the
goal down; the goal's error is bounded (``MAX_POSITION_ERROR``, ``MAX_ROTATION_ERROR``) so that a goal the arm
cannot follow (a joint at its limit) is dragged along rather than wound up, and the target never runs further
than ``max_lead`` ahead of the measured joints. The step is scaled so that no joint exceeds the contract's
``max_velocity``; a target beyond a joint limit is clipped and counted (``JointLimits.clipped``). The gripper
(one more joint of the action) moves at ``gripper_rate`` and keeps its target across jogs (a grasp stays
squeezed).

A device commands (returns a command) only while the operator does: a key held (within ``hold_time``) or the
Joy deadman pressed, and with fresh joint_states; otherwise it returns None, and the shield's mux hands the arm
to the policy or holds it.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import ClassVar

import numpy as np

from vla_core.kinematics import ArmModel, rotation_matrix, rotation_vector
from vla_teleop.devices import TeleopDevice, register_device
from vla_teleop.joint_commands import JointLimits

MAX_POSITION_ERROR = 0.02   # m: the pose goal stays this close to the target's end effector
MAX_ROTATION_ERROR = 0.1    # rad


def dls_step(jacobian: np.ndarray, error: np.ndarray, damping: float) -> np.ndarray:
    """Joint step (k,) towards the task-space ``error`` (6,) by damped least squares (Wampler 1986; MoveIt
    Servo's and the Levenberg-Marquardt step): ``J^T (J J^T + damping^2 I)^-1 error``."""
    jjt = jacobian @ jacobian.T
    return jacobian.T @ np.linalg.solve(jjt + (damping * damping) * np.eye(jjt.shape[0]), error)


@dataclass
class EndEffectorJog:
    """Joint targets (the whole action vector) that move the end effector of ``model`` by commanded twists.

    ``limits`` is the contract's action. Joint position bounds: the contract's ``low``/``high`` for an absolute
    contract; for a delta contract (whose ``low``/``high`` bound the increment) the model's joint ranges and the
    measured positions plus ``low``/``high``, so that no target winds up beyond what one command can ask.
    ``gripper``: the gripper's index in the action vector (None: no gripper).
    """

    model: ArmModel
    limits: JointLimits
    period: float
    gripper: int | None = None
    lower: np.ndarray = field(init=False, repr=False)
    upper: np.ndarray = field(init=False, repr=False)
    _q: np.ndarray | None = field(default=None, init=False, repr=False)
    _gripper_target: float | None = field(default=None, init=False, repr=False)
    _goal_p: np.ndarray = field(default_factory=lambda: np.zeros(3), init=False, repr=False)
    _goal_r: np.ndarray = field(default_factory=lambda: np.eye(3), init=False, repr=False)

    def __post_init__(self) -> None:
        if not self.period > 0:
            raise ValueError(f"jog period {self.period!r} must be > 0 s (1 / the command rate)")
        if self.gripper is not None and self.gripper in self.model.index:
            raise ValueError(f"the gripper ({self.limits.names[self.gripper]}) cannot be a joint of the jog's chain")
        if self.limits.mode == "absolute":
            self.lower, self.upper = self.limits.low.copy(), self.limits.high.copy()
        else:
            self.lower, self.upper = np.full(self.limits.dim, -np.inf), np.full(self.limits.dim, np.inf)
            self.lower[self.model.index], self.upper[self.model.index] = self.model.lower, self.model.upper

    @property
    def engaged(self) -> bool:
        return self._q is not None

    def release(self) -> None:
        """The operator let go: the next jog starts from the joints measured then (the gripper's target stays)."""
        self._q = None

    def reset(self) -> None:
        """Forget everything, the gripper's target included."""
        self._q, self._gripper_target = None, None

    def step(self, measured: np.ndarray, linear: np.ndarray, angular: np.ndarray, gripper_rate: float = 0.0,
             damping: float = 0.05, max_lead: float = 0.2) -> np.ndarray:
        """One tick: the joint target (n,) for the twist ``linear`` (3,) m/s and ``angular`` (3,) rad/s in
        base_link and the gripper's rate (its units/s) from the ``measured`` joint positions (n,)."""
        measured = np.asarray(measured, dtype=np.float64)
        idx = self.model.index
        if self._q is None:
            self._q = np.clip(measured, self.lower, self.upper)
            self._goal_p, self._goal_r = self.model.fk(self._q)
        q = self._q.copy()
        if max_lead > 0:  # never further ahead of the arm than max_lead: it fell behind, or is blocked
            q[idx] = measured[idx] + np.clip(q[idx] - measured[idx], -max_lead, max_lead)
        dt = self.period
        self._goal_p = self._goal_p + np.asarray(linear, dtype=np.float64) * dt
        self._goal_r = rotation_matrix(np.asarray(angular, dtype=np.float64) * dt) @ self._goal_r
        p, r = self.model.fk(q)
        e_p, e_r = self._goal_p - p, rotation_vector(self._goal_r @ r.T)
        n_p, n_r = float(np.linalg.norm(e_p)), float(np.linalg.norm(e_r))
        if n_p > MAX_POSITION_ERROR:
            e_p *= MAX_POSITION_ERROR / n_p
            self._goal_p = p + e_p
        if n_r > MAX_ROTATION_ERROR:
            e_r *= MAX_ROTATION_ERROR / n_r
            self._goal_r = rotation_matrix(e_r) @ r
        dq = dls_step(self.model.jacobian(q), np.concatenate([e_p, e_r]), damping)
        if self.limits.max_velocity is not None:  # the contract's joint rates: scale the step, keep its direction
            ratio = float(np.max(np.abs(dq) / (self.limits.max_velocity[idx] * dt)))
            if ratio > 1.0:
                dq /= ratio
        q[idx] += dq
        g = self.gripper
        if g is not None:
            if self._gripper_target is None:
                self._gripper_target = float(measured[g])
            q[g] = self._gripper_target + gripper_rate * dt
        lower, upper = self.lower, self.upper
        if self.limits.mode == "delta":  # an increment goes no further than low/high from the measurement
            lower, upper = np.maximum(lower, measured + self.limits.low), np.minimum(upper, measured + self.limits.high)
        q = self.limits.clip(q, lower, upper)
        if g is not None:
            self._gripper_target = float(q[g])
        self._q = q
        return q.copy()


@dataclass
class ArmJogDevice(TeleopDevice):
    """An end-effector jog behind a person's input: subclasses say what the operator commands now
    (:meth:`motion`); this class turns it into the contract's joint command with fresh joint_states."""

    COMMANDS_JOINTS: ClassVar[bool] = True

    jog: EndEffectorJog
    linear_speed: float = 0.05
    angular_speed: float = 0.3
    gripper_speed: float = 0.04
    damping: float = 0.05
    max_lead: float = 0.2
    state_timeout: float = 0.5

    def needs_joint_states(self) -> bool:
        return True

    @property
    def limits(self) -> JointLimits:
        """The contract's action (mode, limits, clipped counts)."""
        return self.jog.limits

    def _init_state(self) -> None:
        self._measured: np.ndarray | None = None
        self._measured_at = -np.inf

    def observe_joints(self, positions: np.ndarray, now: float) -> None:
        """The measured joint positions (n,) in action order at ``now`` (s). Raises ValueError (not kept)
        for a wrong length or a non-finite value."""
        q = np.asarray(positions, dtype=np.float64)
        if q.shape != (self.jog.limits.dim,) or not np.all(np.isfinite(q)):
            raise ValueError(f"joint positions {q.tolist()} need {self.jog.limits.dim} finite values "
                             f"({list(self.jog.limits.names)})")
        self._measured, self._measured_at = q, now

    def motion(self, now: float) -> tuple[np.ndarray, np.ndarray, float] | None:
        """(linear (3,), angular (3,), gripper) in -1..1 of the speeds, or None when the operator is not
        commanding."""
        raise NotImplementedError

    def command(self, now: float) -> np.ndarray | None:
        motion = self.motion(now)
        fresh = self._measured is not None and now - self._measured_at <= self.state_timeout
        if motion is None or not fresh:
            self.jog.release()
            return None
        linear, angular, grip = motion
        target = self.jog.step(self._measured, self.linear_speed * np.asarray(linear),
                               self.angular_speed * np.asarray(angular), self.gripper_speed * grip,
                               self.damping, self.max_lead)
        return self.jog.limits.command(target, self._measured)

    def reset(self) -> None:
        self._init_state()
        self.jog.reset()


JOG_PARAMETERS = {"jog_linear_speed": "linear_speed", "jog_angular_speed": "angular_speed",
                  "gripper_speed": "gripper_speed", "jog_damping": "damping", "jog_max_lead": "max_lead",
                  "input_timeout": "state_timeout"}

# Key -> (axis, sign): axes 0-2 linear x, y, z; 3-5 angular about x, y, z (base_link); 6 the gripper.
ARM_KEYS = {"w": (0, 1.0), "s": (0, -1.0), "a": (1, 1.0), "d": (1, -1.0), "r": (2, 1.0), "f": (2, -1.0),
            "u": (3, 1.0), "o": (3, -1.0), "i": (4, 1.0), "k": (4, -1.0), "j": (5, 1.0), "l": (5, -1.0),
            ".": (6, 1.0), ",": (6, -1.0), " ": (-1, 0.0)}
ARM_ARROWS = {"\x1b[A": "w", "\x1b[B": "s", "\x1b[D": "a", "\x1b[C": "d"}


@register_device("arm_keyboard")
@dataclass
class ArmKeyboardDevice(ArmJogDevice):
    """Terminal keys jog the tool in base_link: w/s +x/-x (forward/back), a/d +y/-y (left/right), r/f +z/-z
    (up/down), u/o roll, i/k pitch, j/l yaw (about base x, y, z), '.' opens and ',' closes the gripper, space
    holds. A press commands for ``hold_time`` s (bridging key repeat); a released key stops within it."""

    PARAMETERS: ClassVar[dict[str, str]] = {**JOG_PARAMETERS, "keyboard_hold_time": "hold_time"}
    INPUT: ClassVar[str] = "keys"
    HELP: ClassVar[str] = ("teleop (arm): w/s forward/back, a/d left/right, r/f up/down, u/o roll, i/k pitch, "
                           "j/l yaw, '.'/',' open/close the gripper, space holds")

    hold_time: float = 0.6
    _key: tuple[int, float] = (-1, 0.0)
    _until: float = -np.inf

    def __post_init__(self) -> None:
        self._init_state()

    def press(self, key: str, now: float) -> bool:
        """Handle one key (or escape sequence); return False if it is not a jog key."""
        key = ARM_ARROWS.get(key, key.lower())
        if key not in ARM_KEYS:
            return False
        self._key, self._until = ARM_KEYS[key], now + self.hold_time
        return True

    def motion(self, now: float):
        if now > self._until:
            return None
        axis, sign = self._key
        v = np.zeros(7)
        if axis >= 0:
            v[axis] = sign
        return v[:3], v[3:6], float(v[6])

    def reset(self) -> None:
        super().reset()
        self._key, self._until = (-1, 0.0), -np.inf


@register_device("arm_joy")
@dataclass
class ArmJoyDevice(ArmJogDevice):
    """sensor_msgs/Joy: ``axes`` names the Joy axis of each of vx, vy, vz, wx, wy, wz (-1: none; ROS joy's sign:
    stick up and left are positive, so up is +x and left +y in base_link), ``gripper_buttons`` the
    [close, open] buttons; commands only while the deadman button is held and the message is fresh."""

    PARAMETERS: ClassVar[dict[str, str]] = {**JOG_PARAMETERS, "arm_joy_axes": "axes",
                                            "arm_joy_gripper_buttons": "gripper_buttons",
                                            "joy_deadman_button": "deadman_button", "input_timeout": "timeout"}
    INPUT: ClassVar[str] = "joy"

    axes: list = field(default_factory=lambda: [1, 0, 4, -1, -1, 3])
    gripper_buttons: list = field(default_factory=lambda: [0, 1])
    deadman_button: int = 4
    deadzone: float = 0.05
    timeout: float = 0.5
    _axes: tuple = ()
    _buttons: tuple = ()
    _stamp: float = -np.inf

    def __post_init__(self) -> None:
        self._init_state()
        self.check_mapping()

    def check_mapping(self) -> None:
        """Raises ValueError unless ``axes`` has 6 entries and ``gripper_buttons`` 2 (each -1 or an index)."""
        if len(self.axes) != 6 or len(self.gripper_buttons) != 2 or min([*self.axes, *self.gripper_buttons]) < -1:
            raise ValueError(f"arm_joy_axes {list(self.axes)} needs 6 Joy axes (vx, vy, vz, wx, wy, wz; -1 none) and "
                             f"arm_joy_gripper_buttons {list(self.gripper_buttons)} 2 buttons (close, open; -1 none)")

    def update(self, axes: list[float], buttons: list[int], now: float) -> str | None:
        """Take one Joy message; return why it cannot be used (too few axes/buttons, non-finite), or None."""
        need_axes = max(self.axes) + 1
        need_buttons = max(self.deadman_button, *self.gripper_buttons) + 1
        if len(axes) < need_axes:
            return f"Joy message has {len(axes)} axes; arm_joy_axes={list(self.axes)} need {need_axes}"
        if len(buttons) < need_buttons:
            return (f"Joy message has {len(buttons)} buttons; joy_deadman_button={self.deadman_button} and "
                    f"arm_joy_gripper_buttons={list(self.gripper_buttons)} need {need_buttons}")
        if not np.all(np.isfinite(np.asarray(axes, dtype=np.float64))):
            return f"Joy axes {list(axes)} are not finite"
        self._axes, self._buttons, self._stamp = tuple(axes), tuple(buttons), now
        return None

    def motion(self, now: float):
        if now - self._stamp > self.timeout:
            return None
        if self.deadman_button >= 0 and not self._buttons[self.deadman_button]:
            return None
        raw = np.array([self._axes[a] if a >= 0 else 0.0 for a in self.axes], dtype=np.float64)
        raw[np.abs(raw) < self.deadzone] = 0.0
        raw = np.clip(raw, -1.0, 1.0)
        close, open_ = (b >= 0 and bool(self._buttons[b]) for b in self.gripper_buttons)
        return raw[:3], raw[3:], float(open_) - float(close)

    def reset(self) -> None:
        super().reset()
        self._axes, self._buttons, self._stamp = (), (), -np.inf
