"""Transitions, replay buffers and RLPD sampling (Ball et al. 2023): every batch mixes demonstrations and
online data in a fixed proportion.

A transition is ``obs`` (``images``: camera -> (H, W, 3) uint8 RGB at the policy's image size; ``state`` (S,)
SI units; ``language`` (L,) the instruction's embedding), ``action`` (D,) SI units (what the shield sent),
``reward`` (finite float), ``next_obs`` (``images``, ``state``; the instruction is the episode's), ``done``
(True only where the episode terminated: no bootstrap past it) and ``intervention`` (True where the operator
commanded). Buffers take them batched (a leading N on every array) and check every field first: a missing
field, a wrong shape or dtype, a non-finite value is refused with a ValueError naming the field and the fix, and
nothing of that batch is stored.

Demonstrations come from the same datasets the other algorithms train on (:func:`transitions_from_episodes`,
over vla_trainer.data's episodes): the recorded action at frame t, the next frame as ``next_obs``, the reward
from ``next.reward`` or, failing that, 1 on the last frame of an episode marked successful (IQL's convention),
``done`` on each episode's last frame, and no transition from or into a frame marked invalid.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from vla_trainer.data import Episode, LanguageTable

BATCH_KEYS = ("images", "state", "language", "action", "reward", "next_images", "next_state", "done",
              "intervention")


@dataclass(frozen=True)
class TransitionSpec:
    """The shapes every transition must have (from the policy's config or the robot contract)."""

    cameras: tuple[str, ...]
    image_size: tuple[int, int]
    state_dim: int
    language_dim: int
    action_dim: int

    @classmethod
    def from_config(cls, config) -> "TransitionSpec":
        return cls(tuple(config.cameras), tuple(config.image_size), config.state_dim, config.language_dim,
                   config.action_dim)


def flatten_transitions(transitions: dict) -> dict[str, object]:
    """Nested transitions (``obs``/``next_obs`` dicts) -> the flat batch layout (``images``, ``next_images`` ...).
    Raises ValueError naming a missing field."""
    _require(transitions, ("obs", "action", "reward", "next_obs", "done", "intervention"), "transitions")
    obs, nxt = transitions["obs"], transitions["next_obs"]
    _require(obs, ("images", "state", "language"), "transitions['obs']")
    _require(nxt, ("images", "state"), "transitions['next_obs']")
    return {"images": obs["images"], "state": obs["state"], "language": obs["language"],
            "action": transitions["action"], "reward": transitions["reward"], "next_images": nxt["images"],
            "next_state": nxt["state"], "done": transitions["done"], "intervention": transitions["intervention"]}


def _require(mapping, keys, where: str) -> None:
    if not isinstance(mapping, dict):
        raise ValueError(f"{where} must be a dict with {', '.join(keys)}, not a {type(mapping).__name__}")
    missing = [k for k in keys if k not in mapping]
    if missing:
        raise ValueError(f"{where} has no {', '.join(repr(k) for k in missing)}; a transition carries "
                         f"{', '.join(keys)} (see vla_trainer.rl.replay)")


def check_batch(batch: dict, spec: TransitionSpec) -> dict[str, np.ndarray]:
    """The flat batch as numpy arrays of the right dtypes, after checking every field against ``spec``.

    Raises ValueError naming the field, what it is and what it should be; never coerces a value silently
    (integers and float64 are cast to float32, bool-like 0/1 to bool, which loses nothing that matters here).
    """
    _require(batch, BATCH_KEYS, "transition batch")
    h, w = spec.image_size
    out: dict[str, object] = {}
    n = None

    def rows(name: str, value, shape: tuple[int, ...], dtype) -> np.ndarray:
        nonlocal n
        arr = np.asarray(value)
        if arr.dtype == object:
            raise ValueError(f"transition field '{name}' is not numeric (dtype object); pass numpy arrays")
        if arr.ndim != 1 + len(shape) or tuple(arr.shape[1:]) != shape:
            expected = "(N, " + ", ".join(map(str, shape)) + ")" if shape else "(N,)"
            raise ValueError(f"transition field '{name}' has shape {tuple(arr.shape)}; expected {expected}: "
                             f"N transitions, {_what(name, spec)}")
        if n is None:
            n = arr.shape[0]
        elif arr.shape[0] != n:
            raise ValueError(f"transition field '{name}' has {arr.shape[0]} rows; the other fields have {n}")
        if dtype is np.uint8:
            if arr.dtype != np.uint8:
                raise ValueError(f"transition field '{name}' is {arr.dtype}; images are uint8 RGB (H, W, 3) as "
                                 "recorded (vla_core.observation.model_image), not floats")
            return arr
        if dtype is bool:
            if arr.dtype != bool and not np.isin(arr, (0, 1)).all():
                raise ValueError(f"transition field '{name}' must be True/False, got values other than 0 and 1")
            return arr.astype(bool)
        if not (np.issubdtype(arr.dtype, np.floating) or np.issubdtype(arr.dtype, np.integer)):
            raise ValueError(f"transition field '{name}' has dtype {arr.dtype}; it must be numeric")
        arr = arr.astype(np.float32)
        bad = ~np.isfinite(arr.reshape(len(arr), -1)).all(1)
        if bad.any():
            first = int(np.flatnonzero(bad)[0])
            raise ValueError(f"transition field '{name}' is not finite in {int(bad.sum())} transition(s) (first at "
                             f"index {first}: {arr[first].tolist()}); {_fix(name)}")
        return arr

    for key in ("images", "next_images"):
        if not isinstance(batch[key], dict) or set(batch[key]) != set(spec.cameras):
            got = sorted(batch[key]) if isinstance(batch[key], dict) else type(batch[key]).__name__
            raise ValueError(f"transition field '{key}' must map each camera {list(spec.cameras)} to (N, {h}, {w}, 3) "
                             f"uint8 frames; got {got}")
        out[key] = {cam: rows(f"{key}.{cam}", batch[key][cam], (h, w, 3), np.uint8) for cam in spec.cameras}
    out["state"] = rows("state", batch["state"], (spec.state_dim,), np.float32)
    out["next_state"] = rows("next_state", batch["next_state"], (spec.state_dim,), np.float32)
    out["language"] = rows("language", batch["language"], (spec.language_dim,), np.float32)
    out["action"] = rows("action", batch["action"], (spec.action_dim,), np.float32)
    out["reward"] = rows("reward", batch["reward"], (), np.float32)
    out["done"] = rows("done", batch["done"], (), bool)
    out["intervention"] = rows("intervention", batch["intervention"], (), bool)
    return out


def _what(name: str, spec: TransitionSpec) -> str:
    base = name.split(".")[0]
    return {"images": "camera frames (H, W, 3) uint8", "next_images": "camera frames (H, W, 3) uint8",
            "state": f"{spec.state_dim} state values", "next_state": f"{spec.state_dim} state values",
            "language": f"the {spec.language_dim}-value instruction embedding",
            "action": f"{spec.action_dim} action values", "reward": "one reward each (shape (N,))",
            "done": "one flag each (shape (N,))", "intervention": "one flag each (shape (N,))"}[base]


def _fix(name: str) -> str:
    if name == "reward":
        return ("rewards must be finite: drop the transition, or fix the reward source (the simulator's event or the "
                "success classifier, whose output is a probability)")
    return f"drop the transition or mark its frame invalid; the learner never trains on a non-finite {name}"


class ReplayBuffer:
    """A ring buffer of checked transitions, in numpy (uint8 images; one copy of each next frame)."""

    def __init__(self, spec: TransitionSpec, capacity: int):
        if capacity < 1:
            raise ValueError(f"replay capacity {capacity} must be at least 1")
        self.spec, self.capacity = spec, int(capacity)
        h, w = spec.image_size
        self.images = {cam: np.zeros((capacity, h, w, 3), np.uint8) for cam in spec.cameras}
        self.next_images = {cam: np.zeros((capacity, h, w, 3), np.uint8) for cam in spec.cameras}
        self.state = np.zeros((capacity, spec.state_dim), np.float32)
        self.next_state = np.zeros((capacity, spec.state_dim), np.float32)
        self.language = np.zeros((capacity, spec.language_dim), np.float32)
        self.action = np.zeros((capacity, spec.action_dim), np.float32)
        self.reward = np.zeros(capacity, np.float32)
        self.done = np.zeros(capacity, bool)
        self.intervention = np.zeros(capacity, bool)
        self.size = self.cursor = 0
        self.added = 0  # transitions ever added (the ring overwrites the oldest)

    def __len__(self) -> int:
        return self.size

    def add(self, batch: dict) -> int:
        """Store a batch (flat layout, or nested with ``obs``/``next_obs``); returns how many. All or nothing."""
        if "obs" in batch:
            batch = flatten_transitions(batch)
        arrays = check_batch(batch, self.spec)
        n = len(arrays["reward"])
        if n > self.capacity:
            raise ValueError(f"a batch of {n} transitions does not fit a replay buffer of {self.capacity}; "
                             "raise the capacity or add in parts")
        idx = (self.cursor + np.arange(n)) % self.capacity
        for cam in self.spec.cameras:
            self.images[cam][idx] = arrays["images"][cam]
            self.next_images[cam][idx] = arrays["next_images"][cam]
        for key in ("state", "next_state", "language", "action", "reward", "done", "intervention"):
            getattr(self, key)[idx] = arrays[key]
        self.cursor = int((self.cursor + n) % self.capacity)
        self.size = min(self.capacity, self.size + n)
        self.added += n
        return n

    def gather(self, idx: np.ndarray) -> dict:
        """The transitions at ``idx`` in the flat batch layout (copies)."""
        return {"images": {cam: self.images[cam][idx] for cam in self.spec.cameras},
                "next_images": {cam: self.next_images[cam][idx] for cam in self.spec.cameras},
                **{key: getattr(self, key)[idx] for key in ("state", "next_state", "language", "action", "reward",
                                                             "done", "intervention")}}

    def sample(self, n: int, rng: np.random.Generator) -> dict:
        if self.size == 0:
            raise ValueError("the replay buffer is empty; add transitions before sampling")
        return self.gather(rng.integers(0, self.size, n))


class RLPDSampler:
    """Batches of ``demo_fraction * batch_size`` (rounded half up) demonstration transitions and the rest online ones
    (RLPD's symmetric sampling; HIL-SERL uses 0.5). Each batch says which rows came from where (``from_demo``)."""

    def __init__(self, demos: ReplayBuffer, online: ReplayBuffer, demo_fraction: float = 0.5):
        if not 0.0 <= demo_fraction <= 1.0:
            raise ValueError(f"demo_fraction {demo_fraction} must be in [0, 1] (0.5: half of each batch from "
                             "demonstrations)")
        if demos.spec != online.spec:
            raise ValueError(f"demonstrations {demos.spec} and online transitions {online.spec} differ; record "
                             "both under the same robot contract and policy image size")
        self.demos, self.online, self.demo_fraction = demos, online, float(demo_fraction)

    def split(self, batch_size: int) -> tuple[int, int]:
        """(demonstration rows, online rows) of a batch of ``batch_size``."""
        if batch_size < 1:
            raise ValueError(f"batch_size {batch_size} must be at least 1")
        n_demo = int(np.floor(self.demo_fraction * batch_size + 0.5))  # half up, never banker's rounding
        return n_demo, batch_size - n_demo

    def sample(self, batch_size: int, rng: np.random.Generator) -> dict:
        n_demo, n_online = self.split(batch_size)
        if n_demo and len(self.demos) == 0:
            raise ValueError("no demonstration transitions to sample; load demonstrations "
                             "(transitions_from_episodes) or set demo_fraction=0")
        if n_online and len(self.online) == 0:
            raise ValueError("no online transitions yet; let the actor collect some first, or set demo_fraction=1 "
                             "while there are none")
        parts = [buf.sample(k, rng) for buf, k in ((self.demos, n_demo), (self.online, n_online)) if k]
        batch = parts[0] if len(parts) == 1 else concat_batches(parts)
        batch["from_demo"] = np.concatenate([np.ones(n_demo, bool), np.zeros(n_online, bool)])
        return batch


def concat_batches(parts: list[dict]) -> dict:
    out = {}
    for key in parts[0]:
        if isinstance(parts[0][key], dict):
            out[key] = {cam: np.concatenate([p[key][cam] for p in parts]) for cam in parts[0][key]}
        else:
            out[key] = np.concatenate([p[key] for p in parts])
    return out


def transitions_from_episodes(episodes: list[Episode], language: LanguageTable) -> dict:
    """Demonstration transitions (flat batch layout) from episodes read by vla_trainer.data.

    Reward: the episode's ``next.reward`` when recorded, else 1 on the last frame of a successful episode and 0
    elsewhere. ``done`` on each episode's last frame (whose ``next_obs`` is itself). Transitions from or into an
    invalid frame are left out. Raises ValueError when no episode has a usable transition.
    """
    parts = []
    for e in episodes:
        n = len(e)
        nxt = np.minimum(np.arange(n) + 1, n - 1)
        if e.reward is not None:
            reward = e.reward.astype(np.float32)
        else:
            reward = np.zeros(n, np.float32)
            if e.success:
                reward[-1] = 1.0
        done = np.zeros(n, bool)
        done[-1] = True
        keep = e.valid & e.valid[nxt]
        if not keep.any():
            continue
        emb = language.embeddings[language.exact[e.instruction]]
        parts.append({"images": {cam: frames[keep] for cam, frames in e.images.items()},
                      "next_images": {cam: frames[nxt][keep] for cam, frames in e.images.items()},
                      "state": e.state[keep], "next_state": e.state[nxt][keep],
                      "language": np.repeat(emb[None], int(keep.sum()), axis=0), "action": e.action[keep],
                      "reward": reward[keep], "done": done[keep], "intervention": e.intervention[keep]})
    if not parts:
        raise ValueError("no episode has a valid transition (two valid frames in a row); record demonstrations first")
    return concat_batches(parts)


def buffer_from_episodes(episodes: list[Episode], language: LanguageTable, spec: TransitionSpec,
                         capacity: int | None = None) -> ReplayBuffer:
    """A replay buffer holding the episodes' transitions (checked like online ones)."""
    batch = transitions_from_episodes(episodes, language)
    buffer = ReplayBuffer(spec, capacity or len(batch["reward"]))
    buffer.add(batch)
    return buffer
