"""A learned reward: a success classifier over frames (HIL-SERL's reward model), and its ONNX artifact.

The classifier sees what the policies see (images (B, 3, H, W) float32 in [0, 1] per camera, the state in SI
units, the instruction's embedding) through the same FiLM CNN and spatial-softmax keypoints, and returns the logit
of "the task is done in this frame". A robot without a simulator's ``is_success`` gets its reward from it:
``reward = 1`` when the probability passes the threshold, and a success event ends the episode.

Labels come from the datasets the recorder writes: an episode's success label (the episode's ``success`` field,
set when it is saved or afterwards by the recorder's success/failure marks, ``~/mark_episode``) makes its last
``positive_frames`` valid frames positives (where the task is done: the recorder saves an episode when success is
reached); every other frame of it, and every frame of a failed episode, is a negative. Episodes without a label are
left out and counted. Precision and recall are measured on held-out episodes (vla_trainer.data's split by episode).

The artifact (``models/<name>/<version>/``) is the policy artifact's layout with its own format,
``vla-reward-artifact/1``: ``reward.onnx`` (inputs ``image_<camera>``, ``state``, ``language``; output
``success_probability`` (B,)), safetensors weights, a golden pair, the threshold and the held-out precision/recall,
every file's sha256, written atomically. Its format differs on purpose: the policy node's verify_artifact refuses it,
so a reward model can never be deployed as a policy.
"""
from __future__ import annotations

import json
import os
import shutil
import tempfile
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from safetensors.torch import save_file
from torch import nn

from vla_core.artifact import MANIFEST, ArtifactError, name_problem, save_golden, sha256_file
from vla_core.observation import to_chw_float
from vla_policy.reward import REWARD_FORMAT, RewardModel  # noqa: F401 - served where policies are served
from vla_trainer.policies.encoders import FiLMCNN, SpatialSoftmax



@dataclass(frozen=True)
class SuccessClassifierConfig:
    cameras: tuple[str, ...] = ("top",)
    image_size: tuple[int, int] = (96, 96)
    state_dim: int = 4
    language_dim: int = 384
    state_mean: tuple[float, ...] = ()
    state_std: tuple[float, ...] = ()
    channels: int = 32
    hidden: int = 128
    image_downsample: int = 1

    def __post_init__(self):
        for name in ("cameras", "image_size", "state_mean", "state_std"):
            object.__setattr__(self, name, tuple(getattr(self, name)))
        for name in ("state_mean", "state_std"):
            if getattr(self, name) and len(getattr(self, name)) != self.state_dim:
                raise ValueError(f"{name} has {len(getattr(self, name))} values for state_dim {self.state_dim}")
        if any(not v > 0 for v in self.state_std):
            raise ValueError(f"state_std must be positive everywhere, got {self.state_std}")
        if not self.cameras:
            raise ValueError("the success classifier needs at least one camera")
        if self.image_downsample < 1 or any(v % (8 * self.image_downsample) for v in self.image_size):
            raise ValueError(f"image_downsample {self.image_downsample}: the image size {self.image_size} must be "
                             "divisible by 8 x image_downsample")
        if self.channels < 8 or self.channels % 8 or self.hidden < 1:
            raise ValueError(f"channels {self.channels} must be a multiple of 8 and hidden {self.hidden} >= 1")


class SuccessClassifier(nn.Module):
    """(images, state, language) -> success logit (B,); ``probability`` applies the sigmoid."""

    def __init__(self, config: SuccessClassifierConfig):
        super().__init__()
        self.config = config
        self.encoders = nn.ModuleDict({cam: FiLMCNN(config.language_dim, config.channels, config.image_downsample)
                                       for cam in config.cameras})
        self.keypoints = SpatialSoftmax()
        mean = torch.tensor(config.state_mean or [0.0] * config.state_dim, dtype=torch.float32)
        std = torch.tensor(config.state_std or [1.0] * config.state_dim, dtype=torch.float32)
        self.register_buffer("state_mean", mean)
        self.register_buffer("state_std", std)
        width = 2 * config.channels * len(config.cameras) + config.state_dim + config.language_dim
        self.head = nn.Sequential(nn.Linear(width, config.hidden), nn.LayerNorm(config.hidden), nn.SiLU(),
                                  nn.Dropout(0.1), nn.Linear(config.hidden, 1))

    def forward(self, images: dict[str, torch.Tensor], state: torch.Tensor, language: torch.Tensor) -> torch.Tensor:
        feats = [self.keypoints(self.encoders[cam](images[cam], language)) for cam in self.config.cameras]
        x = torch.cat([*feats, (state - self.state_mean) / self.state_std, language], dim=1)
        return self.head(x).squeeze(-1)

    def probability(self, images, state, language) -> torch.Tensor:
        return torch.sigmoid(self(images, state, language))


# --- labels and frames -----------------------------------------------------------------------------------------
def frame_labels(episode, positive_frames: int = 3) -> np.ndarray | None:
    """(N,) bool success label per frame of a vla_trainer.data Episode, or None when the episode has no success
    label. Positives: the last ``positive_frames`` valid frames of a successful episode."""
    if positive_frames < 1:
        raise ValueError(f"positive_frames {positive_frames} must be at least 1")
    if episode.success is None:
        return None
    labels = np.zeros(len(episode), bool)
    if episode.success:
        valid = np.flatnonzero(episode.valid)
        labels[valid[-positive_frames:]] = True
    return labels


def frames_from_episodes(episodes, language, positive_frames: int = 3) -> tuple[dict, np.ndarray, dict]:
    """(arrays, labels, counts) over the valid frames of labelled episodes: ``arrays`` holds ``images`` (camera
    -> (N, H, W, 3) uint8), ``state`` (N, S), ``language`` (N, L) (the instruction's exact embedding from a
    vla_trainer.data.LanguageTable) and ``episode`` (N,) the position in ``episodes``."""
    parts, labels, counts = [], [], {"episodes": 0, "unlabelled_episodes": 0, "positives": 0, "negatives": 0}
    for i, e in enumerate(episodes):
        lab = frame_labels(e, positive_frames)
        if lab is None:
            counts["unlabelled_episodes"] += 1
            continue
        keep = e.valid
        emb = language.embeddings[language.exact[e.instruction]]
        parts.append({"images": {cam: v[keep] for cam, v in e.images.items()}, "state": e.state[keep],
                      "language": np.repeat(emb[None], int(keep.sum()), 0), "episode": np.full(int(keep.sum()), i)})
        labels.append(lab[keep])
        counts["episodes"] += 1
    if not parts:
        raise ValueError("no episode has a success label; mark episodes with the recorder's success/failure keys "
                         "(s / f) or ~/mark_episode, or save them with success=True/False")
    arrays = {"images": {cam: np.concatenate([p["images"][cam] for p in parts]) for cam in parts[0]["images"]},
              **{k: np.concatenate([p[k] for p in parts]) for k in ("state", "language", "episode")}}
    y = np.concatenate(labels)
    counts["positives"], counts["negatives"] = int(y.sum()), int((~y).sum())
    return arrays, y, counts


# --- training and evaluation -----------------------------------------------------------------------------------
def _tensors(arrays: dict, idx: np.ndarray) -> tuple[dict, torch.Tensor, torch.Tensor]:
    images = {cam: torch.from_numpy(to_chw_float(v[idx])) for cam, v in arrays["images"].items()}
    return images, torch.from_numpy(arrays["state"][idx]), torch.from_numpy(arrays["language"][idx])


def fit_classifier(model: SuccessClassifier, arrays: dict, labels: np.ndarray, steps: int = 200,
                   batch_size: int = 32, lr: float = 1e-3, seed: int = 0, image_shift: int = 2) -> dict[str, float]:
    """Binary cross-entropy with balanced batches (half positives: success frames are rare). Returns the last
    loss and the steps taken. Raises ValueError when one class is missing or a loss is not finite."""
    labels = np.asarray(labels, bool)
    pos, neg = np.flatnonzero(labels), np.flatnonzero(~labels)
    if not len(pos) or not len(neg):
        raise ValueError(f"training the success classifier needs both classes; got {len(pos)} success and "
                         f"{len(neg)} other frames (record failures, or raise positive_frames)")
    from vla_trainer.train import augment
    rng, gen = np.random.default_rng(seed), torch.Generator().manual_seed(seed)
    torch.manual_seed(seed)
    opt = torch.optim.AdamW(model.parameters(), lr=lr, weight_decay=1e-4)
    model.train()
    loss = torch.tensor(float("nan"))
    half = max(1, batch_size // 2)
    for _ in range(steps):
        idx = np.concatenate([rng.choice(pos, half), rng.choice(neg, batch_size - half)])
        images, state, language = _tensors(arrays, idx)
        if image_shift:
            images = {cam: augment(x, image_shift, 0.05, gen) for cam, x in images.items()}
        target = torch.from_numpy(labels[idx].astype(np.float32))
        loss = nn.functional.binary_cross_entropy_with_logits(model(images, state, language), target)
        if not torch.isfinite(loss):
            raise ValueError(f"success classifier loss is {float(loss.detach())}; lower the learning rate ({lr})")
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
    model.eval()
    return {"loss": float(loss.detach()), "steps": steps}


@torch.no_grad()
def predict(model: SuccessClassifier, arrays: dict, batch_size: int = 256) -> np.ndarray:
    """(N,) success probabilities."""
    model.eval()
    n = len(arrays["state"])
    out = [model.probability(*_tensors(arrays, np.arange(i, min(n, i + batch_size)))).numpy()
           for i in range(0, n, batch_size)]
    return np.concatenate(out) if out else np.zeros(0, np.float32)


def precision_recall(probability: np.ndarray, labels: np.ndarray, threshold: float = 0.5) -> dict[str, Any]:
    """Precision, recall and the confusion counts at ``threshold``, the mean probability per class and the ROC
    AUC; precision is None with no positive prediction, recall None with no positive label (never a made-up
    number)."""
    probability, labels = np.asarray(probability, np.float64), np.asarray(labels, bool)
    if probability.shape != labels.shape:
        raise ValueError(f"{probability.shape} probabilities for {labels.shape} labels")
    pred = probability >= threshold
    tp, fp = int((pred & labels).sum()), int((pred & ~labels).sum())
    fn, tn = int((~pred & labels).sum()), int((~pred & ~labels).sum())
    mean = lambda mask: float(probability[mask].mean()) if mask.any() else None  # noqa: E731
    return {"precision": tp / (tp + fp) if tp + fp else None, "recall": tp / (tp + fn) if tp + fn else None,
            "tp": tp, "fp": fp, "fn": fn, "tn": tn, "threshold": float(threshold), "frames": int(labels.size),
            "mean_probability_success_frames": mean(labels), "mean_probability_other_frames": mean(~labels),
            "auc": _auc(probability, labels)}


def _auc(probability: np.ndarray, labels: np.ndarray) -> float | None:
    """Area under the ROC curve (the chance that a success frame outscores another frame; ties count half), or
    None without both classes."""
    pos, neg = probability[labels], probability[~labels]
    if not len(pos) or not len(neg):
        return None
    greater = (pos[:, None] > neg[None]).sum() + 0.5 * (pos[:, None] == neg[None]).sum()
    return float(greater / (len(pos) * len(neg)))


def train_success_classifier(data, language, *, positive_frames: int = 3, steps: int = 300, batch_size: int = 32,
                             lr: float = 1e-3, seed: int = 0, threshold: float = 0.5,
                             **net_overrides) -> tuple[SuccessClassifier, dict[str, Any]]:
    """Train on ``data.train_episodes`` (vla_trainer.data.TrainingData), report precision/recall on
    ``data.val_episodes``. ``language`` is a vla_trainer.data.LanguageTable of ``data.instructions``."""
    train_eps = [data.episodes[i] for i in data.train_episodes]
    val_eps = [data.episodes[i] for i in data.val_episodes]
    if not val_eps:
        raise ValueError("no held-out episode to measure precision/recall on; set data.val_fraction > 0 with two "
                         "or more episodes")
    arrays, labels, counts = frames_from_episodes(train_eps, language, positive_frames)
    state = arrays["state"].astype(np.float64)
    config = SuccessClassifierConfig(cameras=data.cameras, image_size=data.image_size, state_dim=state.shape[1],
                                     language_dim=int(language.embeddings.shape[1]),
                                     state_mean=tuple(state.mean(0)), state_std=tuple(np.maximum(state.std(0), 1e-3)),
                                     **net_overrides)
    model = SuccessClassifier(config)
    fit = fit_classifier(model, arrays, labels, steps=steps, batch_size=batch_size, lr=lr, seed=seed)
    val_arrays, val_labels, val_counts = frames_from_episodes(val_eps, language, positive_frames)
    held_out = precision_recall(predict(model, val_arrays), val_labels, threshold)
    report = {"train": {**counts, **fit}, "held_out": {**val_counts, **held_out}, "positive_frames": positive_frames}
    return model, report


# --- the artifact ----------------------------------------------------------------------------------------------
def _feeds(config: SuccessClassifierConfig, seed: int = 0) -> dict[str, np.ndarray]:
    rng = np.random.default_rng(seed)
    h, w = config.image_size
    feeds = {f"image_{cam}": rng.random((1, 3, h, w), dtype=np.float32) for cam in config.cameras}
    feeds["state"] = np.asarray(config.state_mean or np.zeros(config.state_dim), np.float32)[None]
    lang = rng.standard_normal((1, config.language_dim)).astype(np.float32)
    feeds["language"] = lang / np.linalg.norm(lang)
    return feeds


class _Flat(nn.Module):
    def __init__(self, model: SuccessClassifier):
        super().__init__()
        self.model, self.cameras = model, model.config.cameras

    def forward(self, *args: torch.Tensor) -> torch.Tensor:
        n = len(self.cameras)
        return self.model.probability(dict(zip(self.cameras, args[:n])), args[n], args[n + 1])


def export_reward_model(model: SuccessClassifier, models_dir: Path, name: str, version: str, *, fps: float,
                        state_names: list[str], encoder_id: str, threshold: float = 0.5,
                        report: dict | None = None, atol: float = 1e-4) -> Path:
    """Write ``models_dir/name/version`` (see the module docstring) after onnxruntime agrees with torch within
    ``atol``; returns its path. Nothing is written when they disagree or the version exists."""
    import onnxruntime as ort
    for label, value in (("name", name), ("version", version)):
        problem = name_problem(f"reward model {label}", value)
        if problem:
            raise ArtifactError(problem)
    if not 0.0 < threshold < 1.0:
        raise ValueError(f"threshold {threshold} must be a probability in (0, 1)")
    final = Path(models_dir) / name / version
    if final.exists():
        raise ArtifactError(f"{final} already exists; artifacts are immutable: choose a new version")
    config = model.config
    model = model.eval()
    feeds = _feeds(config)
    names = list(feeds)
    final.parent.mkdir(parents=True, exist_ok=True)
    stage = Path(tempfile.mkdtemp(prefix=f".{version}.", dir=final.parent))
    try:
        args = tuple(torch.from_numpy(feeds[n]) for n in names)
        flat = _Flat(model).eval()  # the exporter restores the wrapper's mode afterwards: eval, never dropout
        with torch.no_grad():
            expected = flat(*args).numpy()
            torch.onnx.export(flat, args, str(stage / "reward.onnx"), input_names=names,
                              output_names=["success_probability"], dynamo=False, opset_version=17,
                              dynamic_axes={n: {0: "batch"} for n in [*names, "success_probability"]})
        session = ort.InferenceSession(str(stage / "reward.onnx"), providers=["CPUExecutionProvider"])
        got = session.run(["success_probability"], feeds)[0]
        diff = float(np.max(np.abs(got - expected)))
        if not np.isfinite(diff) or diff > atol:
            raise ArtifactError(f"ONNX export of reward model {name} disagrees with torch by {diff:.3g} > {atol:g}; "
                                "not written")
        save_golden(stage / "golden.npz", feeds, {"success_probability": expected})
        save_file({k: v.detach().contiguous() for k, v in model.state_dict().items()}, str(stage / "model.safetensors"))
        h, w = config.image_size
        features = {f"observation.images.{cam}": {"dtype": "video", "shape": [h, w, 3]} for cam in config.cameras}
        features["observation.state"] = {"dtype": "float32", "shape": [config.state_dim], "names": list(state_names)}
        features["observation.language"] = {"dtype": "float32", "shape": [config.language_dim],
                                            "encoder_id": encoder_id}
        inputs = {f"observation.images.{cam}": f"image_{cam}" for cam in config.cameras}
        inputs.update({"observation.state": "state", "observation.language": "language"})
        files = ("reward.onnx", "golden.npz", "model.safetensors")
        manifest = {"format": REWARD_FORMAT, "name": name, "version": version, "kind": "success_classifier",
                    "created": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()), "fps": float(fps),
                    "features": features, "threshold": float(threshold),
                    "onnx": {"file": "reward.onnx", "inputs": inputs, "outputs": {"success_probability":
                                                                                  "success_probability"},
                             "opset": 17, "max_abs_diff_vs_torch": diff},
                    "weights": {"file": "model.safetensors", "config": json.loads(json.dumps(asdict(config)))},
                    "golden": {"file": "golden.npz", "atol": atol}, "evaluation": report or {},
                    "files": {f: sha256_file(stage / f) for f in files}}
        (stage / MANIFEST).write_text(json.dumps(manifest, indent=2, sort_keys=True))
        for f in (*files, MANIFEST):
            with open(stage / f, "rb") as fh:
                os.fsync(fh.fileno())
        os.rename(stage, final)
    except BaseException:
        shutil.rmtree(stage, ignore_errors=True)
        raise
    return final
