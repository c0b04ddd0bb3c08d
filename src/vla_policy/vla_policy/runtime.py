"""Loading a policy off the control path, and swapping it in between two ticks (no ROS).

``load_policy`` does everything that can fail (checksums, compatibility, engine, golden outputs, warm-up)
before a policy is offered; ``PolicySlot`` holds the running policy, the previous one (for rollback) and a
staged one that the control tick swaps in at a chunk boundary, atomically, without waiting on anything.
"""
from __future__ import annotations

import threading
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from vla_core.artifact import Artifact, ArtifactError, compatibility, history_steps, resolve, verify_artifact
from vla_core.contract import RobotContract
from vla_core.features import ACTION
from vla_policy.engines import Engine, make_engine
from vla_policy.inputs import InputSpec, input_specs


class PolicyOutputError(RuntimeError):
    """The policy produced something that must not be sent (non-finite values, wrong shape)."""


@dataclass
class LoadedPolicy:
    artifact: Artifact
    engine: Engine
    load_time: float
    skipped_engines: list[str] = field(default_factory=list)

    @property
    def label(self) -> str:
        return f"{self.artifact.name}/{self.artifact.version}"

    @property
    def chunk_size(self) -> int:
        return int(self.artifact.manifest["action"]["chunk_size"])

    @property
    def action_dim(self) -> int:
        return int(self.artifact.manifest["features"][ACTION]["shape"][0])

    @property
    def input_names(self) -> dict[str, str]:
        """Feature name -> ONNX input name."""
        return dict(self.artifact.manifest["onnx"].get("inputs", {}))

    @property
    def input_specs(self) -> dict[str, InputSpec]:
        """Feature name -> what the model takes (shape, dtype), as the manifest declares it."""
        return input_specs(self.artifact.manifest)

    @property
    def history(self) -> dict[str, int]:
        """Feature -> how many of its last values the model takes (an observation history); {} without one."""
        return history_steps(self.artifact.manifest)

    @property
    def uncertainty_output(self) -> str | None:
        """The ONNX output holding the policy's uncertainty (manifest ``uncertainty.output``, an ensemble's
        disagreement), or None when the artifact carries none."""
        entry = self.artifact.manifest.get("uncertainty")
        if not isinstance(entry, dict) or not entry.get("output"):
            return None
        return self.artifact.manifest["onnx"].get("outputs", {}).get(entry["output"], entry["output"])

    def infer(self, feeds: dict[str, np.ndarray]) -> np.ndarray:
        """One inference: the (chunk_size, action_dim) action chunk; raises PolicyOutputError when unusable
        (the engine failed, or the output has the wrong size or non-finite values)."""
        return self.infer_with_uncertainty(feeds)[0]

    def infer_with_uncertainty(self, feeds: dict[str, np.ndarray]) -> tuple[np.ndarray, float | None]:
        """One inference: the action chunk as :meth:`infer` gives it, and the policy's uncertainty (a finite
        scalar >= 0; None when the artifact carries none). Raises PolicyOutputError as :meth:`infer`, and for an
        uncertainty that is missing, not one value, negative or non-finite."""
        try:
            out = self.engine.run(feeds)
        except Exception as exc:  # noqa: BLE001 - an engine failure is a dropped output, never a crash
            raise PolicyOutputError(f"{self.label} failed on {self.engine.name}: {type(exc).__name__}: "
                                    f"{str(exc)[:300]}") from exc
        name = self.artifact.manifest["onnx"].get("outputs", {}).get("action", "action")
        chunk = np.asarray(out[name])
        if chunk.size != self.chunk_size * self.action_dim:
            raise PolicyOutputError(f"{self.label} returned {chunk.shape}, expected ({self.chunk_size}, "
                                    f"{self.action_dim})")
        chunk = chunk.reshape(self.chunk_size, self.action_dim)
        if not np.all(np.isfinite(chunk)):
            raise PolicyOutputError(f"{self.label} returned non-finite actions")
        key = self.uncertainty_output
        if key is None:
            return chunk, None
        value = np.asarray(out.get(key, np.zeros(0)), dtype=np.float64).reshape(-1)
        if value.size != 1 or not np.isfinite(value[0]) or value[0] < 0:
            raise PolicyOutputError(f"{self.label} returned the uncertainty {value.tolist()[:4]} on output "
                                    f"'{key}', expected one finite value >= 0")
        return chunk, float(value[0])


def load_policy(spec: str, models_dir: Path, contract: RobotContract, encoder_id: str | None,
                preference: list[str], threads: int = 1, warmup: int = 3, cache_dir: Path | None = None) -> LoadedPolicy:
    """Verify, check, load and warm up a policy. Raises ArtifactError / EngineUnavailable with the reason."""
    t0 = time.perf_counter()
    artifact = verify_artifact(resolve(spec, models_dir))
    problems = compatibility(artifact.manifest, contract, encoder_id)
    if problems:
        raise ArtifactError(f"{artifact.name}/{artifact.version} does not fit robot contract '{contract.robot}': "
                            + "; ".join(problems))
    engines = artifact.manifest.get("engines") or []
    engine_path = next((artifact.path / e["file"] for e in engines if e.get("kind") == "tensorrt"), None)
    engine, skipped = make_engine(artifact.path / artifact.manifest["onnx"]["file"], preference, threads=threads,
                                  cache_dir=cache_dir, engine_path=engine_path)
    policy = LoadedPolicy(artifact, engine, 0.0, skipped)
    try:
        _check_on_golden(policy, warmup)
    except BaseException:
        engine.close()
        raise
    policy.load_time = time.perf_counter() - t0
    return policy


def _check_on_golden(policy: LoadedPolicy, warmup: int) -> None:
    """The model takes what the manifest declares and reproduces its golden outputs within atol, finite."""
    engine = policy.engine
    problems = engine_input_problems(policy.input_specs, policy.input_names, engine.inputs, policy.history)
    if problems:
        raise ArtifactError(f"{policy.label}: the model does not take what its manifest declares: "
                            + "; ".join(problems) + " (re-export the artifact)")
    inputs, outputs, atol = policy.artifact.golden()
    try:
        got = engine.run(inputs)
    except Exception as exc:  # noqa: BLE001 - any engine failure on the golden input rejects the artifact
        raise ArtifactError(f"{policy.label} failed on its golden input with {engine.name}: {exc}") from exc
    for name, expected in outputs.items():
        value = np.asarray(got.get(name))
        if value.shape != expected.shape:
            raise ArtifactError(f"{policy.label}: golden output '{name}' has shape {value.shape}, expected "
                                f"{expected.shape}")
        if not np.all(np.isfinite(value)):
            raise ArtifactError(f"{policy.label} produces non-finite values on its golden input ({engine.name})")
        diff = float(np.max(np.abs(value - expected))) if value.size else 0.0
        if not diff <= atol:  # a NaN difference fails too
            raise ArtifactError(f"{policy.label}: golden output '{name}' differs by {diff:.3g} > atol {atol:g} "
                                f"on {engine.name}")
    key = policy.uncertainty_output
    if key is not None:  # declared in the manifest: the model must give it, one finite value >= 0
        value = np.asarray(got.get(key, np.zeros(0)), dtype=np.float64).reshape(-1)
        if value.size != 1 or not np.isfinite(value[0]) or value[0] < 0:
            raise ArtifactError(f"{policy.label}: its manifest declares the uncertainty output '{key}', but on its "
                                f"golden input the model gives {value.tolist()[:4]} (outputs: "
                                f"{', '.join(sorted(got))}); expected one finite value >= 0 (re-export the artifact)")
    for _ in range(warmup):
        engine.run(inputs)


def engine_input_problems(specs: dict[str, InputSpec], names: dict[str, str],
                          taken: dict[str, tuple[tuple, np.dtype]], history: dict[str, int] | None = None
                          ) -> list[str]:
    """Every mismatch between the inputs the manifest declares and those the model takes, or [].

    The node feeds (1, *shape) float32 for vectors and (1, 3, H, W) float32 for (H, W, 3) images, with a time
    axis after the batch for a feature the manifest gives a history of T steps ((1, T, 3, H, W), (1, T, *shape));
    symbolic or dynamic dimensions in the model accept any size.
    """
    history = history or {}
    problems = []
    for onnx_name in sorted(set(taken) - set(names.values())):
        problems.append(f"model input '{onnx_name}' is fed by no feature in onnx.inputs")
    for feature, onnx_name in names.items():
        if onnx_name not in taken:
            problems.append(f"onnx.inputs maps {feature} to '{onnx_name}', which the model does not take "
                            f"(it takes: {', '.join(sorted(taken))})")
            continue
        shape, dtype = taken[onnx_name]
        spec = specs[feature]
        fed = (spec.shape[2], spec.shape[0], spec.shape[1]) if spec.is_image else tuple(spec.shape)
        fed = (1, history[feature], *fed) if feature in history else (1, *fed)
        fixed = [(want, got) for want, got in zip(shape, fed) if isinstance(want, int) and want > 0]
        if len(shape) != len(fed) or any(want != got for want, got in fixed):
            problems.append(f"{feature} is fed as {list(fed)}, the model's '{onnx_name}' takes {list(shape)}")
        if np.dtype(dtype) != np.float32:
            problems.append(f"the model's '{onnx_name}' takes {np.dtype(dtype)}; the policy node feeds float32")
    return problems


class PolicySlot:
    """The running policy, the previous one and a staged one; thread-safe, never blocking the tick."""

    def __init__(self):
        self._lock = threading.Lock()
        self.active: LoadedPolicy | None = None
        self.previous: LoadedPolicy | None = None
        self._staged: tuple[LoadedPolicy, threading.Event] | None = None

    def stage(self, policy: LoadedPolicy) -> threading.Event:
        """Offer a loaded policy; the returned event is set once a tick has swapped it in."""
        done = threading.Event()
        with self._lock:
            if self.active is None:
                self.active = policy
                done.set()
            else:
                self._staged = (policy, done)
        return done

    def stage_rollback(self) -> threading.Event:
        with self._lock:
            if self.previous is None:
                raise ArtifactError("no previous policy to roll back to")
            policy = self.previous
        return self.stage(policy)

    def swap_if_staged(self, at_boundary: bool) -> LoadedPolicy | None:
        """Called by the control tick: swap in the staged policy if any and at a boundary; return it."""
        if self._staged is None or not at_boundary:
            return None
        with self._lock:
            policy, done = self._staged
            self._staged = None
            self.previous, self.active = self.active, policy
        done.set()
        return policy

    @property
    def has_staged(self) -> bool:
        return self._staged is not None
