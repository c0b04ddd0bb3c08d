"""Teleop devices behind one interface (no ROS): each turns its input into a command.

The devices here command a planar base (velocity); the arm devices (end-effector jog in ``vla_teleop.arm_jog``,
leader arm in ``vla_teleop.leader_arm``) command the robot contract's joints and register in the same registry.

A device returns ``None`` from :meth:`TeleopDevice.command` while it is not engaged (no key held, deadman
released, no fresh state): the teleop node then publishes no command and reports no intervention, so a
policy (through the shield's mux) keeps control. Units: m/s in the robot base frame (REP 103: x forward,
y left).
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Callable, ClassVar

import numpy as np

from vla_core.registry import Registry
from vla_sim.corrector import TakeoverRule, tabletop_target_distance

DEVICES: Registry[type["TeleopDevice"]] = Registry("teleop device", name_attr="name")
#: Class decorator: register a TeleopDevice under a name (the ``device`` parameter's value).
register_device = DEVICES.register


def make_device(name: str, **kwargs) -> "TeleopDevice":
    """A new device ``name`` (UnknownName, a ValueError naming the accepted devices, if there is none)."""
    return DEVICES.get(name)(**kwargs)


def device_from_params(name: str, params: dict, **kwargs) -> "TeleopDevice":
    """A new device ``name`` whose fields come from the teleop node's parameters (its ``PARAMETERS``),
    plus ``kwargs`` (callables such as the expert's policy)."""
    cls = DEVICES.get(name)
    return cls(**{field_name: params[param] for param, field_name in cls.PARAMETERS.items()}, **kwargs)


# A privileged state longer than this is not a simulator's state (the tabletop's is 15 + 3 * objects values).
MAX_PRIVILEGED_VALUES = 4096


def finite_state(privileged) -> np.ndarray:
    """``privileged`` as a flat float64 vector, or ValueError naming what is wrong (empty, too long, not
    numbers, non-finite). The check every privileged state passes before a device uses it."""
    try:
        state = np.asarray(privileged, dtype=np.float64).ravel()
    except (TypeError, ValueError) as exc:
        raise ValueError(f"privileged state is not a vector of numbers: {exc}") from None
    if state.size == 0 or state.size > MAX_PRIVILEGED_VALUES:
        raise ValueError(f"privileged state has {state.size} values; expected 1 to {MAX_PRIVILEGED_VALUES}")
    bad = np.flatnonzero(~np.isfinite(state))
    if bad.size:
        raise ValueError(f"privileged state has {bad.size} non-finite values (first at index {int(bad[0])}: "
                         f"{state[bad[0]]})")
    return state


def check_tabletop_state(privileged) -> np.ndarray:
    """``privileged`` as a flat float64 vector if it is a state the tabletop's scripted expert can act on
    (``vla_sim``'s TabletopPushEnv layout, version 1): right version and length for its block and zone
    counts, finite values, target indices among the blocks and zones, positive sizes and period.

    Raises:
        ValueError: naming the first problem; the state must be dropped.
    """
    from vla_sim.envs.tabletop import PRIVILEGED_HEADER_SIZE, TabletopPushEnv  # the simulator owns the layout

    state = finite_state(privileged)
    if state.size >= 3 and not all(float(c).is_integer() and 0 < c <= 64 for c in state[1:3]):
        raise ValueError(f"privileged state counts {state[1]:g} blocks and {state[2]:g} zones; expected whole "
                         "numbers from 1 to 64")
    s = TabletopPushEnv.decode_privileged(state)  # ValueError: wrong version or length
    problems = []
    if not float(state[3]).is_integer() or not 0 <= s.target_block < len(s.block_pos):
        problems.append(f"target block {state[3]:g} is not one of the {len(s.block_pos)} blocks")
    if not float(state[4]).is_integer() or not 0 <= s.target_zone < len(s.zone_pos):
        problems.append(f"target zone {state[4]:g} is not one of the {len(s.zone_pos)} zones")
    sizes = {"block radius": s.block_radius, "zone half size": s.zone_half_size, "pusher radius": s.pusher_radius,
             "table half size": s.table_half_size, "max speed": s.max_speed, "dt": s.dt}
    problems += [f"{name} {value:g} is not positive" for name, value in sizes.items() if not value > 0]
    if problems:
        raise ValueError(f"privileged state (header of {PRIVILEGED_HEADER_SIZE} values) is not usable: "
                         + "; ".join(problems))
    return state


class TeleopDevice:
    name: ClassVar[str] = ""
    # Teleop node parameter -> field of this device it sets (at configure and at run time).
    PARAMETERS: ClassVar[dict[str, str]] = {}
    # The input the node feeds it: "sim_state" (observe), "joy" (update), "keys" (press) or "leader"
    # (observe_leader: a leader arm's joint_states).
    INPUT: ClassVar[str] = ""
    # False: a planar velocity (vx, vy) for a Twist robot; True: the robot contract's joint command (the action
    # vector in the contract's mode, vla_teleop.joint_commands).
    COMMANDS_JOINTS: ClassVar[bool] = False

    def needs_joint_states(self) -> bool:
        """Whether the node must feed the robot's measured joint positions (``observe_joints``)."""
        return False

    def command(self, now: float) -> np.ndarray | None:
        """The command at time ``now`` (seconds), or None when the operator is not commanding."""
        raise NotImplementedError

    def reset(self) -> None:
        """Forget held input (on activation)."""


@register_device("expert")
@dataclass
class ExpertDevice(TeleopDevice):
    """The simulator's scripted expert, fed the privileged state the sim robot publishes.

    ``check`` validates every state before it is kept (:func:`finite_state`; the teleop node passes
    :func:`check_tabletop_state` for the tabletop's expert): a state the expert cannot act on is refused
    when it arrives, not when the next command is computed."""

    PARAMETERS: ClassVar[dict[str, str]] = {"input_timeout": "state_timeout"}
    INPUT: ClassVar[str] = "sim_state"

    policy: Callable[[np.ndarray], np.ndarray]
    on_episode: Callable[[], None] = lambda: None
    state_timeout: float = 0.5
    check: Callable[[np.ndarray], np.ndarray] = finite_state
    _state: np.ndarray | None = field(default=None, repr=False)
    _stamp: float = field(default=-np.inf, repr=False)
    _episode: int = field(default=-1, repr=False)

    def observe(self, privileged: np.ndarray, episode: int, now: float) -> None:
        """Keep the state of ``episode`` received at ``now`` (s).

        Raises:
            ValueError: ``check`` refused the state (the previous state is kept, and goes stale).
        """
        state = self.check(privileged)
        if episode != self._episode:
            self._episode = episode
            self.on_episode()
        self._state, self._stamp = state, now

    def command(self, now: float) -> np.ndarray | None:
        if self._state is None or now - self._stamp > self.state_timeout:
            return None
        return np.asarray(self.policy(self._state), dtype=np.float64)

    def reset(self) -> None:
        self._state, self._stamp, self._episode = None, -np.inf, -1


@register_device("corrector")
@dataclass(kw_only=True)
class CorrectorDevice(TakeoverRule, TeleopDevice):
    """A scripted operator: watches the privileged sim state while a policy drives, and takes over with the
    scripted expert when the policy stops making progress (:class:`vla_sim.corrector.TakeoverRule`: no
    progress for ``patience`` s, then ``policy(privileged)`` for ``takeover`` s, at most ``max_takeovers`` per
    episode; mode "always" drives every step, "off" only watches).

    Progress is ``distance(privileged)``: by default the target block's distance to the target zone centre
    (m). Only the block counts, so a policy still travelling to the block makes no progress. The scripted
    expert's first approach alone took up to 3.3 s on TabletopPush-v0 (4.9 s on TabletopPushHard-v0; seeds
    0-199), so a ``patience`` shorter than that also takes over from good policies at the start of some episodes.
    ``on_takeover()`` is called when a takeover starts (and on each new episode in mode "always"): reset the
    expert.
    """

    PARAMETERS: ClassVar[dict[str, str]] = {
        "input_timeout": "state_timeout", "corrector_patience": "patience", "corrector_takeover": "takeover",
        "corrector_min_progress": "min_progress", "corrector_max_takeovers": "max_takeovers",
        "corrector_mode": "mode"}
    INPUT: ClassVar[str] = "sim_state"

    policy: Callable[[np.ndarray], np.ndarray]
    distance: Callable[[np.ndarray], float] = tabletop_target_distance
    on_takeover: Callable[[], None] = lambda: None
    state_timeout: float = 0.5
    check: Callable[[np.ndarray], np.ndarray] = finite_state  # validates each state first (see ExpertDevice)
    _state: np.ndarray | None = field(default=None, init=False, repr=False)
    _stamp: float = field(default=-np.inf, init=False, repr=False)

    def __post_init__(self) -> None:
        problems = [] if self.state_timeout > 0 else [f"state_timeout={self.state_timeout!r} must be > 0 s"]
        try:
            super().__post_init__()
        except ValueError as exc:
            problems.insert(0, str(exc).removeprefix("corrector: "))
        if problems:
            raise ValueError("corrector: " + "; ".join(problems))

    def observe(self, privileged: np.ndarray, episode: int, now: float) -> None:
        """Take the privileged state of ``episode`` at time ``now`` (s) and decide who is in control.

        Raises:
            ValueError: ``check`` refused the state or ``distance`` cannot read it (state unchanged).
        """
        state = self.check(privileged)
        took_over = self.update(self.distance(state), episode, now)  # refuses a non-finite distance first
        self._state, self._stamp = state, now
        if took_over:
            self.on_takeover()

    def command(self, now: float) -> np.ndarray | None:
        if self._state is None or now - self._stamp > self.state_timeout or not self.drives(now):
            return None
        return np.asarray(self.policy(self._state), dtype=np.float64)

    def reset(self) -> None:
        """Forget the state and any takeover; the policy is in control. ``takeovers`` keeps counting."""
        self._state, self._stamp = None, -np.inf
        super().reset()


# Keys: w/s forward/back (+x/-x), a/d left/right (+y/-y), space stops. Arrow keys map onto them.
KEY_DIRECTIONS = {"w": (1.0, 0.0), "s": (-1.0, 0.0), "a": (0.0, 1.0), "d": (0.0, -1.0), " ": (0.0, 0.0)}
ARROWS = {"\x1b[A": "w", "\x1b[B": "s", "\x1b[D": "a", "\x1b[C": "d"}


@register_device("keyboard")
@dataclass
class KeyboardDevice(TeleopDevice):
    """Terminal keys; a key press commands ``speed`` in its direction for ``hold_time`` seconds.

    Terminals repeat a held key every ~30-50 ms after an initial delay, so ``hold_time`` bridges the gap
    and a released key stops the robot within ``hold_time``.
    """

    PARAMETERS: ClassVar[dict[str, str]] = {"keyboard_speed": "speed", "keyboard_hold_time": "hold_time"}
    INPUT: ClassVar[str] = "keys"

    speed: float = 0.1
    hold_time: float = 0.6
    _direction: tuple[float, float] = (0.0, 0.0)
    _until: float = -np.inf

    def press(self, key: str, now: float) -> bool:
        """Handle one key (or escape sequence); return False if it is not a teleop key."""
        key = ARROWS.get(key, key.lower())
        if key not in KEY_DIRECTIONS:
            return False
        self._direction = KEY_DIRECTIONS[key]
        self._until = now + self.hold_time
        return True

    def command(self, now: float) -> np.ndarray | None:
        if now > self._until:
            return None
        return self.speed * np.asarray(self._direction, dtype=np.float64)

    def reset(self) -> None:
        self._direction, self._until = (0.0, 0.0), -np.inf


@register_device("joy")
@dataclass
class JoyDevice(TeleopDevice):
    """sensor_msgs/Joy: two stick axes scaled to ``max_speed``; commands only while the deadman is held."""

    PARAMETERS: ClassVar[dict[str, str]] = {"max_speed": "max_speed", "joy_axis_x": "axis_x",
                                            "joy_axis_y": "axis_y", "joy_deadman_button": "deadman_button",
                                            "input_timeout": "timeout"}
    INPUT: ClassVar[str] = "joy"

    max_speed: float = 0.25
    axis_x: int = 1          # left stick up/down -> forward/back
    axis_y: int = 0          # left stick left/right -> left/right
    deadman_button: int = 4  # -1: no deadman (not recommended)
    deadzone: float = 0.05
    timeout: float = 0.5
    _axes: tuple = ()
    _buttons: tuple = ()
    _stamp: float = -np.inf

    def update(self, axes: list[float], buttons: list[int], now: float) -> str | None:
        """Take one Joy message; return why it cannot be used (too few axes/buttons, non-finite), or None."""
        needed_axes = max(self.axis_x, self.axis_y) + 1
        if len(axes) < needed_axes:
            return f"Joy message has {len(axes)} axes; axis_x={self.axis_x}/axis_y={self.axis_y} need {needed_axes}"
        if self.deadman_button >= len(buttons):
            return f"Joy message has {len(buttons)} buttons; deadman_button={self.deadman_button} does not exist"
        if not np.all(np.isfinite(np.asarray(axes, dtype=np.float64))):
            return f"Joy axes {list(axes)} are not finite"
        self._axes, self._buttons, self._stamp = tuple(axes), tuple(buttons), now
        return None

    def command(self, now: float) -> np.ndarray | None:
        if now - self._stamp > self.timeout:
            return None
        if self.deadman_button >= 0 and not self._buttons[self.deadman_button]:
            return None
        raw = np.array([self._axes[self.axis_x], self._axes[self.axis_y]], dtype=np.float64)
        raw[np.abs(raw) < self.deadzone] = 0.0
        return self.max_speed * np.clip(raw, -1.0, 1.0)

    def reset(self) -> None:
        self._axes, self._buttons, self._stamp = (), (), -np.inf


# The arm devices register themselves in DEVICES (they build on TeleopDevice above).
from vla_teleop import arm_jog as _arm_jog  # noqa: E402,F401
from vla_teleop import leader_arm as _leader_arm  # noqa: E402,F401
