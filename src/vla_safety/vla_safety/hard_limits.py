"""The robot's physical limits, from its contract: the bounds no shield parameter may exceed.

Pure. :func:`hard_limits` reads them from a :class:`vla_core.contract.RobotContract` once, at configure; they
never change while the shield runs (a new contract needs a restart). The shield's own limit parameters are
tunings inside them: a parameter beyond a hard limit fails configure, or is refused at run time, with a
message naming both values (:func:`resolve`). ``-1`` in a limit parameter means "the hard limit".

Per command type:

- ``twist``: the contract's action is a Twist; ``low``/``high`` bound the speed of the fields it lists
  (the smaller magnitude, since the shield's limits are symmetric) and every other field is forbidden
  (speed and acceleration 0); ``max_velocity`` may bound them further; ``max_acceleration`` bounds the
  change of speed.
- ``joint_position``: ``low``/``high`` are joint positions, ``max_velocity`` joint velocities,
  ``max_acceleration`` joint accelerations; the commands are Float64MultiArray or JointTrajectory, as the
  contract's action type says.
- ``joint_velocity``: ``low``/``high`` (and ``max_velocity``) bound joint velocities; positions are not bounded
  by the contract.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from vla_core import codecs
from vla_core.contract import RobotContract
from vla_safety.limits import TWIST_FIELDS

TWIST_TYPE, ARRAY_TYPE, TRAJECTORY_TYPE = codecs.TWIST, codecs.FLOAT64_ARRAY, codecs.JOINT_TRAJECTORY
# The command messages a shield of each command type reads and sends (the contract's action type picks one).
MESSAGE_TYPES = {"twist": (TWIST_TYPE,), "joint_position": (ARRAY_TYPE, TRAJECTORY_TYPE),
                 "joint_velocity": (ARRAY_TYPE,)}
# In a limit parameter, this value (or any negative one) stands for the hard limit of that axis.
HARD = -1.0


@dataclass(frozen=True)
class HardLimits:
    """Per axis (the six Twist fields, or one per joint in ``names`` order): ``velocity`` (>= 0; 0 forbids the
    axis), ``accel`` (inf: not declared), and for joint positions ``lower``/``upper`` (±inf: not declared).
    ``source`` names where they come from, for messages."""

    command_type: str
    names: tuple[str, ...]
    velocity: np.ndarray
    accel: np.ndarray
    lower: np.ndarray
    upper: np.ndarray
    source: str = "the robot contract"

    @property
    def dim(self) -> int:
        return len(self.names)

    @classmethod
    def unbounded(cls, command_type: str, names) -> "HardLimits":
        """No hard limit on any axis (a contract that declares none)."""
        n = len(names)
        inf = np.full(n, np.inf)
        return cls(command_type, tuple(names), inf, inf, -inf, inf, "no contract")


def hard_limits(contract: RobotContract, command_type: str) -> HardLimits:
    """The hard limits ``contract`` declares for a shield sending ``command_type`` commands; raises ValueError
    when the contract's action does not fit that command type."""
    action, where = contract.action, f"contract {contract.source or contract.robot}"
    expected = MESSAGE_TYPES[command_type]
    if action.type not in expected:
        raise ValueError(f"command_type {command_type} sends {' or '.join(expected)}, but the {where} declares an "
                         f"action of type {action.type}; set contract to this robot's contract or change command_type")
    if action.mode != "absolute":
        # Position limits, the workspace box and holds are checked on targets; an increment is not one.
        raise ValueError(f"the {where} declares action.mode {action.mode}: the shield checks absolute joint "
                         "targets only; have the policy and teleop send absolute targets (mode absolute)")
    low, high = np.array(action.low), np.array(action.high)
    declared_v = np.array(action.max_velocity) if action.max_velocity else np.full(action.dim, np.inf)
    declared_a = np.array(action.max_acceleration) if action.max_acceleration else np.full(action.dim, np.inf)
    if command_type == "twist":
        velocity, accel = np.zeros(6), np.zeros(6)
        for i, name in enumerate(action.fields):
            k = TWIST_FIELDS.index(name)
            velocity[k] = min(max(min(-low[i], high[i]), 0.0), declared_v[i])
            accel[k] = declared_a[i]
        inf = np.full(6, np.inf)
        return HardLimits(command_type, TWIST_FIELDS, velocity, accel, -inf, inf, where)
    if command_type == "joint_position":
        return HardLimits(command_type, tuple(action.names), declared_v, declared_a, low, high, where)
    velocity = np.minimum(np.maximum(np.minimum(-low, high), 0.0), declared_v)
    inf = np.full(action.dim, np.inf)
    return HardLimits(command_type, tuple(action.names), velocity, declared_a, -inf, inf, where)


def resolve(name: str, values, hard: np.ndarray, limits: HardLimits, problems: list[str],
            what: str = "limit") -> np.ndarray | None:
    """Limit parameter ``name`` (one value per axis, or one for all) with -1 replaced by the hard limit
    ``hard`` (one of ``limits``' arrays); every value must lie within it. Problems are appended, naming the
    parameter, the axis and both values."""
    axes = limits.names
    values = np.asarray(values, dtype=np.float64).reshape(-1)
    n = len(hard)
    if values.size == 1:
        values = np.full(n, values[0])
    if values.size != n:
        problems.append(f"{name} has {values.size} values; give one per axis ({n}: {', '.join(axes)}) or one for all")
        return None
    out = np.where(values < 0, hard, values)
    undeclared = [a for a, v, h in zip(axes, values, hard) if v < 0 and not np.isfinite(h)]
    if undeclared:
        problems.append(f"{name}: the {limits.source} declares no {what} for {', '.join(undeclared)}; set {name} "
                        f"(or declare it in the contract)")
        return None
    over = [f"{a} {v:g} > hard limit {h:g}" for a, v, h in zip(axes, out, hard) if v > h + 1e-12]
    if over:
        problems.append(f"{name} exceeds the robot's hard limits from the {limits.source} ({', '.join(over)}); "
                        f"keep it within them (a hard limit changes only with the contract, on restart)")
        return None
    return out
