"""Contract codecs: what a robot's messages carry <-> the feature vectors, written once for every node.

Pure functions over plain sequences (no ROS): vla_ros.convert builds and reads the messages with them, and the
sim, teleop, policy, shield and recorder nodes all go through that one path.

* State: a sensor_msgs/JointState (names and parallel position/velocity/effort columns) -> ``observation.state``,
  the contract's joints in the contract's order, each joint's fields in order (joint-major). A joint or a value
  the message lacks raises :class:`StateError`; each node decides what that means for it (the policy proposes
  nothing, the shield drops the message, the recorder keeps the row and marks it invalid).
* Commands: the contract's action type names the message; ``COMMAND_TYPES`` lists them with the fields an
  action may name (Twist: ``linear.x`` ...; arrays and trajectories: one entry per joint, by index).
  :func:`check_command` is the one check of an action vector (dimension, finite, within the contract's
  low/high) and :func:`trajectory_order` the one check of a JointTrajectory's joint names; both raise
  :class:`CommandError`, whose ``reason`` a node counts by.

Arms (docs/arms.md): a position-controlled arm's action is one absolute target per joint, in the contract's
action names order, in the units its joint_states reports (rad, m). A gripper is one more joint in the same
vector and the same message (its opening or finger position, as joint_states reports it), so stopping by
holding the measured positions holds the gripper too.
"""
from __future__ import annotations

from functools import lru_cache
from typing import Mapping, Sequence

import numpy as np

TWIST = "geometry_msgs/msg/Twist"
FLOAT64_ARRAY = "std_msgs/msg/Float64MultiArray"
JOINT_TRAJECTORY = "trajectory_msgs/msg/JointTrajectory"

TWIST_FIELDS = ("linear.x", "linear.y", "linear.z", "angular.x", "angular.y", "angular.z")
# A planar base: forward, sideways, yaw rate (the order a 1-3 value command fills).
PLANAR_TWIST_FIELDS = ("linear.x", "linear.y", "angular.z")
# The command message types a contract may declare -> the fields an action may name (None: any, by index).
COMMAND_TYPES: dict[str, tuple[str, ...] | None] = {TWIST: TWIST_FIELDS, FLOAT64_ARRAY: None,
                                                    JOINT_TRAJECTORY: None}

STATE_FIELDS = ("position", "velocity", "effort")
STATE_FIX = "publish joint_states with every joint and field of the robot contract, finite values"


class StateError(ValueError):
    """A JointState that does not give the contract's state: ``reason`` is a short key to count it by
    (missing_joint, missing_field, field_size, non_finite); ``values`` is the vector with NaN where a value
    was missing (what a recorder keeps, marked invalid)."""

    def __init__(self, reason: str, message: str, values: np.ndarray | None = None):
        super().__init__(message)
        self.reason = reason
        self.values = values


def joint_state_vector(names: Sequence[str], columns: Mapping[str, Sequence[float]], joints: Sequence[str],
                       fields: Sequence[str]) -> np.ndarray:
    """The state vector (float64, joint-major: j0.f0, j0.f1, ..., j1.f0, ...) of a JointState given as its
    ``names`` and ``columns`` (field -> values parallel to ``names``). Raises StateError naming the first
    missing joint or value, or a column in use whose length differs from ``names`` (a malformed message);
    the error's ``values`` holds what was there, NaN elsewhere."""
    index = {n: i for i, n in enumerate(names)}
    out = np.full(len(joints) * len(fields), np.nan)
    problem: StateError | None = None
    k = 0
    for joint in joints:
        i = index.get(joint)
        for f in fields:
            col = columns[f]
            if i is not None and i < len(col):
                out[k] = col[i]
            elif problem is None and i is None:
                problem = StateError("missing_joint", f"joint '{joint}' is missing from joint_states (it has: "
                                                      f"{', '.join(list(names)[:16]) or 'no joints'}); {STATE_FIX}")
            elif problem is None:
                problem = StateError("missing_field", f"joint_states carries no {f} for '{joint}' ({len(col)} {f} "
                                                      f"values for {len(names)} names); {STATE_FIX}")
            k += 1
    if problem is None:
        for f in fields:
            if len(columns[f]) != len(names):
                problem = StateError("field_size", f"joint_states has {len(columns[f])} {f} values for "
                                                   f"{len(names)} names (a malformed message); {STATE_FIX}")
                break
    if problem is not None:
        problem.values = out
        raise problem
    return out


def finite_state(values: np.ndarray, dtype=np.float32) -> np.ndarray:
    """``values`` as ``dtype``; raises StateError (non_finite) for NaN or inf, judged after the cast (1e39 is
    inf as float32)."""
    with np.errstate(over="ignore"):
        vec = np.asarray(values, dtype=dtype)
    if not np.all(np.isfinite(vec)):
        raise StateError("non_finite", f"joint_states has non-finite values {vec.tolist()} (as "
                                       f"{np.dtype(dtype).name}); {STATE_FIX}", vec)
    return vec


class CommandError(ValueError):
    """An action vector or command message a robot must not take: ``reason`` is a short key to count it by
    (dimension, non_finite, out_of_limits, joint_names, no_points, point_size, time_from_start)."""

    def __init__(self, reason: str, message: str):
        super().__init__(message)
        self.reason = reason


def check_command(values, dim: int, names: Sequence[str] = (), low: Sequence[float] | None = None,
                  high: Sequence[float] | None = None) -> np.ndarray:
    """``values`` as a float64 vector of ``dim`` finite values within ``[low, high]`` (when given), or
    CommandError naming the offending values and what to send instead. ``names`` label the entries."""
    try:
        with np.errstate(over="ignore"):
            vec = np.asarray(values, dtype=np.float64).reshape(-1)
    except (TypeError, ValueError) as exc:
        raise CommandError("non_finite", f"command {values!r} is not a vector of numbers ({exc}); send {dim} "
                                         "numbers") from None
    labels = list(names) if len(names) == dim else [f"[{i}]" for i in range(dim)]
    if vec.shape != (dim,):
        raise CommandError("dimension", f"command has {vec.size} values {vec.tolist()[:16]} but this robot takes "
                                        f"{dim} ({', '.join(labels)}); send one value per action name")
    bad = np.flatnonzero(~np.isfinite(vec))
    if bad.size:
        raise CommandError("non_finite", f"command {vec.tolist()} has non-finite values at "
                                         f"{', '.join(labels[i] for i in bad)}; send finite values")
    if low is not None and high is not None:
        lo, hi = np.asarray(low, np.float64), np.asarray(high, np.float64)
        out = np.flatnonzero((vec < lo) | (vec > hi))
        if out.size:
            what = ", ".join(f"{labels[i]} = {vec[i]:g} outside [{lo[i]:g}, {hi[i]:g}]" for i in out)
            raise CommandError("out_of_limits", f"command {what} (the robot contract's action low/high); send "
                                                "values within the limits")
    return vec


def trajectory_order(msg_names: Sequence[str], names: Sequence[str]) -> np.ndarray:
    """Indices that take a JointTrajectory's per-joint values (in ``msg_names`` order) to the contract's
    ``names`` order; CommandError (joint_names) listing the missing, unknown and repeated joints."""
    msg_names = list(msg_names)
    index = {n: i for i, n in enumerate(msg_names)}
    missing = [n for n in names if n not in index]
    extra = [n for n in msg_names if n not in set(names)]
    repeated = sorted({n for n in msg_names if msg_names.count(n) > 1})
    if missing or extra or repeated:
        parts = [f"{label} {items}" for label, items in (("missing", missing), ("unknown", extra),
                                                          ("repeated", repeated)) if items]
        raise CommandError("joint_names", f"trajectory joint_names {msg_names} do not match the robot contract's "
                                          f"action names ({'; '.join(parts)}); send exactly {list(names)} "
                                          "(any order)")
    return np.array([index[n] for n in names], dtype=np.intp)


def twist_axes(fields: Sequence[str]) -> tuple[tuple[str, str], ...]:
    """('linear.x', 'angular.z') -> (('linear', 'x'), ('angular', 'z')); raises ValueError for another name."""
    return _twist_axes(tuple(fields))


@lru_cache(maxsize=64)  # called per command message: parse each field list once
def _twist_axes(fields: tuple[str, ...]) -> tuple[tuple[str, str], ...]:
    bad = [f for f in fields if f not in TWIST_FIELDS]
    if bad:
        raise ValueError(f"{bad} are not Twist fields; use {', '.join(TWIST_FIELDS)}")
    return tuple(tuple(f.split(".")) for f in fields)


def planar_twist_fields(dim: int) -> tuple[str, ...]:
    """The Twist fields of a planar base taking ``dim`` (1..3) values: vx; vx, vy; vx, vy, yaw rate."""
    if not 1 <= dim <= len(PLANAR_TWIST_FIELDS):
        raise ValueError(f"a planar Twist carries 1 to 3 values, not {dim}; use a Float64MultiArray command")
    return PLANAR_TWIST_FIELDS[:dim]
