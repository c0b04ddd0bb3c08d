"""The policy artifact: ``models/<name>/<version>/``, self-describing and verified before use (no torch, no ROS).

An artifact holds ``manifest.json`` (what the policy needs and produces, how it was trained, the sha256 of every
file, a golden input/output pair), ``policy.onnx`` (takes raw features, returns actions in SI units: the
normaliser is part of the graph), safetensors weights, and optional TensorRT engines named by GPU architecture,
TensorRT version and precision. :func:`write_artifact` writes one atomically; :func:`verify_artifact` checks
the manifest (:func:`manifest_problems`: every problem at once) and every checksum before any file is
deserialised; :func:`compatibility` lists every mismatch with a contract.
"""
from __future__ import annotations

import hashlib
import json
import math
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
# Names, versions, feature names and file path parts: one directory entry each, never '.', '..' or a path.
NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]*$")
MAX_NAME_CHARS = 128
MAX_SPEC_CHARS = 1024  # a ~/load_policy request: a path, NAME or NAME/VERSION
SHA256 = re.compile(r"^[0-9a-f]{64}$")
IMAGE_DTYPES = ("video", "image")
DTYPES = IMAGE_DTYPES + ("float32", "float64", "float16", "int64", "int32", "uint8", "bool")
MAX_FEATURE_DIMS = 4
MAX_CHUNK_SIZE = 10_000


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
        """(inputs, outputs, atol) of the golden pair; loaded without pickle. Raises ArtifactError when the file
        is not an .npz of numeric arrays with at least one input and one output (a matching checksum only says
        the file is the one exported, not that the export was sound)."""
        g = self.manifest["golden"]
        path = self.path / g["file"]
        try:
            data = np.load(path, allow_pickle=False)
            if not isinstance(data, np.lib.npyio.NpzFile):
                raise ValueError("it holds a single array, not named input:/output: arrays")
            with data:
                inputs = {k.removeprefix("input:"): data[k] for k in data.files if k.startswith("input:")}
                outputs = {k.removeprefix("output:"): data[k] for k in data.files if k.startswith("output:")}
        except Exception as exc:  # noqa: BLE001 - zipfile, numpy and OS errors all mean: unreadable
            raise ArtifactError(f"{path} cannot be read as an .npz archive ({type(exc).__name__}: {exc}); "
                                "re-export the artifact") from None
        problems = [] if inputs and outputs else ["it needs at least one 'input:<name>' and one 'output:<name>' array"]
        problems += [f"'{k}' has dtype {v.dtype}, not a number" for k, v in {**inputs, **outputs}.items()
                     if not (np.issubdtype(v.dtype, np.number) or v.dtype == np.bool_)]
        if problems:
            raise ArtifactError(f"{path}: " + "; ".join(problems) + "; re-export the artifact")
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
    bad = [p for p in (name_problem("manifest name", name), name_problem("manifest version", version)) if p]
    if bad:
        raise ArtifactError("; ".join(bad))
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
        problems = manifest_problems(manifest)
        if problems:
            raise ArtifactError(f"manifest has {len(problems)} problem(s): " + "; ".join(problems))
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
    """An artifact directory from a path, ``name/version``, or ``name`` (its newest version).

    The spec is checked before it touches the file system: at most MAX_SPEC_CHARS characters, no control
    characters, no '..' part; a registry spec is NAME or NAME/VERSION of valid names (so it stays inside
    ``models_dir``). Raises ArtifactError saying what is wrong.
    """
    if not isinstance(spec, str) or not spec:
        raise ArtifactError("no artifact named: give a path, NAME or NAME/VERSION under the models directory")
    if len(spec) > MAX_SPEC_CHARS:
        raise ArtifactError(f"artifact spec {_short(spec)} has {len(spec)} characters, at most {MAX_SPEC_CHARS}: "
                            "give a path, NAME or NAME/VERSION")
    if any(ord(c) < 32 or ord(c) == 127 for c in spec):
        raise ArtifactError(f"artifact spec {_short(spec)} holds control characters: give a path, NAME or "
                            "NAME/VERSION")
    if ".." in Path(spec).parts:
        raise ArtifactError(f"artifact spec {_short(spec)} contains '..': give an absolute path, NAME or "
                            "NAME/VERSION")
    path = Path(spec)
    if _is_file(path / MANIFEST):
        return path
    parts = spec.split("/")
    bad = [p for p in (name_problem("name", part) for part in parts) if p] if len(parts) <= 2 else \
        ["it has more than one '/' and is not an artifact directory"]
    if bad:
        raise ArtifactError(f"no policy artifact {_short(spec)}: " + "; ".join(bad) +
                            f" (give a path, NAME or NAME/VERSION under {models_dir})")
    candidate = Path(models_dir) / spec
    if (candidate / MANIFEST).is_file():
        return candidate
    if candidate.is_dir():
        # A '.'-prefixed directory is a version still being written (write_artifact's stage): never a candidate.
        versions = sorted((p for p in candidate.iterdir() if not p.name.startswith(".") and (p / MANIFEST).is_file()),
                          key=lambda p: p.stat().st_mtime)
        if versions:
            return versions[-1]
    known = sorted(str(p.parent.relative_to(models_dir)) for p in Path(models_dir).glob(f"*/*/{MANIFEST}")
                   if not p.parent.name.startswith("."))
    raise ArtifactError(f"no policy artifact {_short(spec)} (a path, NAME or NAME/VERSION under {models_dir}); "
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
    problems = manifest_problems(manifest)
    if problems:
        raise ArtifactError(f"{path / MANIFEST} has {len(problems)} problem(s): " + "; ".join(problems) +
                            " (re-export the artifact)")
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


def name_problem(label: str, value: Any) -> str | None:
    """Why ``value`` cannot be a name, version or file-name part of an artifact, or None."""
    if not isinstance(value, str):
        return f"{label} must be a string, not {type(value).__name__}"
    if not value:
        return f"{label} is empty"
    if len(value) > MAX_NAME_CHARS:
        return f"{label} {_short(value)} has {len(value)} characters, at most {MAX_NAME_CHARS}"
    if not NAME.match(value):
        return (f"{label} {_short(value)} may hold only letters, digits, '.', '_' and '-', starting with a letter "
                "or digit (no '/', no '..')")
    return None


def manifest_problems(m: Any) -> list[str]:
    """Every way ``m`` is not a valid manifest, all at once (LeRobot's validate_frame style), or []."""
    if not isinstance(m, dict):
        return [f"the manifest must be a JSON object, not {type(m).__name__}"]
    problems = [f"missing '{k}'" for k in REQUIRED if k not in m]
    if "format" in m and m["format"] != FORMAT:
        problems.append(f"format {_short(m['format'])} is not {FORMAT!r}")
    problems += [p for p in (name_problem(k, m[k]) for k in ("name", "version") if k in m) if p]
    if "policy_type" in m:
        problems += [p for p in [name_problem("policy_type", m["policy_type"])] if p]
    if "created" in m and not isinstance(m["created"], str):
        problems.append(f"created must be a string (ISO 8601), not {type(m['created']).__name__}")
    if "fps" in m and not _number(m["fps"], low=0.0, strict=True):
        problems.append(f"fps {_short(m['fps'])} must be a positive number (Hz)")
    files = m.get("files")
    if "files" in m:
        problems += _files_problems(files)
    listed = files if isinstance(files, dict) else None  # None: 'files' itself is wrong, said once above
    features = m.get("features")
    if "features" in m:
        problems += _features_problems(features)
    if "action" in m:
        problems += _action_problems(m["action"])
    for key in ("onnx", "golden"):
        if key in m:
            problems += _file_entry_problems(key, m[key], listed)
    onnx = m.get("onnx")
    if isinstance(onnx, dict):
        problems += _onnx_io_problems(onnx, features if isinstance(features, dict) else None)
    golden = m.get("golden")
    if isinstance(golden, dict) and "atol" not in golden:
        problems.append("golden has no atol (the largest allowed difference from the golden outputs)")
    elif isinstance(golden, dict) and not _number(golden["atol"], low=0.0):
        problems.append(f"golden.atol {_short(golden['atol'])} must be a finite number >= 0 (the largest "
                        "allowed difference from the golden outputs)")
    if "history" in m:
        problems += _history_problems(m["history"], features if isinstance(features, dict) else None)
        fed = onnx.get("inputs") if isinstance(onnx, dict) else None
        names = m["history"].get("features") if isinstance(m["history"], dict) else None
        if isinstance(fed, dict) and isinstance(names, list):
            problems += [f"history.features: {_short(n)} is no input of the model (onnx.inputs)" for n in names
                         if isinstance(n, str) and n not in fed]
    engines = m.get("engines")
    if engines is not None:
        if not isinstance(engines, list):
            problems.append(f"engines must be a list, not {type(engines).__name__}")
        else:
            for i, entry in enumerate(engines):
                problems += _file_entry_problems(f"engines[{i}]", entry, listed)
                if isinstance(entry, dict) and not isinstance(entry.get("kind"), str):
                    problems.append(f"engines[{i}].kind must be a string such as 'tensorrt'")
    return problems


MAX_HISTORY = 64
HISTORY_PADDING = ("first",)


def _history_problems(history: Any, features: dict | None) -> list[str]:
    """Problems of the ``history`` entry: the policy takes the last ``n_obs_steps`` values of ``features``
    (images and the state; never the action or the instruction), the first one repeated before an episode's
    start (``padding: first``)."""
    if not isinstance(history, dict):
        return [f"history must be a mapping with n_obs_steps, features and padding, not a {type(history).__name__}"]
    problems = []
    steps = history.get("n_obs_steps")
    if not (_positive_int(steps) and 2 <= steps <= MAX_HISTORY):
        problems.append(f"history.n_obs_steps {_short(steps)} must be an integer in [2, {MAX_HISTORY}]")
    names = history.get("features")
    if not (isinstance(names, list) and names and all(isinstance(n, str) for n in names)):
        problems.append(f"history.features {_short(names)} must be a non-empty list of feature names")
    else:
        for name in names:
            if name in ("action", "observation.language"):
                problems.append(f"history.features: {name} has no history (observations only)")
            elif features is not None and name not in features:
                problems.append(f"history.features: {_short(name)} is not one of the manifest's features")
    if history.get("padding") not in HISTORY_PADDING:
        problems.append(f"history.padding {_short(history.get('padding'))} must be one of "
                        f"{', '.join(HISTORY_PADDING)}")
    return problems


def history_steps(manifest: Mapping[str, Any]) -> dict[str, int]:
    """Feature -> how many of its last values the policy takes (its manifest's ``history``); {} without one."""
    history = manifest.get("history")
    if not isinstance(history, dict):
        return {}
    return {name: int(history["n_obs_steps"]) for name in history.get("features", ())}


def _files_problems(files: Any) -> list[str]:
    if not isinstance(files, dict):
        return [f"files must be a mapping of file name to sha256, not a {type(files).__name__}"]
    problems = []
    for rel, digest in files.items():
        parts = rel.split("/") if isinstance(rel, str) else [rel]
        bad = [p for p in (name_problem("file name part", part) for part in parts) if p]
        if bad or len(parts) > 4:
            problems.append(f"files: {_short(rel)} must be a relative path inside the artifact "
                            f"({'; '.join(bad) or 'at most 4 levels deep'})")
        if not (isinstance(digest, str) and SHA256.match(digest)):
            problems.append(f"files: the sha256 of {_short(rel)} must be 64 lowercase hex digits, "
                            f"not {_short(digest)}")
    return problems


def _features_problems(features: Any) -> list[str]:
    if not isinstance(features, dict):
        return [f"features must be a mapping of feature name to {{dtype, shape}}, not a {type(features).__name__}"]
    problems = [] if "action" in features else ["features has no 'action'"]
    for name, spec in features.items():
        bad = name_problem("feature name", name)
        label = f"feature {_short(name)}"
        if bad:
            problems.append(bad)
        if not isinstance(spec, dict):
            problems.append(f"{label} must be a mapping with dtype and shape, not a {type(spec).__name__}")
            continue
        dtype, shape = spec.get("dtype"), spec.get("shape")
        if dtype not in DTYPES:
            problems.append(f"{label}: dtype {_short(dtype)} must be one of {', '.join(DTYPES)}")
        if "shape" not in spec:
            problems.append(f"{label} has no shape")
        elif not (isinstance(shape, list) and 1 <= len(shape) <= MAX_FEATURE_DIMS
                  and all(_positive_int(d) for d in shape)):
            problems.append(f"{label}: shape {_short(shape)} must be a list of 1 to {MAX_FEATURE_DIMS} positive "
                            "integers")
        elif dtype in IMAGE_DTYPES and (len(shape) != 3 or shape[2] != 3):
            problems.append(f"{label}: an image's shape is [height, width, 3], not {shape}")
        elif name == "action" and len(shape) != 1:
            problems.append(f"feature 'action': shape {shape} must be one-dimensional [action_dim]")
        names = spec.get("names")
        if names is not None and not (isinstance(names, list) and all(isinstance(n, str) for n in names)):
            problems.append(f"{label}: names must be a list of strings")
        if "encoder_id" in spec and not isinstance(spec["encoder_id"], str):
            problems.append(f"{label}: encoder_id must be a string")
    return problems


def _action_problems(action: Any) -> list[str]:
    if not isinstance(action, dict):
        return [f"action must be a mapping with chunk_size and execution, not a {type(action).__name__}"]
    problems = []
    chunk = action.get("chunk_size")
    if not (_positive_int(chunk) and chunk <= MAX_CHUNK_SIZE):
        problems.append(f"action.chunk_size {_short(chunk)} must be a positive integer up to {MAX_CHUNK_SIZE}")
    if action.get("execution") not in EXECUTION_MODES:
        problems.append(f"action.execution {_short(action.get('execution'))} must be one of "
                        f"{', '.join(EXECUTION_MODES)}")
    steps = action.get("receding_steps")
    if steps is not None and not (_positive_int(steps) and (not _positive_int(chunk) or steps <= chunk)):
        problems.append(f"action.receding_steps {_short(steps)} must be a positive integer up to chunk_size")
    if "ensemble_coeff" in action and not _number(action["ensemble_coeff"], low=0.0):
        problems.append(f"action.ensemble_coeff {_short(action['ensemble_coeff'])} must be a finite number >= 0")
    return problems


def _file_entry_problems(key: str, entry: Any, listed: dict | None) -> list[str]:
    if not isinstance(entry, dict):
        return [f"{key} must be a mapping with a 'file', not a {type(entry).__name__}"]
    ref = entry.get("file")
    if not isinstance(ref, str):
        return [f"{key}.file must name a file listed in 'files'"]
    if listed is not None and ref not in listed:
        return [f"{key}.file {_short(ref)} is not listed in 'files'"]
    return []


def _onnx_io_problems(onnx: dict, features: dict | None) -> list[str]:
    problems = []
    inputs, outputs = onnx.get("inputs"), onnx.get("outputs", {"action": "action"})
    if not (isinstance(inputs, dict) and inputs and all(isinstance(v, str) and v for v in inputs.values())):
        problems.append("onnx.inputs must map each input feature to the ONNX input name, e.g. "
                        "{\"observation.state\": \"state\"}")
    elif features is not None:
        for feature in inputs:
            if feature not in features or feature == "action":
                problems.append(f"onnx.inputs: {_short(feature)} is not an input feature declared in 'features'")
    if not (isinstance(outputs, dict) and isinstance(outputs.get("action", "action"), str)):
        problems.append("onnx.outputs must map 'action' to the ONNX output name")
    return problems


def _number(value: Any, low: float, strict: bool = False) -> bool:
    """A real, finite number >= low (> low when strict); booleans and strings such as 'NaN' are not numbers."""
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
        return False
    return value > low if strict else value >= low


def _positive_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool) and value > 0


def _short(value: Any, limit: int = 40) -> str:
    """repr(value) cut to ``limit`` characters, with the full length when cut (for error messages)."""
    text = repr(value)
    if len(text) <= limit:
        return text
    size = f", {len(value)} characters" if isinstance(value, (str, list, dict)) else ""
    return f"{text[:limit]}… ({type(value).__name__}{size})"


def _is_file(path: Path) -> bool:
    try:
        return path.is_file()
    except OSError:  # a name too long for the file system, for one
        return False


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
        if list(spec.get("shape", [])) != list(served[name]["shape"]):
            problems.append(f"feature '{name}': the policy expects shape {list(spec['shape'])}, the contract "
                            f"serves {served[name]['shape']}")
        names = spec.get("names")
        if names and served[name].get("names") and list(names) != list(served[name]["names"]):
            problems.append(f"feature '{name}': the policy expects {list(names)}, the contract has "
                            f"{served[name]['names']}")
    if abs(float(manifest["fps"]) - contract.fps) > 1e-6:
        problems.append(f"fps: the policy was trained at {manifest['fps']} Hz, the contract runs at {contract.fps} Hz")
    return problems
