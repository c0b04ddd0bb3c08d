"""Teleop devices behind one interface (no ROS): each turns its input into a planar velocity command.

A device returns ``None`` from :meth:`TeleopDevice.command` while it is not engaged (no key held, deadman
released, no fresh state): the teleop node then publishes no command and reports no intervention, so a
policy (through the shield's mux) keeps control. Units: m/s in the robot base frame (REP 103: x forward,
y left).
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Callable, ClassVar

import numpy as np

DEVICES: dict[str, type["TeleopDevice"]] = {}


def register_device(name: str) -> Callable[[type], type]:
    def wrap(cls: type) -> type:
        if name in DEVICES:
            raise ValueError(f"teleop device '{name}' registered twice")
        cls.name = name
        DEVICES[name] = cls
        return cls
    return wrap


def make_device(name: str, **kwargs) -> "TeleopDevice":
    if name not in DEVICES:
        raise ValueError(f"unknown teleop device '{name}'; choose one of {', '.join(sorted(DEVICES))}")
    return DEVICES[name](**kwargs)


class TeleopDevice:
    name: ClassVar[str] = ""

    def command(self, now: float) -> np.ndarray | None:
        """The command at time ``now`` (seconds), or None when the operator is not commanding."""
        raise NotImplementedError

    def reset(self) -> None:
        """Forget held input (on activation)."""


@register_device("expert")
@dataclass
class ExpertDevice(TeleopDevice):
    """The simulator's scripted expert, fed the privileged state the sim robot publishes."""

    policy: Callable[[np.ndarray], np.ndarray]
    on_episode: Callable[[], None] = lambda: None
    state_timeout: float = 0.5
    _state: np.ndarray | None = field(default=None, repr=False)
    _stamp: float = field(default=-np.inf, repr=False)
    _episode: int = field(default=-1, repr=False)

    def observe(self, privileged: np.ndarray, episode: int, now: float) -> None:
        if episode != self._episode:
            self._episode = episode
            self.on_episode()
        self._state, self._stamp = np.asarray(privileged, dtype=np.float64), now

    def command(self, now: float) -> np.ndarray | None:
        if self._state is None or now - self._stamp > self.state_timeout:
            return None
        return np.asarray(self.policy(self._state), dtype=np.float64)

    def reset(self) -> None:
        self._state, self._stamp, self._episode = None, -np.inf, -1


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
