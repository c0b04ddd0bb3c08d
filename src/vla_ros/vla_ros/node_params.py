"""Declare ROS parameters from :class:`vla_core.params.ParamSpec` and enforce them at run time."""
from __future__ import annotations

from typing import Any, Sequence

from rcl_interfaces.msg import (FloatingPointRange, IntegerRange, ParameterDescriptor, ParameterType,
                                SetParametersResult)
from rclpy.exceptions import ParameterException
from rclpy.node import Node

from vla_core.params import ParamSpec

_TYPES = {
    "bool": ParameterType.PARAMETER_BOOL, "int": ParameterType.PARAMETER_INTEGER,
    "float": ParameterType.PARAMETER_DOUBLE, "str": ParameterType.PARAMETER_STRING,
    "bool_list": ParameterType.PARAMETER_BOOL_ARRAY, "int_list": ParameterType.PARAMETER_INTEGER_ARRAY,
    "float_list": ParameterType.PARAMETER_DOUBLE_ARRAY, "str_list": ParameterType.PARAMETER_STRING_ARRAY,
}


def descriptor(spec: ParamSpec) -> ParameterDescriptor:
    desc = ParameterDescriptor(
        name=spec.name, type=_TYPES[spec.kind], read_only=spec.read_only,
        description=spec.description + (f" [{spec.unit}]" if spec.unit else ""),
        additional_constraints=f"accepts {spec.accepted()}",
    )
    if spec.range is not None and spec.kind == "float":
        desc.floating_point_range = [FloatingPointRange(from_value=float(spec.range[0]), to_value=float(spec.range[1]))]
    elif spec.range is not None and spec.kind == "int":
        desc.integer_range = [IntegerRange(from_value=int(spec.range[0]), to_value=int(spec.range[1]), step=1)]
    return desc


def declare_specs(node: Node, specs: Sequence[ParamSpec], check_on_set: bool = True) -> list[str]:
    """Declare every spec on ``node``; return the problems with overrides given at start-up.

    A bad override (out of range, wrong type) does not crash the process: the parameter falls back to its
    default and the problem is returned, so that the node can refuse to configure and say why. With
    ``check_on_set`` a parameter callback refuses run-time values the spec does not accept (a managed node
    passes False: its own hook checks, then applies).
    """
    problems = []
    for spec in specs:
        desc = descriptor(spec)
        try:
            node.declare_parameter(spec.name, spec.default, desc)
        except ParameterException as exc:
            node.declare_parameter(spec.name, spec.default, desc, ignore_override=True)
            problems.append(f"parameter '{spec.name}': {exc}; expected {spec.accepted()}")
        else:
            problem = spec.check(node.get_parameter(spec.name).value)
            if problem:
                problems.append(f"parameter '{spec.name}': {problem}")
    if check_on_set:
        by_name = {s.name: s for s in specs}
        node.add_on_set_parameters_callback(lambda params: check_set(by_name, params)[0])
    return problems


def check_set(specs: dict[str, ParamSpec], params) -> tuple[SetParametersResult, dict[str, Any]]:
    """Check rclpy ``params`` being set against ``specs`` (by name): the result, and the spec'd ones as
    ``{name: value}`` coerced to the spec's type (empty when refused). Names without a spec pass."""
    values = {}
    for p in params:
        spec = specs.get(p.name)
        if spec is None:
            continue
        problem = spec.check(_plain(p.value))
        if problem:
            return SetParametersResult(successful=False, reason=f"{p.name}: {problem}"), {}
        values[p.name] = spec.coerce(_plain(p.value))
    return SetParametersResult(successful=True), values


def read_specs(node: Node, specs: Sequence[ParamSpec]) -> dict[str, Any]:
    """Current values of every spec'd parameter, coerced to the spec's type."""
    return {s.name: s.coerce(_plain(node.get_parameter(s.name).value)) for s in specs}


def _plain(value: Any) -> Any:
    # Array parameters come back as array.array / numpy arrays; specs speak plain lists.
    return list(value) if hasattr(value, "__len__") and not isinstance(value, str) else value
