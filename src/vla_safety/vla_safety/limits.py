"""Command limits: velocity smoothing for Twist, joint limits, and a Cartesian workspace box.

Pure numpy. Every function returns the limited command and the rules that changed it as
``[(rule, amount)]``, amount being the norm of the change (SI units), so the shield can report what it did
instead of clipping silently. A rule only ever moves a command toward what the previous tick sent or toward
zero; stopping is never rate-limited (the shield's stop rules bypass these limiters).
"""
from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from vla_core.codecs import TWIST_FIELDS  # noqa: F401 - the Twist fields a command carries, named once

Rules = list[tuple[str, float]]


def _note(rules: Rules, name: str, before: np.ndarray, after: np.ndarray) -> None:
    d = after - before
    change = math.sqrt(float(d.dot(d)))
    if change > 1e-12:
        rules.append((name, change))


def _clip(x: np.ndarray, low, high) -> np.ndarray:
    # np.clip's Python wrapper costs several microseconds per call; the ufuncs do the same work directly.
    return np.minimum(np.maximum(x, low), high)


def _vector(name: str, values, size: int, positive: bool = True, unbounded: bool = False) -> np.ndarray:
    """``values`` as a float array of ``size``; finite (``unbounded``: ±inf allowed, NaN never), >= 0 if
    ``positive``."""
    array = np.asarray(values, dtype=np.float64)
    if array.shape != (size,):
        raise ValueError(f"{name} needs {size} values, got {len(array)}: {list(array)}")
    ok = ~np.isnan(array) if unbounded else np.isfinite(array)
    if not np.all(ok) or (positive and np.any(array < 0)):
        bound = "not NaN" if unbounded else "finite"
        raise ValueError(f"{name} must be {bound}{' and >= 0' if positive else ''}, got {list(array)}")
    return array


@dataclass(frozen=True)
class TwistLimits:
    """Per-axis limits over the six Twist fields (linear xyz m/s, angular xyz rad/s), as Nav2's velocity
    smoother: ``max_velocity`` (0 forbids the axis), ``max_accel`` when speeding up, ``max_decel`` when
    slowing down, ``max_jerk`` (0 disables), ``deadband`` (smaller commands become 0)."""

    max_velocity: tuple
    max_accel: tuple
    max_decel: tuple
    max_jerk: tuple
    deadband: tuple

    def __post_init__(self):
        for name in ("max_velocity", "max_accel", "max_decel", "max_jerk", "deadband"):
            object.__setattr__(self, name, _vector(name, getattr(self, name), 6))
        moving = self.max_velocity > 0
        for name in ("max_accel", "max_decel"):
            if np.any(getattr(self, name)[moving] <= 0):
                raise ValueError(f"{name} must be > 0 on every axis allowed to move (a zero would freeze the "
                                 f"axis), got {list(getattr(self, name))}; use max_velocity 0 to forbid an axis")


def limit_twist(target: np.ndarray, prev_v: np.ndarray, prev_a: np.ndarray, dt: float,
                lim: TwistLimits) -> tuple[np.ndarray, np.ndarray, Rules]:
    """Limit ``target`` (6,) given the previous output ``prev_v`` and its acceleration ``prev_a``.

    Returns (velocity, acceleration, rules). Order: deadband, velocity, jerk, acceleration, then velocity
    again (velocity bounds always win; clipping toward a bounded ``prev_v`` never increases a change).
    """
    rules: Rules = []
    v = np.where(np.abs(target) < lim.deadband, 0.0, target)
    _note(rules, "limit.deadband", target, v)
    clipped = _clip(v, -lim.max_velocity, lim.max_velocity)
    _note(rules, "limit.velocity", v, clipped)
    v = clipped
    dv = v - prev_v
    if (lim.max_jerk > 0).any():
        a = dv / dt
        jerk_on = lim.max_jerk > 0
        a_lim = np.where(jerk_on, _clip(a, prev_a - lim.max_jerk * dt, prev_a + lim.max_jerk * dt), a)
        before = v
        dv = a_lim * dt
        _note(rules, "limit.jerk", before, prev_v + dv)
    speeding_up = (np.abs(prev_v + dv) >= np.abs(prev_v)) & (prev_v * (prev_v + dv) >= 0)
    bound = np.where(speeding_up, lim.max_accel, lim.max_decel) * dt
    before = prev_v + dv
    dv = _clip(dv, -bound, bound)
    _note(rules, "limit.acceleration", before, prev_v + dv)
    out = prev_v + dv
    final = _clip(out, -lim.max_velocity, lim.max_velocity)
    _note(rules, "limit.velocity", out, final)
    return final, (final - prev_v) / dt, rules


@dataclass(frozen=True)
class JointLimits:
    """Per-joint limits: ``lower``/``upper`` positions (rad or m; ±inf: unbounded), ``max_velocity``,
    ``max_accel``, and ``max_step``, the largest change of the command per tick (position for position
    commands, velocity for velocity commands; inf: only velocity and acceleration bound it)."""

    lower: tuple
    upper: tuple
    max_velocity: tuple
    max_accel: tuple
    max_step: tuple

    def __post_init__(self):
        n = len(self.lower)
        if n == 0:
            raise ValueError("joint limits need at least one joint; set joint_lower/joint_upper/...")
        object.__setattr__(self, "lower", _vector("joint lower limit", self.lower, n, False, unbounded=True))
        object.__setattr__(self, "upper", _vector("joint upper limit", self.upper, n, False, unbounded=True))
        for name in ("max_velocity", "max_accel"):
            object.__setattr__(self, name, _vector(f"joint_{name}", getattr(self, name), n))
        object.__setattr__(self, "max_step", _vector("joint_max_step", self.max_step, n, unbounded=True))
        if np.any(self.lower > self.upper):
            raise ValueError(f"joint lower limits {list(self.lower)} must be <= upper limits {list(self.upper)} "
                             f"(joint_position_margin too large?)")

    @property
    def dim(self) -> int:
        return len(self.lower)


def limit_joint_position(target: np.ndarray, prev_q: np.ndarray, prev_v: np.ndarray, dt: float,
                         lim: JointLimits) -> tuple[np.ndarray, np.ndarray, Rules]:
    """Limit a joint position target (n,) moving from ``prev_q`` at ``prev_v``; returns (q, velocity, rules)."""
    rules: Rules = []
    # A reference outside the limits may only move back toward them, never further out.
    low, high = np.minimum(lim.lower, prev_q), np.maximum(lim.upper, prev_q)
    q = _clip(target, lim.lower, lim.upper)
    _note(rules, "limit.position", target, q)
    step = q - prev_q
    max_step = np.minimum(lim.max_step, lim.max_velocity * dt)
    clipped = _clip(step, -max_step, max_step)
    _note(rules, "limit.step" if np.any(lim.max_step < lim.max_velocity * dt) else "limit.velocity",
          prev_q + step, prev_q + clipped)
    v = clipped / dt
    v_acc = _clip(v, prev_v - lim.max_accel * dt, prev_v + lim.max_accel * dt)
    v_acc = _clip(v_acc, -max_step / dt, max_step / dt)
    _note(rules, "limit.acceleration", prev_q + v * dt, prev_q + v_acc * dt)
    out = _clip(prev_q + v_acc * dt, low, high)
    return out, (out - prev_q) / dt, rules


def limit_joint_velocity(target: np.ndarray, prev_v: np.ndarray, q: np.ndarray | None, dt: float,
                         lim: JointLimits) -> tuple[np.ndarray, Rules]:
    """Limit a joint velocity command (n,) from ``prev_v``; with measured positions ``q`` no joint is driven
    past its position limits within the next tick. Returns (velocity, rules)."""
    rules: Rules = []
    v = _clip(target, -lim.max_velocity, lim.max_velocity)
    _note(rules, "limit.velocity", target, v)
    bound = np.minimum(lim.max_step, lim.max_accel * dt)
    stepped = _clip(v, prev_v - bound, prev_v + bound)
    _note(rules, "limit.acceleration", v, stepped)
    v = stepped
    if q is not None:
        # Only the motion toward a limit is bounded; moving back from beyond a limit stays allowed.
        hi = np.maximum((lim.upper - q) / dt, 0.0)
        lo = np.minimum((lim.lower - q) / dt, 0.0)
        bounded = _clip(v, lo, hi)
        _note(rules, "limit.position", v, bounded)
        v = bounded
    return v, rules


@dataclass(frozen=True)
class WorkspaceBox:
    """An axis-aligned box (base_link, m) the end effector must stay in."""

    low: tuple
    high: tuple

    def __post_init__(self):
        n = len(self.low)
        if n not in (2, 3):
            raise ValueError(f"workspace_min/workspace_max need 2 (x, y) or 3 (x, y, z) values, got {n}")
        object.__setattr__(self, "low", _vector("workspace_min", self.low, n, positive=False))
        object.__setattr__(self, "high", _vector("workspace_max", self.high, n, positive=False))
        if np.any(self.low >= self.high):
            raise ValueError(f"workspace_min {list(self.low)} must be < workspace_max {list(self.high)}")

    def clamp_target(self, p: np.ndarray) -> tuple[np.ndarray, Rules]:
        """An end-effector position target, clamped into the box."""
        rules: Rules = []
        out = _clip(p, self.low, self.high)
        _note(rules, "limit.workspace", p, out)
        return out, rules

    def limit_velocity(self, p: np.ndarray, v: np.ndarray, dt: float) -> tuple[np.ndarray, Rules]:
        """A Cartesian velocity (first len(low) linear axes) that keeps position ``p`` inside the box over
        the next ``dt``; motion back into the box from outside stays allowed."""
        rules: Rules = []
        n = len(self.low)
        hi = np.maximum((self.high - p) / dt, 0.0)
        lo = np.minimum((self.low - p) / dt, 0.0)
        out = v.copy()
        out[:n] = _clip(v[:n], lo, hi)
        _note(rules, "limit.workspace", v, out)
        return out, rules
