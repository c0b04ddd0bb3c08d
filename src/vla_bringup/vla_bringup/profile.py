"""Bring-up profiles: which nodes, with which parameter files and remappings, in which order.

A profile is ``params/profiles/<name>.yaml``. ``vla up`` and the launch files in ``launch/`` both turn it
into the same :class:`NodeEntry` list, so what the tests bring up is what ``ros2 launch`` runs.
Paths in a profile are relative to the parameters directory (``params/``). No ROS imports here.
"""
from __future__ import annotations

import os
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Sequence

import yaml

from vla_core.errors import ConfigError
from vla_core.params import MANAGED_NODE_PARAMS, ParamSpec, validate

PROFILE_KEYS = {"description", "use_sim_time", "manager", "nodes"}
NODE_KEYS = {"name", "package", "executable", "params", "remap", "managed", "namespace"}
MANAGER_KEYS = {"name", "params"}
NAME = re.compile(r"^[A-Za-z][A-Za-z0-9_]*$")


@dataclass(frozen=True)
class NodeEntry:
    """One process of a profile: enough for `vla up` (argv) and for launch_ros (Node/LifecycleNode)."""

    name: str
    package: str
    executable: str
    params_files: tuple[str, ...] = ()
    remap: tuple[tuple[str, str], ...] = ()
    parameters: dict[str, Any] = field(default_factory=dict)  # inline overrides, applied last
    managed: bool = True
    namespace: str = ""

    def ros_args(self) -> list[str]:
        """``--ros-args`` for this node, in the order launch_ros applies them."""
        args = ["--ros-args", "-r", f"__node:={self.name}"]
        if self.namespace:
            args += ["-r", f"__ns:={self.namespace}"]
        for f in self.params_files:
            args += ["--params-file", f]
        for key, value in self.parameters.items():
            args += ["-p", f"{key}:={yaml.safe_dump(value, default_flow_style=True).strip().removesuffix('...').strip()}"]
        for src, dst in self.remap:
            args += ["-r", f"{src}:={dst}"]
        return args


@dataclass(frozen=True)
class Profile:
    name: str
    path: Path
    description: str
    use_sim_time: bool
    nodes: tuple[NodeEntry, ...]
    manager: NodeEntry

    def entries(self) -> list[NodeEntry]:
        """Every process to start, managed nodes in bring-up order, then the lifecycle manager."""
        return [*self.nodes, self.manager]


def default_params_dir() -> Path:
    """$VLA_PARAMS, else $VLA_WS/params, else the params/ installed with vla_bringup, else ./params."""
    if os.environ.get("VLA_PARAMS"):
        return Path(os.environ["VLA_PARAMS"])
    if os.environ.get("VLA_WS") and (Path(os.environ["VLA_WS"]) / "params").is_dir():
        return Path(os.environ["VLA_WS"]) / "params"
    try:
        from ament_index_python.packages import get_package_share_directory
        share = Path(get_package_share_directory("vla_bringup")) / "params"
        if share.is_dir():
            return share
    except Exception:  # noqa: BLE001 - no ament index: fall through to the working directory
        pass
    return Path.cwd() / "params"


def available_profiles(params_dir: Path) -> list[str]:
    return sorted(p.stem for p in (params_dir / "profiles").glob("*.yaml"))


def parse_overrides(pairs: Sequence[str]) -> dict[str, dict[str, Any]]:
    """``node.param=value`` strings (value in YAML) -> {node: {param: value}}."""
    out: dict[str, dict[str, Any]] = {}
    for pair in pairs:
        key, sep, raw = pair.partition("=")
        node, dot, param = key.partition(".")
        if not sep or not dot or not node or not param:
            raise ConfigError(f"--set {pair!r}: expected NODE.PARAM=VALUE, e.g. sim_robot.real_time_factor=4")
        try:
            out.setdefault(node, {})[param] = yaml.safe_load(raw)
        except yaml.YAMLError as exc:
            raise ConfigError(f"--set {pair!r}: the value is not valid YAML ({exc})") from exc
    return out


def load_profile(name_or_path: str, params_dir: Path | None = None,
                 overrides: dict[str, dict[str, Any]] | None = None,
                 spec_lookup: Callable[[str, str], Sequence[ParamSpec] | None] | None = None) -> Profile:
    """Load and validate a profile; raise one ConfigError listing every problem.

    ``spec_lookup(package, executable)`` returns a node's parameter specs (or None if unknown): with it,
    every parameter file and override is checked against the node's declared types, ranges and choices.
    """
    params_dir = Path(params_dir or default_params_dir())
    path = Path(name_or_path)
    if path.suffix != ".yaml":
        path = params_dir / "profiles" / f"{name_or_path}.yaml"
    if not path.is_file():
        known = available_profiles(params_dir)
        raise ConfigError(f"unknown profile '{name_or_path}': {path} does not exist; available profiles: "
                          f"{', '.join(known) or 'none'} (in {params_dir / 'profiles'})")
    try:
        data = yaml.safe_load(path.read_text()) or {}
    except yaml.YAMLError as exc:
        raise ConfigError(f"not valid YAML: {exc}", str(path)) from exc
    problems: list[str] = []
    where = str(path)
    if not isinstance(data, dict):
        raise ConfigError("a profile is a mapping with keys: " + ", ".join(sorted(PROFILE_KEYS)), where)
    for key in sorted(set(data) - PROFILE_KEYS):
        problems.append(f"{where}: unknown key '{key}'; accepted keys: {', '.join(sorted(PROFILE_KEYS))}")
    use_sim_time = data.get("use_sim_time", False)
    if not isinstance(use_sim_time, bool):
        problems.append(f"{where}: use_sim_time = {use_sim_time!r}: expected true or false")
    overrides = {k: dict(v) for k, v in (overrides or {}).items()}

    def resolve(file: Any, ctx: str) -> str | None:
        if not isinstance(file, str):
            problems.append(f"{ctx}: expected a file name, got {file!r}")
            return None
        p = Path(file) if Path(file).is_absolute() else params_dir / file
        if not p.is_file():
            problems.append(f"{ctx}: parameter file {p} does not exist")
            return None
        return str(p)

    def check_values(entry_name: str, package: str, executable: str, files: list[str], inline: dict, ctx: str,
                     managed: bool):
        specs = spec_lookup(package, executable) if spec_lookup else None
        if specs is None:
            return
        specs = (*MANAGED_NODE_PARAMS, *specs) if managed else tuple(specs)
        for f in files:
            for node_key, values in _params_in_file(f, entry_name, problems).items():
                problems.extend(validate(specs, values, f"{f}: {node_key}"))
        overrides_problems = validate(specs, inline, f"{ctx} (overrides)")
        problems.extend(overrides_problems)
        if not overrides_problems:
            # ROS parameters are strictly typed: `--set x.rate=5` must reach a float parameter as 5.0.
            by_name = {s.name: s for s in specs}
            inline.update({k: by_name[k].coerce(v) for k, v in inline.items() if k in by_name})

    nodes: list[NodeEntry] = []
    raw_nodes = data.get("nodes")
    if not isinstance(raw_nodes, list) or not raw_nodes:
        problems.append(f"{where}: 'nodes' must be a non-empty list of {{name, package, executable, params}}")
        raw_nodes = []
    seen = set()
    for i, raw in enumerate(raw_nodes):
        ctx = f"{where}: nodes[{i}]"
        if not isinstance(raw, dict):
            problems.append(f"{ctx}: expected a mapping with keys {', '.join(sorted(NODE_KEYS))}")
            continue
        for key in sorted(set(raw) - NODE_KEYS):
            problems.append(f"{ctx}: unknown key '{key}'; accepted keys: {', '.join(sorted(NODE_KEYS))}")
        missing = [k for k in ("name", "package", "executable") if not isinstance(raw.get(k), str)]
        if missing:
            problems.append(f"{ctx}: missing {', '.join(missing)}")
            continue
        name = raw["name"]
        ctx = f"{where}: nodes[{i}] ({name})"
        if not NAME.match(name):
            problems.append(f"{ctx}: node name '{name}' must be a ROS name: letters, digits, underscores")
        if name in seen:
            problems.append(f"{ctx}: node name '{name}' appears twice")
        seen.add(name)
        files = [f for f in (resolve(f, f"{ctx}.params") for f in raw.get("params") or []) if f]
        remap = raw.get("remap") or {}
        if not isinstance(remap, dict):
            problems.append(f"{ctx}.remap: expected a mapping from topic to topic")
            remap = {}
        inline = overrides.pop(name, {})
        check_values(name, raw["package"], raw["executable"], files, inline, ctx, bool(raw.get("managed", True)))
        if use_sim_time is True:
            inline = {"use_sim_time": True, **inline}
        nodes.append(NodeEntry(name, raw["package"], raw["executable"], tuple(files),
                               tuple((str(k), str(v)) for k, v in remap.items()), inline,
                               bool(raw.get("managed", True)), raw.get("namespace", "")))

    raw_manager = data.get("manager") or {}
    if not isinstance(raw_manager, dict):
        problems.append(f"{where}: manager: expected a mapping with keys name, params")
        raw_manager = {}
    for key in sorted(set(raw_manager) - MANAGER_KEYS):
        problems.append(f"{where}: manager: unknown key '{key}'; accepted keys: {', '.join(sorted(MANAGER_KEYS))}")
    manager_name = raw_manager.get("name", "lifecycle_manager")
    manager_files = [f for f in (resolve(raw_manager["params"], f"{where}: manager.params")
                                 if raw_manager.get("params") else None,) if f]
    manager_inline = overrides.pop(manager_name, {})
    check_values(manager_name, "vla_bringup", "lifecycle_manager", manager_files, manager_inline, f"{where}: manager",
                 managed=False)
    manager_inline["node_names"] = [n.name for n in nodes if n.managed]
    manager = NodeEntry(manager_name, "vla_bringup", "lifecycle_manager", tuple(manager_files), (), manager_inline,
                        managed=False)
    for node in overrides:
        problems.append(f"--set {node}.…: no node named '{node}' in profile {path.stem}; nodes: "
                        f"{', '.join([n.name for n in nodes] + [manager_name])}")
    if problems:
        raise ConfigError(problems)
    return Profile(path.stem, path, str(data.get("description", "")), bool(use_sim_time), tuple(nodes), manager)


def _params_in_file(path: str, node_name: str, problems: list[str]) -> dict[str, dict]:
    """The ros__parameters in ``path`` that apply to ``node_name`` ('/**', 'name', '/name')."""
    try:
        data = yaml.safe_load(Path(path).read_text()) or {}
    except yaml.YAMLError as exc:
        problems.append(f"{path}: not valid YAML: {exc}")
        return {}
    if not isinstance(data, dict):
        problems.append(f"{path}: expected '<node_name>: ros__parameters: {{...}}'")
        return {}
    out = {}
    for key, body in data.items():
        if key not in ("/**", node_name, f"/{node_name}"):
            continue
        if not isinstance(body, dict) or not isinstance(body.get("ros__parameters"), dict):
            problems.append(f"{path}: {key}: expected a 'ros__parameters' mapping")
            continue
        out[key] = body["ros__parameters"]
    if not out and not any(k in ("/**",) for k in data):
        problems.append(f"{path}: has no section for node '{node_name}' (keys: {', '.join(map(str, data))}); "
                        f"write '{node_name}: ros__parameters: ...'")
    return out
