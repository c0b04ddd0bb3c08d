"""A profile as launch_ros keyword arguments (used by launch/vla.launch.py; no launch imports here)."""
from __future__ import annotations

from pathlib import Path
from typing import Any

from vla_bringup.profile import load_profile


def launch_entries(profile: str, params_dir: str | None = None) -> list[dict[str, Any]]:
    """One dict per process: package, executable, name, namespace, parameters, remappings, managed."""
    loaded = load_profile(profile, Path(params_dir) if params_dir else None)
    out = []
    for e in loaded.entries():
        parameters: list[Any] = list(e.params_files)
        if e.parameters:
            parameters.append(dict(e.parameters))
        out.append({"package": e.package, "executable": e.executable, "name": e.name, "namespace": e.namespace,
                    "parameters": parameters, "remappings": list(e.remap), "managed": e.managed})
    return out
