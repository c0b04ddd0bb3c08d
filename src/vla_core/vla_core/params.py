"""Parameter specifications: declared once, typed, described, ranged, validated without ROS.

Nodes declare their ROS parameters from a tuple of :class:`ParamSpec` (see ``vla_ros.node_params``), and
``vla up`` validates parameter files against the same specs before any process starts, so a bad value is
reported with its file, key and accepted values instead of as a crash inside a node.
"""
from __future__ import annotations

import difflib
import math
from dataclasses import dataclass
from typing import Any, Iterable, Mapping, Sequence

ParamValue = bool | int | float | str | list

# Parameters every rclpy node has or accepts that are not part of a node's own spec.
ROS_BUILTIN_PARAMS = frozenset({"use_sim_time", "start_type_description_service"})


@dataclass(frozen=True)
class ParamSpec:
    """One ROS parameter.

    ``default`` fixes the type (bool, int, float, str, or a homogeneous list of them). ``range`` is an
    inclusive (low, high) bound for numbers (for lists, for every element). ``choices`` restricts strings.
    ``read_only`` marks topology (topics, devices, model choice) that may not change at run time;
    limits and gains may.
    """

    name: str
    default: ParamValue
    description: str
    range: tuple[float, float] | None = None
    choices: tuple[str, ...] | None = None
    read_only: bool = False
    unit: str = ""

    def __post_init__(self):
        if self.range is not None and self.range[0] > self.range[1]:
            raise ValueError(f"ParamSpec {self.name}: range {self.range} has low > high")
        if self.choices is not None and self.default not in self.choices:
            raise ValueError(f"ParamSpec {self.name}: default {self.default!r} not in choices {self.choices}")
        problem = self.check(self.default)
        if problem:
            raise ValueError(f"ParamSpec {self.name}: default is invalid: {problem}")

    @property
    def kind(self) -> str:
        """'bool', 'int', 'float', 'str', or '<element>_list'."""
        if isinstance(self.default, list):
            element = type(self.default[0]).__name__ if self.default else "str"
            return f"{element}_list"
        return type(self.default).__name__

    def accepted(self) -> str:
        """Human description of the accepted values, for error messages."""
        if self.choices is not None:
            return "one of " + ", ".join(repr(c) for c in self.choices)
        text = {"bool": "true or false", "int": "an integer", "float": "a number", "str": "a string"}.get(
            self.kind, f"a list of {self.kind.removesuffix('_list')}"
        )
        if self.range is not None:
            text += f" in [{self.range[0]:g}, {self.range[1]:g}]"
        return text + (f" ({self.unit})" if self.unit else "")

    def coerce(self, value: Any) -> ParamValue:
        """Return ``value`` as this parameter's type (ints are accepted for floats), or raise ValueError."""
        kind = self.kind
        if kind.endswith("_list"):
            if not isinstance(value, (list, tuple)):
                raise ValueError(f"expected {self.accepted()}, got {value!r}")
            return [_coerce_scalar(kind.removesuffix("_list"), v) for v in value]
        return _coerce_scalar(kind, value)

    def check(self, value: Any) -> str | None:
        """Return why ``value`` is not acceptable, or None."""
        try:
            value = self.coerce(value)
        except ValueError as exc:
            return str(exc)
        for v in value if isinstance(value, list) else [value]:
            if isinstance(v, float) and not math.isfinite(v):
                return f"{v!r} is not finite; expected {self.accepted()}"
            if self.range is not None and isinstance(v, (int, float)) and not isinstance(v, bool):
                if not self.range[0] <= v <= self.range[1]:
                    return f"{v!r} is out of range; expected {self.accepted()}"
            if self.choices is not None and v not in self.choices:
                return f"{v!r} is not accepted; expected {self.accepted()}"
        return None


def _coerce_scalar(kind: str, value: Any) -> ParamValue:
    if kind == "bool":
        if not isinstance(value, bool):
            raise ValueError(f"expected true or false, got {value!r}")
        return value
    if kind == "int":
        if isinstance(value, bool) or not isinstance(value, int):
            raise ValueError(f"expected an integer, got {value!r}")
        return value
    if kind == "float":
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise ValueError(f"expected a number, got {value!r}")
        return float(value)
    if not isinstance(value, str):
        raise ValueError(f"expected a string, got {value!r}")
    return value


def validate(specs: Sequence[ParamSpec], values: Mapping[str, Any], where: str) -> list[str]:
    """Every problem with ``values`` (a node's ros__parameters) against ``specs``, as messages naming
    ``where`` (e.g. 'params/sim_robot.yaml: sim_robot'), the key and the accepted values."""
    by_name = {s.name: s for s in specs}
    problems = []
    for key, value in values.items():
        if key in ROS_BUILTIN_PARAMS or key.startswith("qos_overrides."):
            continue
        spec = by_name.get(key)
        if spec is None:
            close = difflib.get_close_matches(key, by_name, n=1)
            hint = f"did you mean '{close[0]}'?" if close else "known parameters: " + ", ".join(sorted(by_name))
            problems.append(f"{where}: unknown parameter '{key}'; {hint}")
            continue
        problem = spec.check(value)
        if problem:
            problems.append(f"{where}: parameter '{key}' = {value!r}: {problem}")
    return problems


def defaults(specs: Iterable[ParamSpec]) -> dict[str, ParamValue]:
    """The default value of every parameter, by name."""
    return {s.name: s.default for s in specs}


# Declared by every managed node (vla_ros.node_base.ManagedNode) in addition to its own parameters.
MANAGED_NODE_PARAMS = (
    ParamSpec("heartbeat_period", 0.2, "Period of the ~/heartbeat the lifecycle manager watches",
              range=(0.01, 10.0), unit="s", read_only=True),
)
