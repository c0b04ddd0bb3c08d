"""SAC's networks on the workspace's encoders: a tanh-squashed Gaussian actor and twin Q critics.

Both see what every policy sees (vla_trainer.policies.base): images (B, 3, H, W) float32 in [0, 1] per camera,
the state (B, S) in SI units, the instruction embedding (B, L). Each has its own FiLM CNN (the instruction selects
features, as in the BC policies) and spatial-softmax keypoints, so the actor exports alone. Normalisation
statistics are buffers (Policy's), so an exported actor carries its normaliser like every artifact does.

Actions are bounded by the robot contract's ``action.low``/``action.high``: the actor's Gaussian sample ``u`` is
squashed, ``a = bias + scale * tanh(u)`` with ``scale = (high - low) / 2``, and its log-probability corrected by
the Jacobian (Haarnoja et al. 2018, appendix C). Critics take the action scaled back to [-1, 1].
"""
from __future__ import annotations

import math
from dataclasses import dataclass

import torch
from torch import nn

from vla_trainer.policies.base import Policy, PolicyConfig
from vla_trainer.policies.encoders import FiLMCNN, SpatialSoftmax

LOG_STD_MIN, LOG_STD_MAX = -5.0, 2.0


@dataclass(frozen=True)
class SACNetConfig(PolicyConfig):
    """The shapes of PolicyConfig plus the action bounds and widths. ``chunk_size`` is 1: SAC acts every tick."""

    chunk_size: int = 1
    action_low: tuple[float, ...] = ()
    action_high: tuple[float, ...] = ()
    hidden: int = 256
    channels: int = 32

    def __post_init__(self):
        super().__post_init__()
        object.__setattr__(self, "action_low", tuple(float(v) for v in self.action_low))
        object.__setattr__(self, "action_high", tuple(float(v) for v in self.action_high))
        if self.chunk_size != 1:
            raise ValueError(f"chunk_size {self.chunk_size}: a SAC actor proposes one action per tick; use 1")
        if self.n_obs_steps != 1:
            raise ValueError(f"n_obs_steps {self.n_obs_steps}: the SAC actor and critics act on the current "
                             "observation only; use 1")
        for name in ("action_low", "action_high"):
            if len(getattr(self, name)) != self.action_dim:
                raise ValueError(f"{name} has {len(getattr(self, name))} values for action_dim {self.action_dim}; "
                                 "pass the robot contract's action.low/high (contract.action.low, .high)")
        if not all(math.isfinite(lo) and math.isfinite(hi) and lo < hi
                   for lo, hi in zip(self.action_low, self.action_high)):
            raise ValueError(f"action bounds {self.action_low}..{self.action_high} must be finite with low < high "
                             "on every dimension")
        if self.hidden < 1 or self.channels < 8 or self.channels % 8:
            raise ValueError(f"hidden {self.hidden} must be >= 1 and channels {self.channels} a multiple of 8")


class ObservationEncoder(nn.Module):
    """Images, normalised state and instruction -> (B, feature_dim): FiLM CNN keypoints per camera + state +
    instruction (the BC policy's trunk at a smaller width)."""

    def __init__(self, config: SACNetConfig):
        super().__init__()
        self.cameras = config.cameras
        self.encoders = nn.ModuleDict({cam: FiLMCNN(config.language_dim, config.channels, config.image_downsample)
                                       for cam in config.cameras})
        self.keypoints = SpatialSoftmax()
        self.feature_dim = 2 * config.channels * len(config.cameras) + config.state_dim + config.language_dim

    def forward(self, images: dict[str, torch.Tensor], state_n: torch.Tensor, language: torch.Tensor) -> torch.Tensor:
        feats = [self.keypoints(self.encoders[cam](images[cam], language)) for cam in self.cameras]
        return torch.cat([*feats, state_n, language], dim=1)


def _mlp(width: int, hidden: int, out: int) -> nn.Sequential:
    return nn.Sequential(nn.Linear(width, hidden), nn.LayerNorm(hidden), nn.SiLU(), nn.Linear(hidden, hidden),
                         nn.SiLU(), nn.Linear(hidden, out))


class SACActor(Policy):
    """Tanh-squashed Gaussian policy. ``forward`` is the deterministic action (B, 1, D) in SI units (what an
    exported artifact serves); ``sample`` draws a reparameterised action with its log-probability."""

    config_class = SACNetConfig
    type_name = "sac_actor"
    default_execution = "receding_horizon"

    def default_receding_steps(self) -> int | None:
        return 1

    def __init__(self, config: SACNetConfig):
        super().__init__(config)
        self.trunk = ObservationEncoder(config)
        self.head = _mlp(self.trunk.feature_dim, config.hidden, 2 * config.action_dim)
        low = torch.tensor(config.action_low, dtype=torch.float32)
        high = torch.tensor(config.action_high, dtype=torch.float32)
        self.register_buffer("action_scale", (high - low) / 2)
        self.register_buffer("action_bias", (high + low) / 2)

    def distribution(self, images, state, language) -> tuple[torch.Tensor, torch.Tensor]:
        """(mean, log_std) of the pre-squash Gaussian, each (B, D); log_std bounded to [-5, 2] smoothly."""
        out = self.head(self.trunk(self.image_dict(images), self.normalize_state(state), language))
        mean, log_std = out.chunk(2, dim=-1)
        log_std = LOG_STD_MIN + 0.5 * (LOG_STD_MAX - LOG_STD_MIN) * (torch.tanh(log_std) + 1)
        return mean, log_std

    def sample(self, images, state, language, noise: torch.Tensor | None = None,
               generator: torch.Generator | None = None) -> tuple[torch.Tensor, torch.Tensor]:
        """(action (B, D) in SI units, log-probability (B,) of that action in [-1, 1] units, so that the entropy
        target does not depend on the robot's units). ``noise`` (B, D) standard normal fixes the draw (tests
        compare objectives on the same draw)."""
        mean, log_std = self.distribution(images, state, language)
        if noise is None:
            noise = torch.randn(mean.shape, generator=generator, device=mean.device, dtype=mean.dtype)
        u = mean + log_std.exp() * noise
        squashed = torch.tanh(u)
        gauss = (-0.5 * noise.pow(2) - log_std - 0.5 * math.log(2 * math.pi)).sum(-1)
        # log|d tanh(u) / d u| = sum log(1 - tanh(u)^2), computed stably as 2 (log 2 - u - softplus(-2u))
        log_det = (2 * (math.log(2.0) - u - nn.functional.softplus(-2 * u))).sum(-1)
        return self.action_bias + self.action_scale * squashed, gauss - log_det

    def forward(self, images, state: torch.Tensor, language: torch.Tensor) -> torch.Tensor:
        mean, _ = self.distribution(images, state, language)
        return (self.action_bias + self.action_scale * torch.tanh(mean))[:, None, :]

    def to_unit(self, action: torch.Tensor) -> torch.Tensor:
        """SI units -> [-1, 1] per dimension (what the critics take)."""
        return (action - self.action_bias) / self.action_scale

    def image_dict(self, images) -> dict[str, torch.Tensor]:
        return dict(zip(self.config.cameras, self.image_list(images)))

    def compute_loss(self, batch: dict) -> dict[str, torch.Tensor]:
        """Behaviour cloning of the deterministic action (the first step of each chunk), for pretraining on
        demonstrations: L1 in [-1, 1] units on the frames that are not padding."""
        pred = self.to_unit(self(batch["images"], batch["state"], batch["language"])[:, 0])
        target = self.to_unit(batch["action"][:, 0]).clamp(-1.0, 1.0)
        keep = (~batch["action_pad"][:, 0]).to(pred.dtype)
        loss = ((pred - target).abs().mean(-1) * keep).sum() / keep.sum().clamp(min=1.0)
        return {"loss": loss, "l1": loss.detach()}


class TwinQ(nn.Module):
    """Two Q heads over one observation encoder: (images, state, language, action) -> (q1, q2), each (B,).

    The heads share the encoder (DrQ and RLPD do; it halves the convolution cost) and learn from both TD errors.
    """

    def __init__(self, config: SACNetConfig):
        super().__init__()
        self.config = config
        self.trunk = ObservationEncoder(config)
        width = self.trunk.feature_dim + config.action_dim
        self.q1 = _mlp(width, config.hidden, 1)
        self.q2 = _mlp(width, config.hidden, 1)

    def features(self, images: dict, state_n: torch.Tensor, language: torch.Tensor) -> torch.Tensor:
        return self.trunk(images, state_n, language)

    def heads(self, features: torch.Tensor, action_unit: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        x = torch.cat([features, action_unit], dim=1)
        return self.q1(x).squeeze(-1), self.q2(x).squeeze(-1)

    def forward(self, images: dict, state_n: torch.Tensor, language: torch.Tensor,
                action_unit: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """(q1, q2), each (B,), for normalised state and the action in [-1, 1] units."""
        return self.heads(self.features(images, state_n, language), action_unit)
