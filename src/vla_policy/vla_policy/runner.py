"""One policy's control loop, as the policy node and the simulated evaluation both run it (no ROS).

Observations in (feature -> numpy array, as vla_core.features names them), the action for this tick out,
chunks executed as the artifact's manifest says (ACT's temporal ensembling or a receding horizon,
vla_policy.chunking). The ONNX feeds are built here and nowhere else: images through
vla_core.observation.to_chw_float (the trainer's conversion), vectors as float32, each with a batch of 1.
An artifact with an uncertainty output (an ensemble's disagreement) gives it with each action
(:meth:`PolicyRunner.step_with_uncertainty`): the uncertainty of the chunk inferred last. An artifact with an
observation history (its manifest's ``history``) is fed the last T values of those features, kept here one per
control tick (:class:`ObservationHistory`) and forgotten on :meth:`PolicyRunner.reset` (an episode's start,
stale inputs, a new policy): until T ticks have passed, the first observation stands in for the missing past,
as the trainer pads before an episode's first frame.
"""
from __future__ import annotations

from collections import deque
from typing import TYPE_CHECKING, Mapping

import numpy as np

from vla_core.features import is_image
from vla_core.observation import to_chw_float
from vla_policy.chunking import ChunkExecutor

if TYPE_CHECKING:
    from vla_policy.runtime import LoadedPolicy


def model_feeds(observation: Mapping[str, np.ndarray], input_names: Mapping[str, str]) -> dict[str, np.ndarray]:
    """ONNX feeds (batch of 1) for feature -> input name: images ((H, W, 3) uint8 RGB at the model's size)
    become (1, 3, H, W) float32 in [0, 1], vectors (1, n) float32."""
    feeds = {}
    for feature, name in input_names.items():
        value = observation[feature]
        feeds[name] = to_chw_float(value)[None] if is_image(feature) else np.asarray(value, dtype=np.float32)[None]
    return feeds


class ObservationHistory:
    """The last T feeds (without the batch axis) of each model input with a history (by ONNX input name), oldest
    first."""

    def __init__(self, steps: Mapping[str, int]):
        self.steps = dict(steps)
        self._values: dict[str, deque] = {n: deque(maxlen=t) for n, t in self.steps.items()}

    def clear(self) -> None:
        for values in self._values.values():
            values.clear()

    def __len__(self) -> int:
        """How many ticks the history holds (at most T)."""
        return min((len(v) for v in self._values.values()), default=0)

    def push(self, feeds: Mapping[str, np.ndarray]) -> None:
        """Add one tick's feeds (input name -> (1, ...) array, as :func:`model_feeds` builds them)."""
        for name, values in self._values.items():
            values.append(feeds[name][0])

    def stacked(self, name: str) -> np.ndarray:
        """(1, T, ...) float32: the last T values, the oldest one repeated where fewer ticks have passed."""
        values = list(self._values[name])
        values = [values[0]] * (self.steps[name] - len(values)) + values
        return np.stack(values)[None]


class PolicyRunner:
    """A loaded policy and its chunk execution: :meth:`step` gives the action of each control tick."""

    def __init__(self, policy: "LoadedPolicy"):
        self.policy = policy
        action = policy.artifact.manifest["action"]
        self.chunks = ChunkExecutor(policy.chunk_size, policy.action_dim, action["execution"],
                                    action.get("ensemble_coeff", 0.01), action.get("receding_steps"))
        self.input_names = policy.input_names
        self.features = tuple(self.input_names)  # the observation features the policy takes
        self.inferred = False  # whether the last step inferred a new chunk
        self.has_uncertainty = policy.uncertainty_output is not None
        self.uncertainty: float | None = None  # of the chunk inferred last; None before one or without an output
        self.fps = float(policy.artifact.manifest["fps"])  # control ticks per second
        history = policy.history
        self.history = ObservationHistory({self.input_names[f]: t for f, t in history.items()}) if history else None

    def reset(self) -> None:
        """Forget the chunks in flight and the observation history (activation, an episode's start, stale inputs,
        a failed callback): the next tick infers."""
        self.chunks.reset()
        self.uncertainty = None
        if self.history is not None:
            self.history.clear()

    def feeds(self, observation: Mapping[str, np.ndarray]) -> dict[str, np.ndarray]:
        """This tick's ONNX feeds; an observation history takes this tick's values in first (call once a tick)."""
        feeds = model_feeds(observation, self.input_names)
        if self.history is None:
            return feeds
        self.history.push(feeds)
        for name in self.history.steps:
            feeds[name] = self.history.stacked(name)
        return feeds

    def at_boundary(self) -> bool:
        """True where another policy may take over without cutting a chunk short."""
        return self.chunks.at_boundary()

    @property
    def position(self) -> int:
        """Index of the next action in the current chunk (receding horizon; 0 under temporal ensembling)."""
        return self.chunks.position

    def step(self, tick: int, observation: Mapping[str, np.ndarray]) -> np.ndarray | None:
        """The action (float64, action_dim) for control period ``tick``, inferring from ``observation``
        (feature -> value, every feature in :attr:`features`) when the execution calls for it; None when no
        chunk covers the tick. Raises PolicyOutputError for an unusable output, after forgetting the chunks."""
        return self.step_with_uncertainty(tick, observation)[0]

    def step_with_uncertainty(self, tick: int, observation: Mapping[str, np.ndarray]
                              ) -> tuple[np.ndarray | None, float | None]:
        """:meth:`step`'s action and the policy's uncertainty about it: that of the chunk inferred last (this
        tick's when it inferred); None when the artifact has no uncertainty output or no action was given."""
        self.inferred = False
        # every tick's observation enters the history, whether this tick infers or not
        feeds = self.feeds(observation) if self.history is not None else None
        if self.chunks.needs_inference(tick):
            try:
                chunk, uncertainty = self.policy.infer_with_uncertainty(
                    feeds if feeds is not None else model_feeds(observation, self.input_names))
            except Exception:
                self.reset()
                raise
            self.chunks.push(tick, chunk)
            self.uncertainty = uncertainty
            self.inferred = True
        action = self.chunks.action(tick)
        return action, (self.uncertainty if action is not None else None)

    def plan(self, tick: int) -> np.ndarray | None:
        """The actions planned from ``tick`` on, (T, action_dim), row 0 being :meth:`step`'s action for ``tick``
        (call it after :meth:`step`): what a JointTrajectory carries when the chunk goes out as one trajectory."""
        return self.chunks.plan(tick)
