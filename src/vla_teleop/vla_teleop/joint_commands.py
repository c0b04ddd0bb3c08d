"""Joint commands as the robot contract says (no ROS): absolute targets or increments, inside the contract's limits.

Every arm device computes an absolute joint target (the action vector, in the contract's action-name order,
gripper included) and turns it into the command it sends with :func:`JointLimits.command`, the one place where
the contract's ``action.mode`` and ``low``/``high`` apply:

* ``absolute``: the command is the target, clipped to ``low``/``high`` (the joint position limits);
* ``delta``: the command is the target minus the joint positions measured now, clipped to ``low``/``high``
  (which bound the increment in a delta contract).

A value that had to be clipped is counted per joint, never dropped silently.
"""
from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field

import numpy as np

MODES = ("absolute", "delta")


@dataclass
class JointLimits:
    """The contract's action: names, ``low``/``high`` (of the command), optional ``max_velocity`` per joint
    (units/s) and the mode. ``clipped`` counts clipped values per joint name; ``commands_clipped`` counts
    commands with any clipped value."""

    names: tuple[str, ...]
    low: np.ndarray
    high: np.ndarray
    mode: str = "absolute"
    max_velocity: np.ndarray | None = None
    clipped: Counter = field(default_factory=Counter)
    commands_clipped: int = 0

    def __post_init__(self) -> None:
        self.names = tuple(self.names)
        self.low = np.asarray(self.low, dtype=np.float64)
        self.high = np.asarray(self.high, dtype=np.float64)
        n = len(self.names)
        problems = []
        if self.low.shape != (n,) or self.high.shape != (n,):
            problems.append(f"low {self.low.tolist()} and high {self.high.tolist()} need one value per joint "
                            f"{list(self.names)}")
        elif not np.all(self.low < self.high):
            problems.append(f"every low must be below its high (low {self.low.tolist()}, high {self.high.tolist()})")
        if self.mode not in MODES:
            problems.append(f"mode {self.mode!r}: expected absolute or delta")
        if self.max_velocity is not None:
            self.max_velocity = np.asarray(self.max_velocity, dtype=np.float64)
            if self.max_velocity.shape != (n,) or not np.all(self.max_velocity > 0):
                problems.append(f"max_velocity {self.max_velocity.tolist()} needs one value > 0 per joint")
        if problems:
            raise ValueError("joint limits: " + "; ".join(problems))

    @classmethod
    def from_action(cls, action) -> "JointLimits":
        """From a :class:`vla_core.contract.ActionSpec` (names, low, high, max_velocity, mode)."""
        return cls(tuple(action.names), np.array(action.low), np.array(action.high), action.mode,
                   None if action.max_velocity is None else np.array(action.max_velocity))

    @property
    def dim(self) -> int:
        return len(self.names)

    def command(self, target: np.ndarray, measured: np.ndarray | None) -> np.ndarray:
        """The command for the absolute joint ``target`` (n,): the target (absolute) or ``target - measured``
        (delta, which needs ``measured``), clipped to ``low``/``high``; clipped joints are counted.

        Raises:
            ValueError: a wrong length or non-finite value, or delta mode without a measurement.
        """
        target = np.asarray(target, dtype=np.float64)
        if target.shape != (self.dim,) or not np.all(np.isfinite(target)):
            raise ValueError(f"joint target {target.tolist()} needs {self.dim} finite values ({list(self.names)})")
        if self.mode == "delta":
            if measured is None:
                raise ValueError("a delta command needs the measured joint positions; none are fresh")
            value = target - np.asarray(measured, dtype=np.float64)
        else:
            value = target
        return self.clip(value)

    def clip(self, value: np.ndarray, low: np.ndarray | None = None, high: np.ndarray | None = None) -> np.ndarray:
        """``value`` clipped to ``low``/``high`` (default: the contract's), counting each clipped joint."""
        out = np.clip(value, self.low if low is None else low, self.high if high is None else high)
        hit = np.flatnonzero(out != value)
        if hit.size:
            self.commands_clipped += 1
            self.clipped.update(self.names[i] for i in hit)
        return out
