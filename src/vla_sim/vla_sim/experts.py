"""Scripted experts by name (a backend config's ``expert``, the teleop node's expert device): no rclpy.

Each name maps to a factory taking the expert's keyword options (``max_speed``, ``noise_std``, ``seed``...)
and returning an object with ``reset()`` and ``act(privileged) -> action``. The expert modules are imported
when an expert is built, not when this registry is (the arm's pulls in its kinematics).
"""
from __future__ import annotations

from typing import Any, Callable

from vla_core.registry import Registry

EXPERTS: Registry[Callable[..., Any]] = Registry("scripted expert")


@EXPERTS.register("tabletop")
def tabletop_expert(**options):
    """The tabletop push tasks' expert (vla_sim.expert.ScriptedExpert), planar velocities in m/s."""
    from vla_sim.expert import ScriptedExpert
    return ScriptedExpert(**options)


@EXPERTS.register("arm")
def arm_expert(**options):
    """The arm pick-and-place expert (vla_sim.arm_expert.ArmScriptedExpert), joint targets."""
    from vla_sim.arm_expert import ArmScriptedExpert
    return ArmScriptedExpert(**options)


def make_expert(name: str, **options):
    """A new scripted expert ``name`` (UnknownName, a ValueError naming the experts, if there is none)."""
    return EXPERTS.get(name)(**options)
