"""Bad policy artifacts for fuzzing a policy node's ~/load_policy: each one must be rejected with its reason
while the running policy keeps serving. No rclpy (message classes only).

Every bad artifact starts as a copy of a good one (written as the trainer writes them) and breaks one thing; where
the break would otherwise be caught by the checksums, the manifest's checksum is updated so that the check behind
it is what gets exercised.
"""
from __future__ import annotations

import hashlib
import json
import math
import shutil
from pathlib import Path
from typing import Callable

from vla_tools.fuzz_messages import Case

GOOD_VERSION = "good"


def _sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def _mutations(good: Path, other: Path) -> dict[str, Callable[[dict, Path], None]]:
    """name -> mutate(manifest, artifact_dir): each breaks one thing of a copy of ``good``.
    ``other`` is a valid artifact whose model answers differently (for golden outputs that do not match)."""

    def set_file(m: dict, d: Path, rel: str, data: bytes) -> None:
        (d / rel).write_bytes(data)
        m["files"][rel] = _sha256(data)

    def golden(key: str, value) -> Callable:
        return lambda m, d: m["golden"].__setitem__(key, value)

    return {
        "manifest_empty": lambda m, d: m.clear(),
        "manifest_without_golden_atol": lambda m, d: m["golden"].pop("atol"),
        "golden_atol_nan_string": golden("atol", "NaN"),
        "golden_atol_negative": golden("atol", -1.0),
        "golden_atol_inf": golden("atol", math.inf),
        "features_not_a_mapping": lambda m, d: m.__setitem__("features", list(m["features"])),
        "files_as_a_list": lambda m, d: m.__setitem__("files", list(m["files"])),
        "feature_without_shape": lambda m, d: m["features"]["observation.state"].pop("shape"),
        "feature_shape_negative": lambda m, d: m["features"]["observation.state"].__setitem__("shape", [-4]),
        "feature_shape_text": lambda m, d: m["features"]["observation.state"].__setitem__("shape", "four"),
        "action_chunk_zero": lambda m, d: m["action"].__setitem__("chunk_size", 0),
        "fps_nan": lambda m, d: m.__setitem__("fps", math.nan),
        "fps_zero": lambda m, d: m.__setitem__("fps", 0),
        "golden_not_a_zip": lambda m, d: set_file(m, d, m["golden"]["file"], b"this is not a zip file"),
        "onnx_not_a_model": lambda m, d: set_file(m, d, m["onnx"]["file"], b"\x00garbage"),
        "golden_mismatch_atol_nan": lambda m, d: (
            set_file(m, d, m["golden"]["file"], (other / m["golden"]["file"]).read_bytes()),
            m["golden"].__setitem__("atol", "NaN")),
        "files_outside_artifact": lambda m, d: m["files"].__setitem__("../../../etc/passwd", "0" * 64),
    }


def bad_artifacts(models: Path, make_good: Callable[[Path, str, float], object]) -> list[tuple[str, str]]:
    """Write the bad artifacts under ``models``/fuzz/<case>/ and return (case, spec) pairs, specs included that
    name nothing valid (a huge name, control characters, a path outside the registry).

    ``make_good(models, version, bias)`` writes a valid artifact models/<name>/<version>/ and returns it (an
    object with ``.path``), e.g. vla_policy.fixtures.make_artifact.
    """
    good = Path(make_good(models, GOOD_VERSION, 0.05).path)
    other = Path(make_good(models, GOOD_VERSION + "_other", 0.2).path)
    out = []
    for case, mutate in _mutations(good, other).items():
        target = models / "fuzz" / case
        if target.exists():
            shutil.rmtree(target)
        shutil.copytree(good, target)
        manifest = json.loads((target / "manifest.json").read_text())
        mutate(manifest, target)
        (target / "manifest.json").write_text(json.dumps(manifest))
        out.append((case, str(target)))
    (models / "fuzz" / "manifest_not_json").mkdir(parents=True, exist_ok=True)
    (models / "fuzz" / "manifest_not_json" / "manifest.json").write_text("{not json")
    out += [
        ("manifest_not_json", str(models / "fuzz" / "manifest_not_json")),
        ("name_5000_chars", "x" * 5000),
        ("name_control_characters", "tiny/\x1b[2J\x07"),
        ("name_parent_directory", "../../etc"),
        ("path_to_a_file", "/etc/hostname"),
        ("no_such_artifact", "no_such_policy/v0"),
        ("empty", ""),
    ]
    return out


def load_policy_cases(models: Path, make_good: Callable[[Path, str, float], object], request_cls: type) -> list[Case]:
    """The bad artifacts as ~/load_policy requests (``request_cls``: vla_interfaces.srv.LoadPolicy.Request)."""
    return [Case(f"artifact_{case}", request_cls(artifact=spec), bad=True)
            for case, spec in bad_artifacts(models, make_good)]
