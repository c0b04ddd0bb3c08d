"""Policies by name (``--policy.type=mlp``): torch modules that map features to an action chunk.

Every policy takes model tensors built by vla_core.observation (images (B, 3, H, W) float32 in [0, 1]), the
state (B, S) and the instruction embedding (B, L), and returns actions in SI units (B, K, D): normalisation
statistics are buffers of the module, so the exported graph carries its own normaliser.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Callable

import torch
from torch import nn

POLICIES: dict[str, type] = {}


def register_policy(name: str) -> Callable[[type], type]:
    def wrap(cls: type) -> type:
        if name in POLICIES:
            raise ValueError(f"policy type '{name}' registered twice")
        POLICIES[name] = cls
        cls.type_name = name
        return cls
    return wrap


def make_policy(name: str, **kwargs) -> nn.Module:
    if name not in POLICIES:
        raise ValueError(f"unknown policy type '{name}'; choose one of {', '.join(sorted(POLICIES))}")
    return POLICIES[name](PolicyConfig(**kwargs))


@dataclass(frozen=True)
class PolicyConfig:
    cameras: tuple[str, ...] = ("top",)
    image_size: tuple[int, int] = (96, 96)
    state_dim: int = 4
    language_dim: int = 384
    action_dim: int = 2
    chunk_size: int = 16
    hidden: int = 1024
    state_mean: list[float] = field(default_factory=list)
    state_std: list[float] = field(default_factory=list)
    action_mean: list[float] = field(default_factory=list)
    action_std: list[float] = field(default_factory=list)

    def __post_init__(self):
        for name, dim in (("state_mean", self.state_dim), ("state_std", self.state_dim),
                          ("action_mean", self.action_dim), ("action_std", self.action_dim)):
            value = getattr(self, name)
            if value and len(value) != dim:
                raise ValueError(f"{name} has {len(value)} values; the policy has dimension {dim}")
        if self.chunk_size < 1:
            raise ValueError(f"chunk_size {self.chunk_size} must be at least 1")


class ImageEncoder(nn.Module):
    """A small CNN: (B, 3, H, W) in [0, 1] -> (B, 128)."""

    def __init__(self):
        super().__init__()
        self.register_buffer("mean", torch.tensor([0.485, 0.456, 0.406]).view(1, 3, 1, 1))
        self.register_buffer("std", torch.tensor([0.229, 0.224, 0.225]).view(1, 3, 1, 1))
        layers, c = [], 3
        for out, k in ((32, 5), (64, 3), (128, 3), (128, 3)):
            layers += [nn.Conv2d(c, out, k, stride=2, padding=k // 2), nn.GroupNorm(8, out), nn.SiLU()]
            c = out
        self.net = nn.Sequential(*layers, nn.AdaptiveAvgPool2d(1), nn.Flatten())

    def forward(self, image: torch.Tensor) -> torch.Tensor:
        return self.net((image - self.mean) / self.std)


@register_policy("mlp")
class BCPolicy(nn.Module):
    """Behaviour cloning baseline: CNN per camera + state + instruction -> MLP -> action chunk."""

    def __init__(self, config: PolicyConfig):
        super().__init__()
        self.config = config
        self.encoders = nn.ModuleDict({cam: ImageEncoder() for cam in config.cameras})
        width = 128 * len(config.cameras) + config.state_dim + config.language_dim
        self.head = nn.Sequential(nn.Linear(width, config.hidden), nn.SiLU(), nn.Linear(config.hidden, config.hidden),
                                  nn.SiLU(), nn.Linear(config.hidden, config.chunk_size * config.action_dim))
        self.register_buffer("state_mean", _vec(config.state_mean, config.state_dim, 0.0))
        self.register_buffer("state_std", _vec(config.state_std, config.state_dim, 1.0))
        self.register_buffer("action_mean", _vec(config.action_mean, config.action_dim, 0.0))
        self.register_buffer("action_std", _vec(config.action_std, config.action_dim, 1.0))

    def forward(self, images: dict[str, torch.Tensor] | torch.Tensor, state: torch.Tensor,
                language: torch.Tensor) -> torch.Tensor:
        if isinstance(images, torch.Tensor):
            images = {self.config.cameras[0]: images}
        feats = [self.encoders[cam](images[cam]) for cam in self.config.cameras]
        x = torch.cat([*feats, (state - self.state_mean) / self.state_std, language], dim=1)
        out = self.head(x).view(-1, self.config.chunk_size, self.config.action_dim)
        return out * self.action_std + self.action_mean


def _vec(values: list[float], dim: int, fill: float) -> torch.Tensor:
    return torch.tensor(values, dtype=torch.float32) if values else torch.full((dim,), fill)


def parameter_count(model: nn.Module) -> int:
    return sum(p.numel() for p in model.parameters())
