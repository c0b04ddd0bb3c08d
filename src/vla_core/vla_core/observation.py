"""Model-ready images -> model tensors: the trainer's and the policy's one conversion (no torch, no ROS).

Images reach this module already model-ready, i.e. produced by :func:`vla_core.image.camera_frame` (recorder,
perception node) or :func:`model_image` (trainer reading datasets recorded at another size), so the tensor a
policy sees at run time is bitwise the tensor it was trained on.
"""
from __future__ import annotations

import numpy as np

from vla_core.image import ImageError, resize_rgb

_INV_255 = np.float32(1.0 / 255.0)


def model_image(rgb: np.ndarray, height: int, width: int) -> np.ndarray:
    """A dataset frame ((H, W, 3) uint8 RGB, any size) -> the contract's (height, width, 3) uint8 RGB,
    with the same resize the recorder and the perception node apply to camera messages."""
    _check_rgb(rgb, "dataset frame")
    return resize_rgb(rgb, height, width)


def to_chw_float(rgb: np.ndarray) -> np.ndarray:
    """(H, W, 3) or (N, H, W, 3) uint8 RGB -> (3, H, W) or (N, 3, H, W) float32 in [0, 1], C-contiguous."""
    _check_rgb(rgb, "image", batched=isinstance(rgb, np.ndarray) and rgb.ndim == 4)
    chw = np.moveaxis(rgb, -1, -3)
    out = np.empty(chw.shape, dtype=np.float32)
    np.multiply(chw, _INV_255, out=out, dtype=np.float32)
    return out


def _check_rgb(rgb: np.ndarray, what: str, batched: bool = False) -> None:
    ndim = 4 if batched else 3
    if not isinstance(rgb, np.ndarray) or rgb.dtype != np.uint8 or rgb.ndim != ndim or rgb.shape[-1] != 3:
        got = f"{rgb.dtype} {rgb.shape}" if isinstance(rgb, np.ndarray) else type(rgb).__name__
        shape = "(N, H, W, 3)" if batched else "(H, W, 3)"
        raise ImageError(f"{what} must be a {shape} uint8 RGB array, got {got}; convert it with "
                         "vla_core.image.camera_frame first")
