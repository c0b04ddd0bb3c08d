"""The policy's inputs: the newest value of each feature with its stamp, and the feeds of one inference.

A feature older than ``max_age`` (or never received) is stale: no command is proposed and the status names it.
Images arrive model-ready from the perception node and become tensors through vla_core.observation, the same
conversion the trainer uses. No ROS here.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from vla_core.observation import to_chw_float


@dataclass
class Sample:
    value: np.ndarray
    stamp: float  # seconds, the source message's header stamp


class InputCache:
    def __init__(self):
        self.samples: dict[str, Sample] = {}
        self.refused: dict[str, str] = {}

    def put(self, feature: str, value: np.ndarray, stamp: float) -> None:
        self.samples[feature] = Sample(value, stamp)
        self.refused.pop(feature, None)

    def refuse(self, feature: str, reason: str) -> None:
        """Record why the newest message for ``feature`` was not used (e.g. another text encoder)."""
        self.samples.pop(feature, None)
        self.refused[feature] = reason

    def clear(self) -> None:
        self.samples.clear()
        self.refused.clear()

    def stale(self, features: list[str], now: float, max_age: float) -> list[str]:
        """The features (of ``features``) that are missing, refused or older than ``max_age`` at ``now``."""
        out = []
        for f in features:
            s = self.samples.get(f)
            if s is None or now - s.stamp > max_age:
                out.append(f)
        return out

    def feeds(self, input_names: dict[str, str]) -> dict[str, np.ndarray]:
        """ONNX feeds (batch of 1) for feature -> input name; images become (1, 3, H, W) float32 in [0, 1]."""
        feeds = {}
        for feature, name in input_names.items():
            value = self.samples[feature].value
            if feature.startswith("observation.images."):
                feeds[name] = to_chw_float(value)[None]
            else:
                feeds[name] = np.asarray(value, dtype=np.float32)[None]
        return feeds


def state_vector(names: list[str], positions: list[float], velocities: list[float], efforts: list[float],
                 joints: tuple[str, ...], fields: tuple[str, ...]) -> np.ndarray:
    """A JointState as the contract's observation.state (joint-major, fields in order); raises ValueError
    naming a missing joint or field, or non-finite values."""
    index = {n: i for i, n in enumerate(names)}
    columns = {"position": positions, "velocity": velocities, "effort": efforts}
    out = []
    for joint in joints:
        if joint not in index:
            raise ValueError(f"joint '{joint}' is missing from joint_states (it has: {', '.join(names)})")
        for f in fields:
            col = columns[f]
            if len(col) <= index[joint]:
                raise ValueError(f"joint_states carries no {f} for '{joint}'")
            out.append(col[index[joint]])
    vec = np.asarray(out, dtype=np.float32)
    if not np.all(np.isfinite(vec)):
        raise ValueError(f"joint_states has non-finite values {vec.tolist()}")
    return vec
