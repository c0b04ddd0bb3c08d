"""Node parameters -> :class:`vla_safety.shield.ShieldConfig` (pure; every problem in one message)."""
from __future__ import annotations

from typing import Any

import yaml

from vla_safety.limits import JointLimits, TwistLimits, WorkspaceBox
from vla_safety.shield import ShieldConfig
from vla_safety.zones import parse_zones


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


def config_from_params(p: dict[str, Any]) -> ShieldConfig:
    """Build and validate the configuration; raises ValueError with every problem found."""
    problems = []

    def attempt(build):
        try:
            return build()
        except ValueError as exc:
            problems.append(str(exc))
            return None

    kind = p["command_type"]
    twist = attempt(lambda: TwistLimits(p["max_velocity"], p["max_accel"], p["max_decel"], p["max_jerk"],
                                        p["deadband"])) if kind == "twist" else None
    joints = None
    if kind != "twist":
        n = len(p["joint_names"])
        lists = {k: p[k] for k in ("joint_lower", "joint_upper", "joint_max_velocity", "joint_max_accel",
                                   "joint_max_step")}
        wrong = [f"{k} has {len(v)}" for k, v in lists.items() if len(v) != n]
        if wrong:
            problems.append(f"joint_names has {n} joints but {', '.join(wrong)} values; give one per joint")
        else:
            joints = attempt(lambda: JointLimits(p["joint_lower"], p["joint_upper"], p["joint_max_velocity"],
                                                 p["joint_max_accel"], p["joint_max_step"]))
    workspace = None
    if p["workspace_enabled"]:
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
    if problems:
        raise ValueError("; ".join(problems))
    return ShieldConfig(command_type=kind, rate=p["rate"], teleop_timeout=p["teleop_timeout"],
                        policy_timeout=p["policy_timeout"], locks=locks, twist=twist, joints=joints,
                        workspace=workspace, zones=zones, sensors=sensors, sensor_timeout=p["sensor_timeout"],
                        state_timeout=p["state_timeout"])
