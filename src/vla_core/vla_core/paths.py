"""Workspace-relative paths in parameter files ("params/robots/x.yaml", "models")."""
from __future__ import annotations

import os
from pathlib import Path


def workspace_path(path: str | Path) -> Path:
    """``path`` as given when absolute or present from the working directory, else under $VLA_WS."""
    p = Path(path).expanduser()
    if p.is_absolute() or p.exists() or not os.environ.get("VLA_WS"):
        return p
    return Path(os.environ["VLA_WS"]) / p
