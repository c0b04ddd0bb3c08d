"""Contrastive vision-language pretraining of the policies' image encoder (CLIP's InfoNCE on (frame, instruction)
pairs from recorded data), with an optional domain-adversarial term, to initialise a policy.

    python -m vla_trainer.pretrain_encoder --data data/recordings/demo --out models/encoder.safetensors \\
        [--target data/recordings/new_scene] [--steps 500] [--channels 64] [--image-downsample 2]
    vla-train --config params/train/tabletop_act.yaml --data.paths=... --train.init_encoder=models/encoder.safetensors

The encoder is the policies' own (``vla_trainer.policies.encoders.make_image_encoder("cnn", ...)``: the FiLM CNN
with spatial-softmax keypoints and channel means on top), run unconditioned (a zero instruction, so the image alone must carry what the
instruction names); a linear head maps its keypoints, and another the instruction's sentence embedding, into one
space where a frame's own instruction must score above the batch's others (symmetric InfoNCE with a learnt
temperature, Radford et al. 2021). Frames whose episodes share an instruction are all positives of each other
(soft targets), so repeats in a batch are not pushed apart.

Domain-adversarial option (Ganin et al. 2016): with ``--target`` datasets (a shifted scene, a new camera), a
classifier learns from the keypoints which domain a frame came from, behind a gradient-reversal layer, so the
encoder learns features the classifier cannot tell apart; ``--adversarial-weight`` scales that term. Only the
target's images are used (its instructions and actions need not be labelled).

``--train.init_encoder`` loads the saved weights into every camera's encoder of a ``cnn`` policy with the same
``channels`` (ACT's ``dim``, the mlp's and diffusion's ``channels``) and ``image_downsample``; a mismatch is an
error naming both. Retrieval accuracy (the share of held-out frames whose best-scoring instruction is their own)
is reported before and after, as the test of the learnt alignment.
"""
from __future__ import annotations

import argparse
import json
import sys
import time
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
import torch
from safetensors.torch import load_file, save_file
from torch import nn

from vla_core.observation import to_chw_float
from vla_trainer.policies.encoders import SpatialSoftmax, make_image_encoder

FORMAT = "vla-image-encoder/1"


@dataclass(frozen=True)
class EncoderPretrainConfig:
    channels: int = 64          # the policy's encoder width: ACT's dim, the mlp's / diffusion's channels
    image_downsample: int = 2
    language_dim: int = 384
    embed_dim: int = 64         # the shared space of images and instructions
    adversarial_weight: float = 0.0

    def __post_init__(self):
        if self.channels < 8 or self.channels % 8 or self.image_downsample < 1 or self.embed_dim < 1:
            raise ValueError(f"channels {self.channels} (a multiple of 8), image_downsample {self.image_downsample} "
                             f"(>= 1) and embed_dim {self.embed_dim} (>= 1) are out of range")
        if self.adversarial_weight < 0:
            raise ValueError(f"adversarial_weight {self.adversarial_weight} must be >= 0")


class _ReverseGradient(torch.autograd.Function):
    @staticmethod
    def forward(ctx, x, weight):
        ctx.weight = weight
        return x.view_as(x)

    @staticmethod
    def backward(ctx, grad):
        return -ctx.weight * grad, None


def reverse_gradient(x: torch.Tensor, weight: float = 1.0) -> torch.Tensor:
    """Identity forward; the gradient comes back multiplied by ``-weight`` (DANN's gradient-reversal layer)."""
    return _ReverseGradient.apply(x, weight)


class ImageTextModel(nn.Module):
    """The policies' image encoder (unconditioned) and projections of images and instructions into one space."""

    def __init__(self, config: EncoderPretrainConfig):
        super().__init__()
        self.config = config
        self.encoder = make_image_encoder("cnn", config.language_dim, config.channels, config.image_downsample)
        self.keypoints = SpatialSoftmax()
        # Keypoints say where each channel fires, the channel means how much: what the instruction names (a colour)
        # may be absent from a frame, which the keypoints alone barely show.
        self.image_proj = nn.Linear(3 * config.channels, config.embed_dim)
        self.text_proj = nn.Linear(config.language_dim, config.embed_dim)
        self.log_scale = nn.Parameter(torch.tensor(float(np.log(1 / 0.07))))  # CLIP's initial temperature
        self.domain = nn.Sequential(nn.Linear(3 * config.channels, 64), nn.SiLU(), nn.Linear(64, 2))

    def features(self, images: torch.Tensor) -> torch.Tensor:
        zero = images.new_zeros(images.shape[0], self.config.language_dim)
        maps = self.encoder(images, zero)
        return torch.cat([self.keypoints(maps), maps.mean(dim=(2, 3))], dim=1)

    def embed_images(self, images: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        feats = self.features(images)
        return nn.functional.normalize(self.image_proj(feats), dim=-1), feats

    def embed_texts(self, language: torch.Tensor) -> torch.Tensor:
        return nn.functional.normalize(self.text_proj(language), dim=-1)


def info_nce(image_z: torch.Tensor, text_z: torch.Tensor, same: torch.Tensor, log_scale: torch.Tensor) -> torch.Tensor:
    """Symmetric InfoNCE over a batch: ``same[i, j]`` is True where frame i's instruction is frame j's, and every
    such pair is a positive (targets spread evenly over them)."""
    logits = log_scale.clamp(max=float(np.log(100.0))).exp() * image_z @ text_z.T
    targets = same.float() / same.float().sum(1, keepdim=True)
    return 0.5 * (-(targets * logits.log_softmax(1)).sum(1).mean() - (targets.T * logits.log_softmax(0)).sum(0).mean())


def retrieval_accuracy(model: ImageTextModel, images: np.ndarray, instruction_ids: np.ndarray,
                       texts: np.ndarray) -> float:
    """Share of frames whose highest-scoring instruction (of ``texts``, (T, L)) is their own."""
    model.eval()
    with torch.no_grad():
        t = model.embed_texts(torch.from_numpy(texts))
        hits = 0
        for i in range(0, len(images), 256):
            z, _ = model.embed_images(torch.from_numpy(to_chw_float(images[i:i + 256])))
            hits += int((torch.argmax(z @ t.T, 1).numpy() == instruction_ids[i:i + 256]).sum())
    model.train()
    return hits / max(1, len(images))


def pretrain(model: ImageTextModel, images: np.ndarray, instruction_ids: np.ndarray, texts: np.ndarray, *,
             target_images: np.ndarray | None = None, steps: int = 500, batch_size: int = 64, lr: float = 1e-3,
             seed: int = 0, image_shift: int = 4, log=print, log_every: int = 100) -> dict:
    """Train ``model`` on frames ``images`` (N, H, W, 3) uint8 with their instruction index (into ``texts``, the
    instructions' embeddings) and, with ``target_images``, the domain-adversarial term. Returns the losses."""
    from vla_trainer.train import augment
    rng = np.random.default_rng(seed)
    gen = torch.Generator().manual_seed(seed)
    opt = torch.optim.AdamW(model.parameters(), lr=lr, weight_decay=1e-4)
    texts_t = torch.from_numpy(texts)
    adversarial = target_images is not None and len(target_images) > 0 and model.config.adversarial_weight > 0
    first = last = None
    t0 = time.perf_counter()
    model.train()
    for step in range(1, steps + 1):
        idx = rng.integers(0, len(images), batch_size)
        x = augment(torch.from_numpy(to_chw_float(images[idx])), image_shift, 0.0, gen)
        ids = torch.from_numpy(instruction_ids[idx])
        image_z, feats = model.embed_images(x)
        loss = info_nce(image_z, model.embed_texts(texts_t[ids]), ids[:, None] == ids[None, :], model.log_scale)
        nce = float(loss.detach())
        if adversarial:
            tidx = rng.integers(0, len(target_images), batch_size)
            xt = augment(torch.from_numpy(to_chw_float(target_images[tidx])), image_shift, 0.0, gen)
            both = torch.cat([feats, model.features(xt)])
            labels = torch.cat([torch.zeros(batch_size, dtype=torch.long), torch.ones(batch_size, dtype=torch.long)])
            domain_loss = nn.functional.cross_entropy(
                model.domain(reverse_gradient(both, model.config.adversarial_weight)), labels)
            loss = loss + domain_loss
        if not torch.isfinite(loss):
            raise FloatingPointError(f"step {step}: the pretraining loss is {float(loss)}; lower --lr")
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        first = nce if first is None else first
        last = nce
        if step % log_every == 0 or step == steps:
            log(f"step {step}/{steps}: InfoNCE {nce:.4f}"
                + (f", domain {float(domain_loss.detach()):.4f}" if adversarial else "")
                + f" ({(time.perf_counter() - t0) / step * 1e3:.0f} ms a step)", flush=True)
    model.eval()
    return {"steps": steps, "nce_first": first, "nce_last": last, "seconds": round(time.perf_counter() - t0, 1)}


def save_encoder(model: ImageTextModel, path: str | Path, report: dict | None = None) -> None:
    """The encoder's weights (what a policy's camera encoder loads) with its shape in the metadata."""
    meta = {"format": FORMAT, "config": json.dumps(asdict(model.config)), "report": json.dumps(report or {})}
    save_file({k: v.detach().contiguous() for k, v in model.encoder.state_dict().items()}, str(path), metadata=meta)


def load_encoder_into(policy: nn.Module, path: str | Path) -> list[str]:
    """Load pretrained encoder weights into every camera encoder of ``policy`` (a policy with ``encoders``, each a
    ``cnn``); returns the cameras. Raises ValueError naming what does not fit."""
    from safetensors import safe_open
    with safe_open(str(path), "pt") as f:
        meta = f.metadata() or {}
    if meta.get("format") != FORMAT:
        raise ValueError(f"{path}: not an image encoder written by vla_trainer.pretrain_encoder (format "
                         f"{meta.get('format')!r})")
    config = json.loads(meta["config"])
    encoders = getattr(policy, "encoders", None)
    if not isinstance(encoders, nn.ModuleDict) or not encoders:
        raise ValueError(f"train.init_encoder={path}: this policy has no per-camera image encoders to load into")
    state = load_file(str(path))
    for cam, encoder in encoders.items():
        mine = encoder.state_dict()
        if set(mine) != set(state) or any(mine[k].shape != state[k].shape for k in state):
            raise ValueError(f"train.init_encoder={path}: pretrained with channels {config['channels']} and "
                             f"image_downsample {config['image_downsample']} on the cnn encoder; camera {cam}'s "
                             "encoder has other shapes: pretrain with the policy's width (ACT: policy.dim; mlp, "
                             "diffusion: policy.channels) and its image_downsample, and policy.image_encoder=cnn")
        if getattr(encoder, "downsample", config["image_downsample"]) != config["image_downsample"]:
            raise ValueError(f"train.init_encoder={path}: pretrained at image_downsample {config['image_downsample']}, "
                             f"the policy pools by {encoder.downsample}; use the same policy.image_downsample")
        encoder.load_state_dict(state, strict=True)
    return list(encoders)


def frames_from(data, episodes: list[int], language, camera: str) -> tuple[np.ndarray, np.ndarray]:
    """Every valid frame of ``camera`` in ``data``'s ``episodes`` and its instruction's row in ``language``."""
    images, ids = [], []
    for i in episodes:
        ep = data.episodes[i]
        keep = np.asarray(ep.valid, bool)
        images.append(ep.images[camera][keep])
        ids.append(np.full(int(keep.sum()), language.exact[ep.instruction], np.int64))
    return np.concatenate(images), np.concatenate(ids)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m vla_trainer.pretrain_encoder", description=__doc__.split("\n\n")[0])
    ap.add_argument("--data", nargs="+", required=True, help="recorded datasets (frames and their instructions)")
    ap.add_argument("--out", required=True, help="where the encoder's weights go (.safetensors)")
    ap.add_argument("--target", nargs="*", default=[], help="datasets of a shifted domain (domain-adversarial term)")
    ap.add_argument("--camera", default="", help="camera whose frames are used (default: the first)")
    ap.add_argument("--channels", type=int, default=64, help="encoder width: the policy's (ACT's policy.dim, 64)")
    ap.add_argument("--image-downsample", type=int, default=2, help="the policy's image_downsample (2)")
    ap.add_argument("--adversarial-weight", type=float, default=0.1, help="gradient-reversal weight with --target")
    ap.add_argument("--steps", type=int, default=500)
    ap.add_argument("--batch-size", type=int, default=64)
    ap.add_argument("--lr", type=float, default=1e-3)
    ap.add_argument("--threads", type=int, default=0, help="torch CPU threads (default: torch's choice)")
    a = ap.parse_args(argv)
    try:
        if not a.out.endswith(".safetensors"):
            raise ValueError(f"--out {a.out}: name a .safetensors file (train.init_encoder reads one)")
        if a.threads:
            torch.set_num_threads(a.threads)
        from vla_language.encoder import InstructionEncoder
        from vla_trainer.data import DataConfig, LanguageTable, load_training_data
        data = load_training_data(DataConfig(paths=tuple(a.data), val_fraction=0.1))
        camera = a.camera or data.cameras[0]
        if camera not in data.cameras:
            raise ValueError(f"--camera {camera}: the data has cameras {', '.join(data.cameras)}")
        encoder = InstructionEncoder()
        language = LanguageTable(data.instructions, "none", lambda t: encoder.encode(t)[1])
        images, ids = frames_from(data, data.train_episodes, language, camera)
        held_images, held_ids = frames_from(data, data.val_episodes or data.train_episodes, language, camera)
        target = None
        if a.target:
            tdata = load_training_data(DataConfig(paths=tuple(a.target), val_fraction=0.0))
            target = np.concatenate([tdata.episodes[i].images[camera] for i in tdata.train_episodes])
        config = EncoderPretrainConfig(channels=a.channels, image_downsample=a.image_downsample,
                                       language_dim=int(language.embeddings.shape[1]),
                                       adversarial_weight=a.adversarial_weight if a.target else 0.0)
        model = ImageTextModel(config)
        before = retrieval_accuracy(model, held_images, held_ids, language.embeddings)
        print(f"{len(images)} frames of {camera} from {len(data.train_episodes)} episodes, {len(language.texts)} "
              f"instructions; held-out retrieval before: {before:.3f}", flush=True)
        report = pretrain(model, images, ids, language.embeddings, target_images=target, steps=a.steps,
                          batch_size=a.batch_size, lr=a.lr)
        report.update(retrieval_before=before,
                      retrieval_after=retrieval_accuracy(model, held_images, held_ids, language.embeddings),
                      held_out_frames=int(len(held_images)), instructions=len(language.texts))
        Path(a.out).parent.mkdir(parents=True, exist_ok=True)
        save_encoder(model, a.out, report)
    except (ValueError, FileNotFoundError, FloatingPointError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    print(json.dumps({"weights": a.out, **report}))
    print(f"saved {a.out}: held-out retrieval {report['retrieval_before']:.3f} -> {report['retrieval_after']:.3f}; "
          f"train a policy from it: vla-train ... --train.init_encoder={a.out} (policy width {a.channels}, "
          f"image_downsample {a.image_downsample})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
