"""Training data: datasets on disk (LeRobotDataset v3.0) -> checked, decoded-once frames -> batches of tensors.

Every dataset is checked before training starts (non-empty, the same features as the others, every video file
present, finite actions); a problem raises DataError naming the dataset and the episode. Videos are decoded once
per episode, in file order (a video LeRobot packs many episodes into is decoded once, start to end), and kept in
memory and in an on-disk cache keyed by the file's size and mtime and the episode's span in it, so a second run
does not decode again. Cameras are the dataset's video or image features (``observation.images.<name>``, or a
single ``observation.image``). Batches are gathered with numpy fancy indexing from those arrays: an action chunk
of K steps per frame, padded past the episode's end, plus the instruction's embedding (a random paraphrase when
enabled).
"""
from __future__ import annotations

import hashlib
import json
import os
import random
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Iterable

import numpy as np

from vla_core.dataset import DatasetError, DatasetReader
from vla_core.dataset import layout as L
from vla_core.observation import model_image
from vla_core.features import ENV_STATE

EMBEDDED_TASK_PARAPHRASER = "tabletop"


class DataError(ValueError):
    """A dataset that cannot be trained on; the message names the dataset, the episode and the fix."""


@dataclass(frozen=True)
class DataConfig:
    paths: tuple[str, ...] = ()
    val_fraction: float = 0.1      # share of episodes held out for validation (at least one when there are two)
    split_seed: int = 0
    image_shift: int = 4           # random shift augmentation, pixels (DrQ-style pad and crop)
    colour_jitter: float = 0.1     # brightness and contrast amplitude; hue is left alone (colour names the task)
    paraphrase: str = EMBEDDED_TASK_PARAPHRASER  # "tabletop" (the embedded task's templates) or "none"
    # "planar_xy": mirror and rotate samples by the square's 8 symmetries (x -> -x, y -> -y, x <-> y on the
    # image, the x/y state and the x/y action together). Only for a top-down camera over a planar x/y robot
    # with image up = +x and image left = +y (REP 103 base_link), like the embedded sim; "none" otherwise.
    symmetry: str = "none"
    cache_dir: str = ""            # decoded-frame cache; "" = runs/cache under the workspace

    def __post_init__(self):
        object.__setattr__(self, "paths", tuple(self.paths))
        if not 0.0 <= self.val_fraction < 1.0:
            raise ValueError(f"data.val_fraction {self.val_fraction} must be in [0, 1)")
        if self.image_shift < 0 or not 0.0 <= self.colour_jitter < 1.0:
            raise ValueError(f"data.image_shift {self.image_shift} must be >= 0 and data.colour_jitter "
                             f"{self.colour_jitter} in [0, 1)")
        if self.symmetry not in ("none", "planar_xy"):
            raise ValueError(f"data.symmetry '{self.symmetry}' is not one of none, planar_xy")
        if self.paraphrase not in PARAPHRASERS:
            raise ValueError(f"data.paraphrase '{self.paraphrase}' is not one of {', '.join(PARAPHRASERS)}")


def _tabletop_paraphrases(instruction: str) -> list[str]:
    from vla_sim.envs.instructions import format_instruction, parse_instruction, templates
    try:
        block, zone = parse_instruction(instruction)
    except ValueError:
        return [instruction]
    return sorted({instruction, *(format_instruction(t, block, zone) for t in templates("train"))})


PARAPHRASERS: dict[str, Callable[[str], list[str]]] = {
    "none": lambda instruction: [instruction],
    EMBEDDED_TASK_PARAPHRASER: _tabletop_paraphrases,
}


@dataclass
class Episode:
    dataset: str
    index: int
    instruction: str
    images: dict[str, np.ndarray]  # camera -> (N, H, W, 3) uint8 RGB at the policy's image size
    state: np.ndarray              # (N, S) float32
    action: np.ndarray             # (N, D) float32; NaN allowed only where valid is False
    valid: np.ndarray              # (N,) bool
    intervention: np.ndarray       # (N,) bool: the operator was in control
    success: bool | None
    reward: np.ndarray | None = None  # (N,) float32 when the dataset records next.reward
    env_state: np.ndarray | None = None  # (N, E) float32 when a simulator recorded observation.environment_state

    def __len__(self) -> int:
        return len(self.state)


@dataclass
class TrainingData:
    episodes: list[Episode]
    train_episodes: list[int]
    val_episodes: list[int]
    cameras: tuple[str, ...]
    image_size: tuple[int, int]
    state_names: list[str]
    action_names: list[str]
    fps: float
    fingerprint: str
    instructions: list[str] = field(default_factory=list)
    env_state_names: list[str] = field(default_factory=list)  # empty unless every episode has the feature

    @property
    def num_frames(self) -> int:
        return sum(len(e) for e in self.episodes)

    def stats(self, action_reference: tuple[int, ...] = (), env_state: bool = False) -> dict[str, list[float]]:
        """Mean and std of state and action over the training episodes' valid frames (std floored at 1e-3);
        with ``action_reference`` (per action dimension a state index, or -1) the action's statistics are those
        of its offset from that state value, as a relative-action policy predicts it. ``env_state`` adds the
        environment state's (where every episode has it)."""
        eps = [self.episodes[i] for i in self.train_episodes]
        state = np.concatenate([e.state[e.valid] for e in eps]).astype(np.float64)
        action = np.concatenate([e.action[e.valid] for e in eps]).astype(np.float64)
        if any(i >= 0 for i in action_reference):
            ref = np.asarray(action_reference)
            action = action - np.where(ref >= 0, state[:, np.maximum(ref, 0)], 0.0)
        out = {"state_mean": state.mean(0).tolist(), "state_std": np.maximum(state.std(0), 1e-3).tolist(),
               "action_mean": action.mean(0).tolist(), "action_std": np.maximum(action.std(0), 1e-3).tolist()}
        if env_state and self.env_state_names:
            env = np.concatenate([e.env_state[e.valid] for e in eps]).astype(np.float64)
            env = env[np.isfinite(env).all(1)]  # a recorder counts the frames it had none for, as NaN
            if not len(env):
                raise DataError("observation.environment_state is NaN on every training frame; record it (the "
                                "recorder's environment_state) or set policy.aux_env_state=0")
            out.update(env_state_mean=env.mean(0).tolist(), env_state_std=np.maximum(env.std(0), 1e-3).tolist())
        return out


def action_reference(relative_actions: tuple[str, ...] | list[str], action_names: list[str],
                     state_names: list[str]) -> tuple[int, ...]:
    """For each action dimension, the index of ``<name>.position`` in the state when the name is in
    ``relative_actions``, else -1; () when none is relative.

    Raises: DataError naming an action the data lacks or one with no measured position."""
    relative = list(relative_actions or ())
    if not relative:
        return ()
    unknown = [n for n in relative if n not in action_names]
    if unknown:
        raise DataError(f"policy.relative_actions {unknown}: the data's actions are {action_names}")
    ref = []
    for name in action_names:
        if name not in relative:
            ref.append(-1)
        elif f"{name}.position" in state_names:
            ref.append(state_names.index(f"{name}.position"))
        else:
            raise DataError(f"policy.relative_actions: action '{name}' has no measured position "
                            f"('{name}.position') in observation.state {state_names}; leave it absolute")
    return tuple(ref)


def camera_name(key: str) -> str:
    """The policy's name for a camera feature: ``observation.images.top`` -> ``top``, ``observation.image`` ->
    ``image`` (names become module keys: no dots)."""
    if key.startswith("observation.images."):
        return key[len("observation.images."):]
    return key[len("observation."):].replace(".", "_") if key.startswith("observation.") else key.replace(".", "_")


def _features_signature(info: dict) -> dict:
    feats = info["features"]
    sig = {}
    for key, feat in feats.items():
        if feat.get("dtype") in ("video", "image") or key in ("observation.state", "action"):
            sig[key] = {"dtype": "camera" if feat["dtype"] in ("video", "image") else feat["dtype"],
                        "shape": list(feat["shape"]), "names": feat.get("names")}
    return sig


def open_datasets(paths: Iterable[str]) -> list[DatasetReader]:
    """Open and cross-check datasets; raises DataError naming the dataset (and episode) at the first problem."""
    paths = list(paths)
    if not paths:
        raise DataError("no dataset given; pass --data.paths=PATH[,PATH...] (record one with `vla record`)")
    readers, first = [], None
    for path in paths:
        try:
            reader = DatasetReader(path, decode_images=False)
        except DatasetError as exc:
            raise DataError(f"dataset {path}: {exc}") from exc
        if reader.num_episodes == 0 or len(reader) == 0:
            raise DataError(f"dataset {path} has no episodes; record some with `vla record` or drop it "
                            "from --data.paths")
        for key in ("observation.state", "action"):
            if key not in reader.features:
                raise DataError(f"dataset {path} has no '{key}' feature; features: {', '.join(reader.features)}")
        if not reader.camera_keys:
            raise DataError(f"dataset {path} has no camera (a video or image feature such as "
                            "observation.images.top); the policies need one")
        sig = _features_signature(reader.info)
        if first is None:
            first = (path, sig, float(reader.fps))
        else:
            diffs = [f"{k}: {first[1].get(k)} in {first[0]} vs {sig.get(k)}"
                     for k in sorted(set(sig) | set(first[1])) if sig.get(k) != first[1].get(k)]
            if float(reader.fps) != first[2]:
                diffs.append(f"fps: {first[2]:g} in {first[0]} vs {reader.fps:g}")
            if diffs:
                raise DataError(f"dataset {path} differs from {first[0]}; train them separately or convert one. "
                                + "; ".join(diffs))
        for ep in range(reader.num_episodes):
            for key in reader.video_keys:
                try:
                    video = reader.video_path(ep, key)
                except DatasetError as exc:
                    raise DataError(f"dataset {path}: {exc}") from exc
                if not video.is_file():
                    raise DataError(f"dataset {path}, episode {ep}: video file {video} is missing; restore it or "
                                    "delete the episode")
        readers.append(reader)
    return readers


class FrameCache:
    """Decoded episode frames on disk (.npy), keyed by the file they come from (path, size, mtime), the episode's
    place in it (episode index, row range, and for a video its from/to timestamps: LeRobot packs many episodes
    into one file) and the image size."""

    def __init__(self, root: Path | None):
        self.root = root
        if root is not None:
            root.mkdir(parents=True, exist_ok=True)

    @staticmethod
    def _key(reader: DatasetReader, ep: int, key: str, size: tuple[int, int]) -> str:
        meta = reader.episode(ep)
        if key in reader.video_keys:
            source = reader.video_path(ep, key)
            span = reader.video_span(ep, key)
        else:  # images stored in the parquet
            source, span = reader.data_path(ep), None
        st = source.stat()
        ident = (f"{source.resolve()}|{st.st_size}|{st.st_mtime_ns}|{key}|{ep}|{meta['dataset_from_index']}|"
                 f"{meta['length']}|{span}|{size}")
        return hashlib.sha256(ident.encode()).hexdigest()[:24]

    def load(self, reader: DatasetReader, ep: int, key: str, size: tuple[int, int]) -> np.ndarray:
        path = self.root / f"{self._key(reader, ep, key, size)}.npy" if self.root is not None else None
        if path is not None and path.is_file():
            return np.load(path)
        frames = reader.episode_images(ep, key)
        if frames.shape[1:3] != tuple(size):
            frames = np.stack([model_image(f, *size) for f in frames])
        frames = np.ascontiguousarray(frames)
        if path is not None:
            tmp = path.parent / f"{path.stem}.{os.getpid()}.tmp.npy"  # DDP ranks may decode the same episode
            np.save(tmp, frames)
            tmp.replace(path)
        return frames


def load_training_data(config: DataConfig, image_size: tuple[int, int] | None = None,
                       progress: Callable[[Iterable], Iterable] = lambda it: it) -> TrainingData:
    """Read every episode of ``config.paths`` into memory and split train/validation by episode."""
    from vla_core.paths import workspace_path
    readers = open_datasets(config.paths)
    first = readers[0]
    keys = tuple(first.camera_keys)
    cameras = tuple(camera_name(k) for k in keys)
    native = tuple(first.features[keys[0]]["shape"][:2])
    size = tuple(image_size) if image_size else native
    cache = FrameCache(Path(config.cache_dir) if config.cache_dir else workspace_path("runs/cache"))
    jobs = [(reader, ep) for reader in readers for ep in range(reader.num_episodes)]
    episodes: list[Episode] = []
    digest = hashlib.sha256()
    for reader, ep in progress(jobs):
        name = str(reader.root)
        try:
            cols = reader.episode_data(ep)
            images = {cam: cache.load(reader, ep, key, size) for cam, key in zip(cameras, keys)}
        except (DatasetError, OSError, ValueError) as exc:
            raise DataError(f"dataset {name}, episode {ep}: {exc}") from exc
        meta = reader.episode(ep)
        n = int(meta["length"])
        valid = np.asarray(cols["valid"], bool) if "valid" in cols else np.ones(n, bool)
        action = np.asarray(cols["action"], np.float32).reshape(n, -1)
        state = np.asarray(cols["observation.state"], np.float32).reshape(n, -1)
        bad = np.flatnonzero(valid & ~(np.isfinite(action).all(1) & np.isfinite(state).all(1)))
        if bad.size:
            raise DataError(f"dataset {name}, episode {ep}: non-finite action or state at frame {int(bad[0])} "
                            f"({bad.size} frames) of frames marked valid; re-record the episode or mark them invalid")
        for cam, frames in images.items():
            if len(frames) != n:
                raise DataError(f"dataset {name}, episode {ep}: {len(frames)} video frames of {cam} for {n} rows")
        instruction = meta.get("instruction") or (meta.get("tasks") or [""])[0]
        if not instruction:
            raise DataError(f"dataset {name}, episode {ep} has no instruction (tasks is empty); the policies are "
                            "instruction-conditioned")
        reward = np.asarray(cols["next.reward"], np.float32) if "next.reward" in cols else None
        env_state = np.asarray(cols[ENV_STATE], np.float32).reshape(n, -1) if ENV_STATE in cols else None
        episodes.append(Episode(name, ep, instruction, images, state, action, valid,
                                np.asarray(cols["intervention"], bool) if "intervention" in cols else np.zeros(n, bool),
                                meta.get("success"), reward, env_state))
        digest.update(json.dumps([name, ep, n, instruction], sort_keys=True).encode())
        digest.update(np.ascontiguousarray(action).tobytes())
    if not any(e.valid.any() for e in episodes):
        raise DataError(f"datasets {', '.join(config.paths)} have no valid frame to train on")
    order = list(range(len(episodes)))
    random.Random(config.split_seed).shuffle(order)
    n_val = int(round(config.val_fraction * len(order)))
    if config.val_fraction > 0 and len(order) >= 2:
        n_val = max(1, n_val)
    val, train = sorted(order[:n_val]), sorted(order[n_val:])
    feats = first.features
    env_names = list(feats.get(ENV_STATE, {}).get("names") or []) \
        if all(e.env_state is not None for e in episodes) else []
    return TrainingData(episodes, train, val, cameras, size, list(feats["observation.state"].get("names") or []),
                        list(feats["action"].get("names") or []), float(first.fps), digest.hexdigest()[:16],
                        sorted({e.instruction for e in episodes}), env_names)


class LanguageTable:
    """Embeddings of every instruction and its paraphrases, computed once with the bundled text encoder."""

    def __init__(self, instructions: list[str], paraphrase: str, encode: Callable[[str], np.ndarray]):
        para = PARAPHRASERS[paraphrase]
        texts: list[str] = []
        self.variants: dict[str, np.ndarray] = {}
        for instruction in instructions:
            ids = []
            for text in para(instruction):
                if text not in texts:
                    texts.append(text)
                ids.append(texts.index(text))
            self.variants[instruction] = np.asarray(ids, np.int64)
        self.texts = texts
        self.embeddings = np.stack([np.asarray(encode(t), np.float32) for t in texts])
        self.exact = {instruction: texts.index(instruction) for instruction in instructions}


class PlanarSymmetry:
    """The 8 symmetries of a square table seen from above, applied to whole samples (see DataConfig.symmetry)."""

    def __init__(self, data: TrainingData):
        joints = list(dict.fromkeys(n.split(".", 1)[0] for n in data.state_names))
        fields = list(dict.fromkeys(n.split(".", 1)[1] for n in data.state_names if "." in n))
        if len(joints) != 2 or len(data.action_names) != 2 or data.image_size[0] != data.image_size[1]:
            raise DataError(f"data.symmetry=planar_xy needs two joints (x, y) in observation.state, a 2-d action and "
                            f"square images; this data has joints {joints}, actions {data.action_names}, images "
                            f"{data.image_size}; use data.symmetry=none")
        index = {n: i for i, n in enumerate(data.state_names)}
        self.pairs = [(index[f"{joints[0]}.{f}"], index[f"{joints[1]}.{f}"]) for f in fields]
        # The environment state's planar positions (<thing>.x, <thing>.y, base_link) turn with the table.
        env = {n: i for i, n in enumerate(data.env_state_names)}
        self.env_pairs = [(env[n], env[n[:-2] + ".y"]) for n in data.env_state_names
                          if n.endswith(".x") and n[:-2] + ".y" in env]

    def apply(self, batch: dict, rng: np.random.Generator) -> None:
        """In place: each sample gets one of the 8 symmetries at random (identity included)."""
        g = rng.integers(0, 8, len(batch["state"]))
        state, action = batch["state"].copy(), batch["action"].copy()
        env = batch["env_state"].copy() if "env_state" in batch else None
        images = {cam: img.copy() for cam, img in batch["images"].items()}
        for i in np.flatnonzero(g):
            swap, neg_x, neg_y = bool(g[i] & 4), bool(g[i] & 1), bool(g[i] & 2)
            for cam, img in images.items():
                frame = img[i]  # (H, W, 3), or (T, H, W, 3) with an observation history
                if swap:  # x <-> y: transpose rows (x) and columns (y)
                    frame = frame.swapaxes(-3, -2)
                if neg_x:  # image up is +x
                    frame = np.flip(frame, -3)
                if neg_y:  # image left is +y
                    frame = np.flip(frame, -2)
                img[i] = frame
            for values, pairs in ((state, self.pairs), (env, self.env_pairs if env is not None else ())):
                for xi, yi in pairs:  # values[i]: (S,), or (T, S) with an observation history
                    if swap:
                        values[i, ..., [xi, yi]] = values[i, ..., [yi, xi]]
                    values[i, ..., xi] *= -1.0 if neg_x else 1.0
                    values[i, ..., yi] *= -1.0 if neg_y else 1.0
            if swap:
                action[i] = action[i][:, ::-1]
            if neg_x:
                action[i, :, 0] *= -1.0
            if neg_y:
                action[i, :, 1] *= -1.0
        batch["images"], batch["state"], batch["action"] = images, state, action
        if env is not None:
            batch["env_state"] = env


class BatchSampler:
    """Random batches of training samples (frame, action chunk, instruction) from in-memory episodes.

    ``frames`` selects the samples (e.g. only operator-labelled frames for HG-DAgger); every sample's target is
    the chunk of the next K recorded actions, padded (and masked) past the episode's end, at invalid frames and at
    frames the filter leaves out. With ``history`` T > 1 (policy.n_obs_steps) a sample's images and state are
    those of its last T frames, (B, T, ...) oldest first, the episode's first frame repeated before its start
    (as vla_policy.runner.ObservationHistory pads at run time).
    """

    def __init__(self, data: TrainingData, episodes: list[int], chunk_size: int, language: LanguageTable,
                 frame_filter: Callable[[Episode], np.ndarray] | None = None, weights: np.ndarray | None = None,
                 symmetry: str = "none", history: int = 1):
        eps = [data.episodes[i] for i in episodes]
        if not eps:
            raise DataError("no episode to sample from (is data.val_fraction too high for this many episodes?)")
        self.cameras, self.k, self.history = data.cameras, int(chunk_size), int(history)
        self.episode_ids = list(episodes)
        self.images = {cam: np.concatenate([e.images[cam] for e in eps]) for cam in data.cameras}
        self.state = np.concatenate([e.state for e in eps])
        self.action = np.nan_to_num(np.concatenate([e.action for e in eps]))
        # NaN where a frame has none (the auxiliary loss leaves those out)
        self.env_state = np.concatenate([e.env_state for e in eps]) if data.env_state_names else None
        valid = np.concatenate([e.valid for e in eps])
        starts = np.concatenate([[0], np.cumsum([len(e) for e in eps])[:-1]])
        self.end = np.concatenate([np.full(len(e), s + len(e)) for s, e in zip(starts, eps)])
        self.start = np.concatenate([np.full(len(e), s) for s, e in zip(starts, eps)])
        self.valid = valid
        lang_ids = [language.variants[e.instruction] for e in eps]
        self.episode_of = np.concatenate([np.full(len(e), i) for i, e in enumerate(eps)])
        self.lang_variants = lang_ids
        self.lang_exact = np.array([language.exact[e.instruction] for e in eps])
        self.embeddings = language.embeddings
        keep = valid.copy()
        masks = [frame_filter(e) for e in eps] if frame_filter is not None else []
        # Frames whose actions are targets: a filtered sample's chunk stops where the filter does (an operator's
        # takeover handed back to the policy: the policy's own next actions are no label).
        self.labelled = np.concatenate(masks).astype(bool) if masks and all(m is not None for m in masks) \
            else np.ones(valid.size, bool)
        keep &= self.labelled
        self.samples = np.flatnonzero(keep)
        if self.samples.size == 0:
            raise DataError("no frame passes the algorithm's filter (e.g. HG-DAgger found no operator-labelled "
                            "frame); record demonstrations or interventions first")
        self.weights = None if weights is None else np.asarray(weights, np.float64)[self.samples]
        self.symmetry = PlanarSymmetry(data) if symmetry == "planar_xy" else None

    def __len__(self) -> int:
        return int(self.samples.size)

    def gather(self, frames: np.ndarray, paraphrase: bool, rng: np.random.Generator) -> dict[str, np.ndarray]:
        """Numpy arrays of one batch: images (uint8 HWC per camera), state, language, action chunk, pad mask;
        with a history, images (B, T, H, W, 3) and state (B, T, S)."""
        steps = frames[:, None] + np.arange(self.k)[None]
        pad = steps >= self.end[frames][:, None]
        steps = np.minimum(steps, self.end[frames][:, None] - 1)
        pad |= ~(self.valid[steps] & self.labelled[steps])
        if paraphrase:
            lang = np.array([rng.choice(self.lang_variants[e]) for e in self.episode_of[frames]])
        else:
            lang = self.lang_exact[self.episode_of[frames]]
        seen = frames  # the observed frames: (B,), or (B, T) oldest first with a history
        if self.history > 1:
            seen = np.maximum(frames[:, None] - np.arange(self.history - 1, -1, -1)[None], self.start[frames][:, None])
        batch = {"images": {cam: self.images[cam][seen] for cam in self.cameras}, "state": self.state[seen],
                 "language": self.embeddings[lang], "action": self.action[steps], "action_pad": pad,
                 "frames": frames}
        if self.env_state is not None:
            batch["env_state"] = self.env_state[frames]
        if paraphrase and self.symmetry is not None:  # augmenting: the training batches only
            self.symmetry.apply(batch, rng)
        return batch

    def epoch(self, batch_size: int, rng: np.random.Generator, rank: int = 0, world: int = 1) -> list[np.ndarray]:
        """One pass over the samples in random order, split across ``world`` ranks (equal batch counts)."""
        if self.weights is not None:
            order = rng.choice(self.samples, size=self.samples.size, p=self.weights / self.weights.sum())
        else:
            order = rng.permutation(self.samples)
        per_rank = order.size // world
        mine = order[rank * per_rank:(rank + 1) * per_rank]
        n = max(1, mine.size // batch_size)
        return [mine[i * batch_size:(i + 1) * batch_size] for i in range(n)] if mine.size >= batch_size \
            else [mine]
