"""The policy's inputs: the newest value of each feature with its stamp, checked against what the serving
policy's artifact declares, and the feeds of one inference.

Every input is checked before it is kept (:class:`InputSpec`: shape, dtype, encoding, finite values); a bad one
raises :class:`InputError` with a short ``reason`` to count by and a message that names the value and the fix,
and the feature is dropped, so the policy proposes nothing rather than act on the previous value. A feature
older than ``max_age``, stamped more than ``max_age`` in the future, or never received is stale: no command is
proposed and the status names it. Images arrive model-ready from the perception node and become tensors through
vla_core.observation, the same conversion the trainer uses. No ROS here.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Mapping

import numpy as np

from vla_core.codecs import STATE_FIX, StateError, finite_state, joint_state_vector
from vla_core.features import IMAGE_PREFIX, LANGUAGE, STATE, is_image
from vla_core.image import ImageError, image_array, to_rgb8
from vla_policy.runner import model_feeds

IMAGE_DTYPES = ("video", "image")

# What to do about a bad input, by feature.
FIXES = {
    LANGUAGE: "publish a valid instruction on /instruction; the language node serves the embedding",
    STATE: STATE_FIX,
    IMAGE_PREFIX: "publish the perception node's model-ready images",
}


class InputError(ValueError):
    """An input that must not be used; ``reason`` is a short key to count it by (shape, dtype, empty, ...)."""

    def __init__(self, reason: str, message: str):
        super().__init__(message)
        self.reason = reason


def fix_for(feature: str) -> str:
    return FIXES[IMAGE_PREFIX] if is_image(feature) else FIXES.get(feature, "")


@dataclass(frozen=True)
class InputSpec:
    """One input feature as the serving artifact declares it: images (H, W, 3) uint8 RGB, vectors float32."""

    feature: str
    shape: tuple[int, ...]
    dtype: str  # the manifest's dtype: video/image, float32, ...

    @classmethod
    def from_manifest(cls, feature: str, spec: Mapping[str, Any]) -> "InputSpec":
        return cls(feature, tuple(int(d) for d in spec["shape"]), str(spec["dtype"]))

    @property
    def is_image(self) -> bool:
        return self.dtype in IMAGE_DTYPES

    def check(self, value: np.ndarray, source: str = "") -> np.ndarray:
        """``value`` as the model takes it; raises InputError naming the value, what is expected and the fix."""
        value = np.asarray(value)
        what = f"{self.feature}{f' ({source})' if source else ''}"
        fix = fix_for(self.feature)
        if value.size == 0:
            raise InputError("empty", f"{what}: empty, the policy needs {list(self.shape)} values; {fix}")
        if self.is_image:
            if value.dtype != np.uint8:
                raise InputError("dtype", f"{what}: a {value.dtype} image, the policy takes uint8 RGB; {fix}")
            if value.shape != self.shape:
                raise InputError("shape", f"{what}: a {'x'.join(map(str, value.shape))} image, the policy expects "
                                          f"{'x'.join(map(str, self.shape))} (height x width x RGB); {fix} "
                                          "(it resizes to the contract's size)")
            return value
        if value.dtype == np.bool_ or not np.issubdtype(value.dtype, np.number):
            raise InputError("dtype", f"{what}: {value.dtype} values, the policy takes {self.dtype} numbers; {fix}")
        if value.shape != self.shape:
            raise InputError("shape", f"{what}: {_describe(value)}, the policy expects shape {list(self.shape)}; "
                                      f"{fix}")
        with np.errstate(over="ignore", invalid="ignore"):
            out = value.astype(self.dtype)
        if not np.all(np.isfinite(out)):
            bad = np.flatnonzero(~np.isfinite(out))
            raise InputError("non_finite", f"{what}: non-finite values at {bad[:8].tolist()} "
                                           f"({np.asarray(value).ravel()[bad[:8]].tolist()}, as {self.dtype}); {fix}")
        return out


def input_specs(manifest: Mapping[str, Any]) -> dict[str, InputSpec]:
    """The inputs an artifact's model takes: feature -> InputSpec (the manifest was validated when loaded)."""
    features = manifest["features"]
    return {f: InputSpec.from_manifest(f, features[f]) for f in manifest["onnx"].get("inputs", {})}


def image_input(data: bytes, height: int, width: int, encoding: str, step: int) -> np.ndarray:
    """A sensor_msgs/Image's fields as (H, W, 3) uint8 RGB; raises InputError (reason ``encoding``)."""
    try:
        return to_rgb8(image_array(data, height, width, encoding, step), encoding)
    except ImageError as exc:
        raise InputError("encoding", f"{exc}; {FIXES[IMAGE_PREFIX]}") from None


def embedding_input(values, encoder_id: str, wanted: str | None, text: str = "") -> np.ndarray:
    """An InstructionEmbedding's vector; raises InputError for another encoder (reason ``encoder``) or the
    language node's empty "rejected instruction" embedding (reason ``empty``). Its length is checked against
    the serving artifact by :meth:`InputCache.offer`."""
    if wanted is not None and encoder_id != wanted:
        raise InputError("encoder", f"embedding from encoder {encoder_id[:80]!r} refused: the policy was trained "
                                    f"with {wanted!r}; serve instructions with that encoder")
    vec = np.asarray(values, dtype=np.float32)
    if vec.size == 0:
        raise InputError("empty", f"empty embedding: the language node rejected instruction {text[:80]!r}, so "
                                  f"there is no instruction to act on; {FIXES[LANGUAGE]}")
    return vec


@dataclass
class Sample:
    value: np.ndarray
    stamp: float | None  # seconds, the source message's header stamp; None: holds until replaced (instruction)


class InputCache:
    """The newest valid value of each feature, checked against the serving policy's :class:`InputSpec` s."""

    def __init__(self):
        self.samples: dict[str, Sample] = {}
        self.refused: dict[str, str] = {}
        self.specs: dict[str, InputSpec] = {}

    def offer(self, feature: str, value: np.ndarray, stamp: float | None, source: str = "") -> None:
        """Check ``value`` against the serving policy's spec and keep it; a bad one raises InputError and drops
        the feature, so that nothing older is used in its place. Features no policy takes yet are kept as they
        are and checked by :meth:`expect` when a policy that takes them is served."""
        spec = self.specs.get(feature)
        if spec is not None:
            try:
                value = spec.check(value, source)
            except InputError as exc:
                self.refuse(feature, str(exc))
                raise
        self.put(feature, value, stamp)

    def expect(self, specs: Mapping[str, InputSpec]) -> list[InputError]:
        """Serve a policy with these inputs: re-check every kept value and drop those that do not fit."""
        self.specs = dict(specs)
        dropped = []
        for feature, sample in list(self.samples.items()):
            spec = self.specs.get(feature)
            if spec is None:
                continue
            try:
                sample.value = spec.check(sample.value)
            except InputError as exc:
                self.refuse(feature, str(exc))
                dropped.append(exc)
        return dropped

    def put(self, feature: str, value: np.ndarray, stamp: float | None) -> None:
        self.samples[feature] = Sample(value, stamp)
        self.refused.pop(feature, None)

    def refuse(self, feature: str, reason: str) -> None:
        """Record why the newest message for ``feature`` was not used (e.g. another text encoder)."""
        self.samples.pop(feature, None)
        self.refused[feature] = reason

    def drop(self, keep: tuple[str, ...] = ()) -> None:
        """Forget every value except ``keep``: the policy waits for fresh inputs (no proposal until then)."""
        for feature in [f for f in self.samples if f not in keep]:
            self.samples.pop(feature)

    def clear(self) -> None:
        self.samples.clear()
        self.refused.clear()

    def stale(self, features: list[str], now: float, max_age: float) -> list[str]:
        """The features (of ``features``) that are missing, refused, older than ``max_age`` at ``now``, or
        stamped more than ``max_age`` after ``now`` (a future stamp must not stay fresh for ever)."""
        out = []
        for f in features:
            s = self.samples.get(f)
            if s is None or (s.stamp is not None and not -max_age <= now - s.stamp <= max_age):
                out.append(f)
        return out

    def observation(self, features) -> dict[str, np.ndarray]:
        """The kept value of each of ``features`` (all must be kept: check :meth:`stale` first)."""
        return {feature: self.samples[feature].value for feature in features}

    def feeds(self, input_names: dict[str, str]) -> dict[str, np.ndarray]:
        """ONNX feeds (batch of 1) for feature -> input name, built by vla_policy.runner.model_feeds."""
        return model_feeds(self.observation(input_names), input_names)


def state_vector(names: list[str], positions: list[float], velocities: list[float], efforts: list[float],
                 joints: tuple[str, ...], fields: tuple[str, ...]) -> np.ndarray:
    """A JointState as the contract's observation.state (float32, joint-major, fields in order), through the
    contract's codec (vla_core.codecs); raises InputError naming a missing joint or field, or non-finite values
    (judged as float32)."""
    try:
        columns = {"position": positions, "velocity": velocities, "effort": efforts}
        return finite_state(joint_state_vector(names, columns, joints, fields), np.float32)
    except StateError as exc:
        raise InputError(exc.reason, str(exc)) from None


def _describe(value: np.ndarray) -> str:
    return f"{value.size} values" if value.ndim == 1 else f"shape {list(value.shape)}"
