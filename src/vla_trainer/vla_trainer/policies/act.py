"""Action-chunking transformer (ACT, Zhao et al. 2023), sized for a CPU.

Image features (a FiLM CNN per camera, 6x6 tokens at 96x96) plus one token each for the state and the
instruction (and the CVAE latent when ``use_vae``) go through a transformer encoder; ``chunk_size`` learned
queries decode the action chunk. At run time the policy node blends overlapping chunks with ACT's temporal
ensembling (the artifact says ``execution: temporal_ensemble``). Attention is written out with matmuls so the
graph exports to plain ONNX ops.

The CVAE (ACT's style variable for multi-modal human demonstrations) is off by default: scripted and
single-operator demonstrations are close to uni-modal, and at inference ACT uses the latent's prior mean
anyway. ``use_vae=true`` turns it on with ``kl_weight``.
"""
from __future__ import annotations

import math
from dataclasses import dataclass

import torch
from torch import nn

from vla_trainer.policies.base import Policy, PolicyConfig, masked_mean, register_policy
from vla_trainer.policies.encoders import SpatialSoftmax, make_image_encoder
from vla_trainer.policies.ensemble import EnsembleHeads, check_ensemble_heads, disagreement, mean_of_heads, small_head


@dataclass(frozen=True)
class ACTConfig(PolicyConfig):
    dim: int = 128
    heads: int = 4
    encoder_layers: int = 2
    decoder_layers: int = 2
    ff_dim: int = 512
    dropout: float = 0.1
    use_vae: bool = False
    latent_dim: int = 16
    kl_weight: float = 10.0
    # K >= 2: K action heads on the shared decoder, served as their mean, with their disagreement as the
    # artifact's uncertainty output (vla_trainer.policies.ensemble); 0: one head, no uncertainty.
    ensemble_heads: int = 0

    def __post_init__(self):
        super().__post_init__()
        check_ensemble_heads(self.ensemble_heads)
        if self.dim % self.heads:
            raise ValueError(f"dim {self.dim} must be divisible by heads {self.heads}")


class Attention(nn.Module):
    def __init__(self, dim: int, heads: int):
        super().__init__()
        self.heads, self.scale = heads, (dim // heads) ** -0.5
        self.q, self.kv, self.out = nn.Linear(dim, dim), nn.Linear(dim, 2 * dim), nn.Linear(dim, dim)

    def forward(self, x: torch.Tensor, context: torch.Tensor) -> torch.Tensor:
        b, n, d = x.shape
        h = self.heads
        q = self.q(x).reshape(b, n, h, d // h).transpose(1, 2)
        kv = self.kv(context).reshape(b, context.shape[1], 2, h, d // h).permute(2, 0, 3, 1, 4)
        k, v = kv[0], kv[1]
        attn = torch.softmax((q @ k.transpose(-1, -2)) * self.scale, dim=-1)
        return self.out((attn @ v).transpose(1, 2).reshape(b, n, d))


class Block(nn.Module):
    """Pre-norm transformer block; with ``cross`` it also attends to a memory (decoder)."""

    def __init__(self, dim: int, heads: int, ff_dim: int, dropout: float, cross: bool = False):
        super().__init__()
        self.norm1, self.attn = nn.LayerNorm(dim), Attention(dim, heads)
        self.cross = cross
        if cross:
            self.norm2, self.cross_attn = nn.LayerNorm(dim), Attention(dim, heads)
        self.norm3 = nn.LayerNorm(dim)
        self.ff = nn.Sequential(nn.Linear(dim, ff_dim), nn.GELU(), nn.Linear(ff_dim, dim))
        self.drop = nn.Dropout(dropout)

    def forward(self, x: torch.Tensor, memory: torch.Tensor | None = None) -> torch.Tensor:
        y = self.norm1(x)
        x = x + self.drop(self.attn(y, y))
        if self.cross:
            x = x + self.drop(self.cross_attn(self.norm2(x), memory))
        return x + self.drop(self.ff(self.norm3(x)))


def sincos_2d(h: int, w: int, dim: int) -> torch.Tensor:
    """(h * w, dim) fixed 2-D sine-cosine position embedding."""
    quarter = dim // 4
    omega = 1.0 / (10000 ** (torch.arange(quarter, dtype=torch.float32) / quarter))
    ys, xs = torch.meshgrid(torch.arange(h, dtype=torch.float32), torch.arange(w, dtype=torch.float32), indexing="ij")
    parts = []
    for grid in (ys.reshape(-1), xs.reshape(-1)):
        angles = grid[:, None] * omega[None]
        parts += [angles.sin(), angles.cos()]
    return torch.cat(parts, dim=1)


@register_policy("act")
class ACTPolicy(Policy):
    config_class = ACTConfig

    def __init__(self, config: ACTConfig):
        super().__init__(config)
        d = config.dim
        self.encoders = nn.ModuleDict({cam: make_image_encoder(config.image_encoder, config.language_dim, d,
                                                               config.image_downsample) for cam in config.cameras})
        # 96x96 -> 12x12 CNN features -> 6x6 tokens: a quarter of the attention cost, still finer than a block
        # (with image_downsample 2 the CNN's map is 6x6 already)
        self.token_conv = nn.Conv2d(d, d, 3, stride=2 if config.image_downsample == 1 else 1, padding=1)
        # One more token per camera: spatial-softmax keypoints of the CNN's stride-4 map (where it localises
        # colour blobs early in training).
        self.early = config.image_encoder == "cnn"
        if self.early:
            self.keypoints = SpatialSoftmax()
            self.keypoint_proj = nn.Linear(2 * 64, d)
        # policy.aux_env_state: those keypoints also predict where the instruction's objects are (training only).
        if self.aux and not self.early:
            raise ValueError("policy.aux_env_state needs ACT's early keypoints, which only the cnn image encoder has; "
                             "set policy.image_encoder=cnn or policy.aux_env_state=0")
        self.env_state_predictor = self.env_state_head(2 * 64 * len(config.cameras)) if self.early else None
        # policy.env_state_input: one more token, the estimate (detached: the auxiliary loss alone trains it).
        self.env_state_input = config.env_state_input and self.aux
        if self.env_state_input:
            self.env_state_proj = nn.Linear(config.env_state_dim, d)
        self.camera_embed = nn.Parameter(torch.zeros(len(config.cameras), 1, d))
        # policy.n_obs_steps: each frame's tokens carry a learned embedding of its place in the history, and the
        # state token is the projection of the whole state history (only then: other policies' weights unchanged).
        if config.n_obs_steps > 1:
            self.time_embed = nn.Parameter(torch.zeros(config.n_obs_steps, 1, d))
        self.state_proj = nn.Linear(config.state_dim * config.n_obs_steps, d)
        self.language_proj = nn.Linear(config.language_dim, d)
        self.latent_proj = nn.Linear(config.latent_dim, d)
        self.token_type = nn.Parameter(torch.zeros(3, d))  # latent, state, language
        self.encoder = nn.ModuleList([Block(d, config.heads, config.ff_dim, config.dropout)
                                      for _ in range(config.encoder_layers)])
        self.queries = nn.Parameter(torch.randn(config.chunk_size, d) * 0.02)
        self.decoder = nn.ModuleList([Block(d, config.heads, config.ff_dim, config.dropout, cross=True)
                                      for _ in range(config.decoder_layers)])
        self.norm = nn.LayerNorm(d)
        if config.ensemble_heads:
            self.action_heads = EnsembleHeads(config.ensemble_heads, lambda: small_head(d, d, config.action_dim))
        else:
            self.action_head = nn.Linear(d, config.action_dim)
        if config.use_vae:  # ACT's posterior encoder: [CLS, state, actions] -> mean, log-variance of z
            self.vae_cls = nn.Parameter(torch.zeros(1, 1, d))
            self.vae_action = nn.Linear(config.action_dim, d)
            self.vae_state = nn.Linear(config.state_dim, d)
            self.vae_pos = nn.Parameter(torch.randn(config.chunk_size + 2, d) * 0.02)
            self.vae_encoder = nn.ModuleList([Block(d, config.heads, config.ff_dim, config.dropout)
                                              for _ in range(config.encoder_layers)])
            self.vae_out = nn.Linear(d, 2 * config.latent_dim)
        self._pos_cache: dict[tuple[int, int], torch.Tensor] = {}

    def _pos(self, h: int, w: int, device) -> torch.Tensor:
        if (h, w) not in self._pos_cache:
            self._pos_cache[(h, w)] = sincos_2d(h, w, self.config.dim)
        return self._pos_cache[(h, w)].to(device)

    def _decode(self, images, state: torch.Tensor, language: torch.Tensor, latent: torch.Tensor,
                all_heads: bool = False, keypoints: list | None = None) -> torch.Tensor:
        """Normalised action chunk (B, K, D); with ``all_heads`` (ensemble_heads) every head's, (H, B, K, D).
        ``keypoints``, a list, receives each camera's early keypoints."""
        b = state.shape[0]
        steps = self.config.n_obs_steps
        tokens = [self.latent_proj(latent) + self.token_type[0],
                  self.state_proj(self.state_features(state)) + self.token_type[1],
                  self.language_proj(language) + self.token_type[2]]
        seq = [torch.stack(tokens, dim=1)]
        camera_points = []
        cond = self.per_frame(language)  # the encoders see (B * T) frames with a history of T steps
        for i, (enc, img) in enumerate(zip(self.encoders.values(), self.frames(images))):
            if self.early:
                early, final = enc.forward_multiscale(img, cond)
                points = self.keypoints(early)
                camera_points.append(self.latest(points))
                if keypoints is not None:
                    keypoints.append(self.latest(points))
                seq.append(self._over_time(self.keypoint_proj(points)[:, None] + self.camera_embed[i], b, steps))
            else:
                final = enc(img, cond)
            fmap = self.token_conv(final)
            _, d, h, w = fmap.shape
            frame_tokens = fmap.flatten(2).transpose(1, 2) + self._pos(h, w, fmap.device) + self.camera_embed[i]
            seq.append(self._over_time(frame_tokens, b, steps))
        if self.env_state_input:
            estimate = self.env_state_predictor(torch.cat(camera_points, dim=1)).detach()
            seq.append(self.env_state_proj(estimate)[:, None])
        memory = torch.cat(seq, dim=1)
        for block in self.encoder:
            memory = block(memory)
        x = self.queries.unsqueeze(0).expand(b, -1, -1)
        for block in self.decoder:
            x = block(x, memory)
        if not self.config.ensemble_heads:
            return self.action_head(self.norm(x))
        preds = self.action_heads(self.norm(x))
        return preds if all_heads else preds.mean(dim=0)

    def _over_time(self, tokens: torch.Tensor, b: int, steps: int) -> torch.Tensor:
        """Per-frame tokens (B * T, N, d) -> one sequence per sample (B, T * N, d), each frame's tokens marked by
        its place in the history; (B, N, d) unchanged without history."""
        if steps == 1:
            return tokens
        n, d = tokens.shape[1:]
        return (tokens.reshape(b, steps, n, d) + self.time_embed).reshape(b, steps * n, d)

    def forward(self, images, state: torch.Tensor, language: torch.Tensor) -> torch.Tensor:
        latent = torch.zeros(state.shape[0], self.config.latent_dim, dtype=state.dtype, device=state.device)
        return self.unnormalize_action(self._decode(images, state, language, latent), self.current_state(state))

    def forward_with_uncertainty(self, images, state: torch.Tensor,
                                 language: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """(B, K, D) the heads' mean action chunk in SI units, and (B,) their disagreement (ensemble_heads)."""
        latent = torch.zeros(state.shape[0], self.config.latent_dim, dtype=state.dtype, device=state.device)
        preds = self._decode(images, state, language, latent, all_heads=True)
        return self.unnormalize_action(preds.mean(dim=0), self.current_state(state)), disagreement(preds)

    def compute_loss(self, batch: dict) -> dict[str, torch.Tensor]:
        state = batch["state"]
        target = self.normalize_action(batch["action"], self.current_state(state))
        b = state.shape[0]
        losses = {}
        if self.config.use_vae:
            seq = torch.cat([self.vae_cls.expand(b, -1, -1),
                             self.vae_state(self.normalize_state(self.current_state(state)))[:, None],
                             self.vae_action(target)], dim=1) + self.vae_pos
            for block in self.vae_encoder:
                seq = block(seq)
            mu, logvar = self.vae_out(seq[:, 0]).chunk(2, dim=-1)
            latent = mu + torch.randn_like(mu) * (0.5 * logvar).exp()
            kl = (-0.5 * (1 + logvar - mu.pow(2) - logvar.exp())).sum(dim=-1).mean()
            losses["kl"] = kl.detach()
        else:
            latent = torch.zeros(b, self.config.latent_dim, dtype=state.dtype, device=state.device)
        points: list = []
        pred = self._decode(batch["images"], state, batch["language"], latent, all_heads=True, keypoints=points)

        def l1_of(p: torch.Tensor) -> torch.Tensor:
            return masked_mean(nn.functional.l1_loss(p, target, reduction="none"), batch["action_pad"],
                               batch.get("weight"))
        l1 = mean_of_heads(l1_of, pred) if self.config.ensemble_heads else l1_of(pred)
        losses["l1"] = l1.detach()
        losses["loss"] = l1 + self.config.kl_weight * kl if self.config.use_vae else l1
        return self.add_env_state_loss(losses, self.env_state_predictor, points, batch)
