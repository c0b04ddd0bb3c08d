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

from vla_core.artifact import Artifact, ArtifactError, compatibility, resolve, verify_artifact
from vla_core.contract import RobotContract
from vla_policy.engines import Engine, make_engine


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
        return int(self.artifact.manifest["features"]["action"]["shape"][0])

    @property
    def input_names(self) -> dict[str, str]:
        """Feature name -> ONNX input name."""
        return dict(self.artifact.manifest["onnx"].get("inputs", {}))

    def infer(self, feeds: dict[str, np.ndarray]) -> np.ndarray:
        """One inference: the (chunk_size, action_dim) action chunk; raises PolicyOutputError when unusable."""
        out = self.engine.run(feeds)
        name = self.artifact.manifest["onnx"].get("outputs", {}).get("action", "action")
        chunk = np.asarray(out[name])
        if chunk.size != self.chunk_size * self.action_dim:
            raise PolicyOutputError(f"{self.label} returned {chunk.shape}, expected ({self.chunk_size}, "
                                    f"{self.action_dim})")
        chunk = chunk.reshape(self.chunk_size, self.action_dim)
        if not np.all(np.isfinite(chunk)):
            raise PolicyOutputError(f"{self.label} returned non-finite actions")
        return chunk


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
    inputs, outputs, atol = artifact.golden()
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
        if diff > atol:
            raise ArtifactError(f"{policy.label}: golden output '{name}' differs by {diff:.3g} > atol {atol:g} "
                                f"on {engine.name}")
    for _ in range(warmup):
        engine.run(inputs)
    policy.load_time = time.perf_counter() - t0
    return policy


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
