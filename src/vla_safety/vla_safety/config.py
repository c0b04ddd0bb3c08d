"""Node parameters + the robot's hard limits -> :class:`vla_safety.shield.ShieldConfig` (pure; every problem
in one message).

Limits come from two places: the robot contract's hard limits (:mod:`vla_safety.hard_limits`, fixed at
configure) and the limit parameters, which tune inside them (-1: the hard limit). :func:`loosened` is the
run-time rule for what the contract does not bound (timeouts, the workspace box, jerk, help_scale): a change may
only tighten what the shield was configured with.
"""
from __future__ import annotations

import functools
from typing import Any

import numpy as np
import yaml

from vla_core.kinematics import ArmModel
from vla_core.paths import workspace_path
from vla_safety.hard_limits import HardLimits, resolve
from vla_safety.kinematics import JointWorkspace, forward_kinematics
from vla_safety.limits import JointLimits, TwistLimits, WorkspaceBox
from vla_safety.shield import ShieldConfig
from vla_safety.zones import parse_zones

TIMEOUTS = ("teleop_timeout", "policy_timeout", "state_timeout", "sensor_timeout")


def parse_locks(text: str) -> tuple:
    """Locks from a YAML list of {name, priority, timeout}; raises ValueError saying what to fix."""
    try:
        data = yaml.safe_load(text) if text.strip() else []
    except yaml.YAMLError as exc:
        raise ValueError(f"locks is not a valid YAML list: {exc}") from exc
    if not isinstance(data, list):
        raise ValueError("locks must be a YAML list of {name, priority, timeout}")
    locks = []
    for i, item in enumerate(data):
        if not isinstance(item, dict) or not isinstance(item.get("name"), str) or not item["name"].isidentifier():
            raise ValueError(f"locks[{i}] needs a name made of letters, digits and _ (topic safety/lock/<name>)")
        priority, timeout = item.get("priority", 255), item.get("timeout", 0.0)
        if isinstance(priority, bool) or not isinstance(priority, int) or not isinstance(timeout, (int, float)):
            raise ValueError(f"locks[{i}] ({item['name']}): priority is an integer in [0, 255], timeout seconds")
        locks.append((item["name"], int(priority), float(timeout)))
    return tuple(locks)


def _per_axis(name: str, values, n: int, problems: list[str]) -> np.ndarray | None:
    values = np.asarray(values, dtype=np.float64).reshape(-1)
    if values.size == 1:
        return np.full(n, values[0])
    if values.size != n:
        problems.append(f"{name} has {values.size} values; give one per axis ({n}) or one for all")
        return None
    return values


def config_from_params(p: dict[str, Any], hard: HardLimits) -> ShieldConfig:
    """Build and validate the configuration within ``hard``; raises ValueError with every problem found."""
    problems = []

    def attempt(build):
        try:
            return build()
        except ValueError as exc:
            problems.append(str(exc))
            return None

    kind = p["command_type"]
    if hard.command_type != kind:
        raise ValueError(f"hard limits for {hard.command_type} commands cannot bound a {kind} shield")
    twist = joints = None
    if kind == "twist":
        values = [resolve("max_velocity", p["max_velocity"], hard.velocity, hard, problems, "speed"),
                  resolve("max_accel", p["max_accel"], hard.accel, hard, problems, "acceleration"),
                  resolve("max_decel", p["max_decel"], hard.accel, hard, problems, "acceleration"),
                  _per_axis("max_jerk", p["max_jerk"], 6, problems), _per_axis("deadband", p["deadband"], 6, problems)]
        if all(v is not None for v in values):
            twist = attempt(lambda: TwistLimits(*values))
    else:
        named = [n for n in p["joint_names"] if n]
        if named and tuple(named) != hard.names:
            problems.append(f"joint_names {named} must be the contract's action names in order, "
                            f"{list(hard.names)}; leave joint_names empty to use them")
        margin = _per_axis("joint_position_margin", p["joint_position_margin"], hard.dim, problems)
        values = [resolve("joint_max_velocity", p["joint_max_velocity"], hard.velocity, hard, problems, "velocity"),
                  resolve("joint_max_accel", p["joint_max_accel"], hard.accel, hard, problems, "acceleration"),
                  _per_axis("joint_max_step", p["joint_max_step"], hard.dim, problems)]
        if margin is not None and all(v is not None for v in values):
            velocity, accel, step = values
            joints = attempt(lambda: JointLimits(hard.lower + margin, hard.upper - margin, velocity, accel,
                                                 np.where(step < 0, np.inf, step)))
    workspace = joint_workspace = None
    if p["workspace_enabled"] and kind == "joint_position":
        joint_workspace = attempt(lambda: _joint_workspace(p, hard))
    elif p["workspace_enabled"]:
        if len(p["workspace_joints"]) != len(p["workspace_min"]):
            problems.append(f"workspace_joints {p['workspace_joints']} must name one joint per workspace_min axis "
                            f"({len(p['workspace_min'])})")
        workspace = attempt(lambda: WorkspaceBox(p["workspace_min"], p["workspace_max"]))
    zones = attempt(lambda: parse_zones(p["zones"])) or ()
    locks = attempt(lambda: parse_locks(p["locks"])) or ()
    if p["min_height"] >= p["max_height"]:
        problems.append(f"min_height {p['min_height']} must be < max_height {p['max_height']}")
    sensors = tuple(name for name, topic in (("scan", p["scan_topic"]), ("pointcloud", p["pointcloud_topic"]))
                    if topic)
    hold = tuple(n for n in p["hold_command_joints"] if n)
    unknown = [n for n in hold if kind == "twist" or n not in hard.names]
    if unknown:
        problems.append(f"hold_command_joints {unknown} are not joints of this robot's joint_position commands "
                        f"({list(hard.names) if kind != 'twist' else 'command_type is twist'}); name action names "
                        "of the contract, or leave it ['']")
    elif hold and kind != "joint_position":
        problems.append(f"hold_command_joints {list(hold)} applies to joint_position commands only; leave it ['']")
    if problems:
        raise ValueError("; ".join(problems))
    return ShieldConfig(command_type=kind, rate=p["rate"], teleop_timeout=p["teleop_timeout"],
                        policy_timeout=p["policy_timeout"], locks=locks, twist=twist, joints=joints,
                        workspace=workspace, zones=zones, sensors=sensors, sensor_timeout=p["sensor_timeout"],
                        state_timeout=p["state_timeout"],
                        supervisor_timeout=p["supervisor_timeout"] if p["supervisor"] else None,
                        max_clock_jump=p["max_clock_jump"], joint_workspace=joint_workspace,
                        hold_command_joints=tuple(hard.names.index(n) for n in hold), help_scale=p["help_scale"])


def _joint_workspace(p: dict[str, Any], hard: HardLimits) -> JointWorkspace:
    """The end-effector box of a joint-position shield: the box and the forward kinematics of the robot's model
    (loaded once per model, end effector and joints: run-time changes only move the box)."""
    if not p["workspace_model"] or not p["workspace_link"]:
        raise ValueError("the workspace box of joint_position commands needs workspace_model (the robot's URDF or "
                         "MJCF) and workspace_link (the end effector's site or body); set both, or workspace_enabled "
                         "false")
    if len(p["workspace_min"]) != 3:
        raise ValueError(f"the end-effector workspace box needs x, y, z: workspace_min {p['workspace_min']} and "
                         f"workspace_max {p['workspace_max']} must have 3 values each")
    fk = _forward_kinematics(str(workspace_path(p["workspace_model"])), p["workspace_link"], hard.names)
    return JointWorkspace(WorkspaceBox(p["workspace_min"], p["workspace_max"]), fk)


@functools.lru_cache(maxsize=8)
def _forward_kinematics(path: str, link: str, names: tuple[str, ...]) -> ArmModel:
    return forward_kinematics(path, link, names)


def loosened(new: ShieldConfig, configured: ShieldConfig) -> list[str]:
    """What ``new`` (a run-time change) loosens compared with the ``configured`` shield, for the settings the
    contract does not bound: longer timeouts, a larger workspace box, a weaker or disabled jerk limit, a larger
    help_scale."""
    problems = [f"{name} {getattr(new, name):g} > {getattr(configured, name):g} configured"
                for name in TIMEOUTS if getattr(new, name) > getattr(configured, name)]
    box, limit = new.workspace, configured.workspace
    if configured.joint_workspace is not None and new.joint_workspace is not None:
        box, limit = new.joint_workspace.box, configured.joint_workspace.box
    if limit is not None and box is not None and (np.any(box.low < limit.low) or np.any(box.high > limit.high)):
        problems.append(f"workspace [{list(box.low)}, {list(box.high)}] reaches outside the configured "
                        f"[{list(limit.low)}, {list(limit.high)}]")
    if new.help_scale > configured.help_scale:
        problems.append(f"help_scale {new.help_scale:g} > {configured.help_scale:g} configured")
    if configured.twist is not None and new.twist is not None:
        was, now = configured.twist.max_jerk, new.twist.max_jerk
        if np.any((was > 0) & ((now <= 0) | (now > was))):
            problems.append(f"max_jerk {list(now)} is weaker than the configured {list(was)}")
    if problems:
        return [f"run-time changes may only tighten: {'; '.join(problems)}; loosen them in the parameter file "
                f"and restart the shield"]
    return []
