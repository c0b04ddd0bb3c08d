"""A reward artifact served on onnxruntime, without torch (HIL-SERL's learned reward on the robot).

:class:`RewardModel` verifies an artifact written by ``vla_trainer.rl.reward.export_reward_model`` (format
``vla-reward-artifact/1``: checksums, the golden pair, and, given a robot contract and text encoder, every feature
it reads) and returns success probabilities for frames. The reward node (:mod:`vla_policy.reward_node`) serves it
on the graph; the trainer trains and exports it.
"""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from vla_core.artifact import MANIFEST, ArtifactError, compatibility, sha256_file
from vla_core.observation import to_chw_float

REWARD_FORMAT = "vla-reward-artifact/1"


class RewardModel:
    """A verified reward artifact on onnxruntime (CPU): checksums and the golden pair are checked before use,
    and ``contract`` (a vla_core.contract.RobotContract), when given, must serve every feature it reads."""

    def __init__(self, path: str | Path, contract=None, encoder_id: str | None = None):
        import onnxruntime as ort
        self.path = Path(path)
        try:
            manifest = json.loads((self.path / MANIFEST).read_text())
        except (FileNotFoundError, json.JSONDecodeError) as exc:
            raise ArtifactError(f"{self.path}: no readable {MANIFEST} ({exc}); export the reward model again") from None
        if manifest.get("format") != REWARD_FORMAT:
            raise ArtifactError(f"{self.path}: format {manifest.get('format')!r} is not {REWARD_FORMAT!r}; "
                                "is this a policy artifact rather than a reward model?")
        bad = [f"{rel} is missing" if not (self.path / rel).is_file() else f"{rel} does not match its sha256"
               for rel, digest in manifest["files"].items()
               if not (self.path / rel).is_file() or sha256_file(self.path / rel) != digest]
        if bad:
            raise ArtifactError(f"{self.path}: checksum verification failed: {'; '.join(bad)}; re-export it")
        if contract is not None:
            problems = compatibility(manifest, contract, encoder_id)
            if problems:
                raise ArtifactError(f"reward model {self.path} does not fit robot contract '{contract.robot}': "
                                    + "; ".join(problems))
        self.manifest, self.threshold = manifest, float(manifest["threshold"])
        self.session = ort.InferenceSession(str(self.path / manifest["onnx"]["file"]),
                                            providers=["CPUExecutionProvider"])
        with np.load(self.path / manifest["golden"]["file"], allow_pickle=False) as g:
            inputs = {k.removeprefix("input:"): g[k] for k in g.files if k.startswith("input:")}
            want = g["output:success_probability"]
        got = self.run(inputs)
        if not (np.all(np.isfinite(got)) and np.max(np.abs(got - want)) <= float(manifest["golden"]["atol"])):
            raise ArtifactError(f"reward model {self.path}: golden output {got} differs from the exported {want}")

    def run(self, feeds: dict[str, np.ndarray]) -> np.ndarray:
        return self.session.run(["success_probability"], feeds)[0]

    def probability(self, images: dict[str, np.ndarray], state: np.ndarray, language: np.ndarray) -> np.ndarray:
        """(B,) success probabilities for uint8 frames (B, H, W, 3) per camera, states (B, S), embeddings (B, L)."""
        feeds = {f"image_{cam}": to_chw_float(np.asarray(v)) for cam, v in images.items()}
        feeds["state"] = np.asarray(state, np.float32)
        feeds["language"] = np.asarray(language, np.float32)
        return self.run(feeds)

    def reward(self, images, state, language) -> tuple[np.ndarray, np.ndarray]:
        """(reward (B,) float32 in {0, 1}, success (B,) bool) at the artifact's threshold."""
        success = self.probability(images, state, language) >= self.threshold
        return success.astype(np.float32), success


def resolve_reward_model(spec: str, models_dir: Path) -> Path:
    """``spec``: a directory, or NAME/VERSION under ``models_dir``; raises ArtifactError saying what to give."""
    if not spec.strip():
        raise ArtifactError("no reward model given: set model to a reward artifact's directory or NAME/VERSION "
                            f"under {models_dir} (vla_trainer.rl.reward.export_reward_model writes one)")
    for path in (Path(spec), Path(models_dir) / spec):
        if (path / MANIFEST).is_file():
            return path
    raise ArtifactError(f"no reward artifact at {spec!r} (nor under {models_dir}): give its directory or "
                        "NAME/VERSION; a reward model's directory holds manifest.json and reward.onnx")


class SuccessJudge:
    """Turns per-frame rewards into at most one success per episode: success once ``success_frames`` judged
    frames in a row reach the threshold (one frame of a classifier is a noisy witness). ``start()`` opens an
    episode (a START event), ``end()`` closes it (SUCCESS, TIMEOUT or ABORTED from anyone); frames judged
    outside an episode still get their reward but never a success."""

    def __init__(self, success_frames: int):
        if success_frames < 1:
            raise ValueError(f"success_frames {success_frames} must be at least 1")
        self.success_frames = int(success_frames)
        self.in_episode = False
        self.streak = 0
        self.succeeded = False

    def start(self) -> None:
        self.in_episode, self.streak, self.succeeded = True, 0, False

    def end(self) -> None:
        self.in_episode, self.streak = False, 0

    def judge(self, reward: float) -> bool:
        """One frame's 0/1 reward; True when this frame completes the streak (once per episode)."""
        self.streak = self.streak + 1 if reward >= 1.0 else 0
        if self.in_episode and not self.succeeded and self.streak >= self.success_frames:
            self.succeeded = True
            return True
        return False
