"""The policy artifact: ``models/<name>/<version>/``, self-describing and verified before use (no torch, no ROS).

An artifact holds ``manifest.json`` (what the policy needs and produces, how it was trained, the sha256 of every
file, a golden input/output pair), ``policy.onnx`` (takes raw features, returns actions in SI units: the
normaliser is part of the graph), safetensors weights, and optional TensorRT engines named by GPU architecture,
TensorRT version and precision. :func:`write_artifact` writes one atomically; :func:`verify_artifact` checks
every checksum before any file is deserialised; :func:`compatibility` lists every mismatch with a contract.
"""
from __future__ import annotations

import hashlib
import json
import os
import re
import shutil
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Mapping

import numpy as np

from vla_core.contract import RobotContract

FORMAT = "vla-policy-artifact/1"
MANIFEST = "manifest.json"
REQUIRED = ("format", "name", "version", "created", "policy_type", "fps", "features", "action", "onnx", "golden",
            "files")
EXECUTION_MODES = ("temporal_ensemble", "receding_horizon")
VERSION = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]*$")


class ArtifactError(ValueError):
    """An artifact that must not be loaded; the message names the file or field and what is wrong."""


@dataclass(frozen=True)
class Artifact:
    path: Path
    manifest: dict[str, Any]

    @property
    def name(self) -> str:
        return self.manifest["name"]

    @property
    def version(self) -> str:
        return self.manifest["version"]

    def file(self, key: str) -> Path:
        return self.path / self.manifest[key]["file"] if isinstance(self.manifest[key], dict) else self.path / key

    def golden(self) -> tuple[dict[str, np.ndarray], dict[str, np.ndarray], float]:
        """(inputs, outputs, atol) of the golden pair; loaded without pickle."""
        g = self.manifest["golden"]
        with np.load(self.path / g["file"], allow_pickle=False) as data:
            inputs = {k.removeprefix("input:"): data[k] for k in data.files if k.startswith("input:")}
            outputs = {k.removeprefix("output:"): data[k] for k in data.files if k.startswith("output:")}
        return inputs, outputs, float(g["atol"])


def sha256_file(path: Path, chunk: int = 1 << 20) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        while block := f.read(chunk):
            digest.update(block)
    return digest.hexdigest()


def save_golden(path: Path, inputs: Mapping[str, np.ndarray], outputs: Mapping[str, np.ndarray]) -> None:
    arrays = {f"input:{k}": np.asarray(v) for k, v in inputs.items()}
    arrays.update({f"output:{k}": np.asarray(v) for k, v in outputs.items()})
    np.savez(path, **arrays)


def write_artifact(models_dir: Path, manifest: dict[str, Any], files: Mapping[str, Path | bytes]) -> Artifact:
    """Write ``models_dir/<name>/<version>/`` atomically: stage, checksum, fsync, rename.

    ``files`` maps names inside the artifact to source paths or bytes; ``manifest['files']`` is filled in.
    A crash leaves either no artifact or a complete one; an existing version is never overwritten.
    """
    name, version = manifest.get("name", ""), manifest.get("version", "")
    for label, value in (("name", name), ("version", version)):
        if not isinstance(value, str) or not VERSION.match(value):
            raise ArtifactError(f"manifest {label} {value!r} must be letters, digits, '.', '_' or '-'")
    final = Path(models_dir) / name / version
    if final.exists():
        raise ArtifactError(f"{final} already exists; artifacts are immutable: choose a new version")
    final.parent.mkdir(parents=True, exist_ok=True)
    stage = Path(tempfile.mkdtemp(prefix=f".{version}.", dir=final.parent))
    try:
        checksums = {}
        for rel, src in files.items():
            dst = stage / rel
            dst.parent.mkdir(parents=True, exist_ok=True)
            if isinstance(src, (bytes, bytearray)):
                dst.write_bytes(src)
            else:
                shutil.copyfile(src, dst)
            checksums[rel] = sha256_file(dst)
        manifest = {**manifest, "format": FORMAT, "files": checksums}
        manifest.setdefault("created", time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()))
        problems = _schema_problems(manifest)
        if problems:
            raise ArtifactError("manifest is incomplete: " + "; ".join(problems))
        (stage / MANIFEST).write_text(json.dumps(manifest, indent=2, sort_keys=True))
        for p in stage.rglob("*"):
            if p.is_file():
                with open(p, "rb") as f:
                    os.fsync(f.fileno())
        os.rename(stage, final)
        dir_fd = os.open(final.parent, os.O_RDONLY)
        try:
            os.fsync(dir_fd)
        finally:
            os.close(dir_fd)
    except BaseException:
        shutil.rmtree(stage, ignore_errors=True)
        raise
    return Artifact(final, manifest)


def resolve(spec: str, models_dir: Path) -> Path:
    """An artifact directory from a path, ``name/version``, or ``name`` (its newest version)."""
    path = Path(spec)
    if (path / MANIFEST).is_file():
        return path
    candidate = Path(models_dir) / spec
    if (candidate / MANIFEST).is_file():
        return candidate
    if candidate.is_dir():
        versions = sorted((p for p in candidate.iterdir() if (p / MANIFEST).is_file()),
                          key=lambda p: p.stat().st_mtime)
        if versions:
            return versions[-1]
    known = sorted(str(p.parent.relative_to(models_dir)) for p in Path(models_dir).glob(f"*/*/{MANIFEST}"))
    raise ArtifactError(f"no policy artifact '{spec}' (a path, NAME or NAME/VERSION under {models_dir}); "
                        f"available: {', '.join(known) or 'none (train one first)'}")


def verify_artifact(path: Path) -> Artifact:
    """Read the manifest and check every listed file's sha256, and that no listed file is missing.

    Nothing but the manifest (JSON) and raw bytes is read: no model is deserialised before this passes.
    """
    path = Path(path)
    try:
        manifest = json.loads((path / MANIFEST).read_text())
    except FileNotFoundError:
        raise ArtifactError(f"{path}: no {MANIFEST}; is this a policy artifact directory?") from None
    except json.JSONDecodeError as exc:
        raise ArtifactError(f"{path / MANIFEST} is not valid JSON ({exc}); the artifact is corrupt") from None
    problems = _schema_problems(manifest)
    if problems:
        raise ArtifactError(f"{path / MANIFEST}: " + "; ".join(problems))
    bad = []
    for rel, expected in manifest["files"].items():
        f = path / rel
        if not f.is_file():
            bad.append(f"{rel} is missing")
        elif sha256_file(f) != expected:
            bad.append(f"{rel} has sha256 {sha256_file(f)[:12]}…, the manifest says {expected[:12]}…")
    if bad:
        raise ArtifactError(f"{path}: checksum verification failed: " + "; ".join(bad) +
                            " (the artifact was modified or corrupted; re-export it)")
    return Artifact(path, manifest)


def _schema_problems(m: Any) -> list[str]:
    if not isinstance(m, dict):
        return ["the manifest must be a JSON object"]
    problems = [f"missing '{k}'" for k in REQUIRED if k not in m]
    if problems:
        return problems
    if m["format"] != FORMAT:
        problems.append(f"format {m['format']!r} is not {FORMAT!r}")
    action = m["action"]
    if not isinstance(action, dict) or int(action.get("chunk_size", 0)) < 1:
        problems.append("action.chunk_size must be a positive integer")
    elif action.get("execution") not in EXECUTION_MODES:
        problems.append(f"action.execution {action.get('execution')!r} must be one of {', '.join(EXECUTION_MODES)}")
    if "action" not in m["features"]:
        problems.append("features has no 'action'")
    for key in ("onnx", "golden"):
        if not isinstance(m[key], dict) or m[key].get("file") not in m["files"]:
            problems.append(f"{key}.file must name a file listed in 'files'")
    return problems


def compatibility(manifest: Mapping[str, Any], contract: RobotContract, encoder_id: str | None = None) -> list[str]:
    """Every way the artifact does not fit the running robot contract (and text encoder), or []."""
    problems = []
    feats, served = manifest["features"], contract.features()
    for name, spec in feats.items():
        if name == "observation.language":
            if encoder_id is not None and spec.get("encoder_id") != encoder_id:
                problems.append(f"instruction embeddings: the policy was trained with encoder "
                                f"'{spec.get('encoder_id')}', the language node serves '{encoder_id}'")
            continue
        if name not in served:
            problems.append(f"feature '{name}' is not served by robot contract '{contract.robot}' "
                            f"(it serves: {', '.join(served)})")
            continue
        if list(spec["shape"]) != list(served[name]["shape"]):
            problems.append(f"feature '{name}': the policy expects shape {list(spec['shape'])}, the contract "
                            f"serves {served[name]['shape']}")
        names = spec.get("names")
        if names and served[name].get("names") and list(names) != list(served[name]["names"]):
            problems.append(f"feature '{name}': the policy expects {list(names)}, the contract has "
                            f"{served[name]['names']}")
    if abs(float(manifest["fps"]) - contract.fps) > 1e-6:
        problems.append(f"fps: the policy was trained at {manifest['fps']} Hz, the contract runs at {contract.fps} Hz")
    return problems
