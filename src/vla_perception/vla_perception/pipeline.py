"""Camera messages -> model-ready images, per contract camera (no rclpy: messages are plain objects).

Colour cameras go through :func:`vla_core.image.camera_frame` (the recorder's and trainer's function) and
come out as the contract's (height, width, 3) uint8 RGB; depth cameras (contract encoding 16UC1/32FC1)
through :func:`vla_core.image.depth_frame` as (height, width) float32 metres. A ROS cv_bridge is used to read
Image buffers when it is importable (full ROS installs); otherwise vla_core's own reader, which gives the
same array. CompressedImage payloads (JPEG/PNG) are decoded with cv2.imdecode.
"""
from __future__ import annotations

import functools

import numpy as np

from vla_core.contract import CameraSpec
from vla_core.image import (DEPTH_ENCODINGS, ImageError, camera_frame, compressed_frame, decode_compressed,
                            depth_frame, resize_depth, resize_rgb, to_depth_m, to_rgb8)

@functools.cache
def _bridge():
    """A ROS 2 cv_bridge when one is importable (full ROS installs), else None: vla_core's reader, which gives the
    same array. Built on first use, not on import (the ROS 1 cv_bridge on PyPI fails on numpy 2)."""
    try:
        from cv_bridge import CvBridge
        bridge = CvBridge()
        bridge.imgmsg_to_cv2  # noqa: B018 - the ROS 2 API
        return bridge
    except Exception:  # noqa: BLE001 - any import problem means: use the fallback
        return None


def bridge_in_use() -> str:
    return "cv_bridge" if _bridge() is not None else "vla_core.image"


class CameraPipeline:
    """One contract camera: messages -> its model-ready array, or ImageError naming the problem and fix."""

    def __init__(self, camera: CameraSpec, depth_scale: float = 0.001):
        self.camera = camera
        self.is_depth = camera.encoding in DEPTH_ENCODINGS
        self.depth_scale = depth_scale
        self.out_encoding = "32FC1" if self.is_depth else "rgb8"

    def from_image(self, msg) -> np.ndarray:
        """sensor_msgs/Image -> model-ready array."""
        h, w, step, enc, big = msg.height, msg.width, msg.step, msg.encoding, bool(msg.is_bigendian)
        if self.is_depth and enc not in DEPTH_ENCODINGS:
            raise ImageError(f"camera '{self.camera.name}' is a depth camera ({self.camera.encoding}) but sent "
                             f"'{enc}'; publish 16UC1 or 32FC1 depth, or fix the contract's encoding")
        bridge = _bridge()
        if bridge is not None:
            array = bridge.imgmsg_to_cv2(msg, desired_encoding="passthrough")
            array = array[..., None] if array.ndim == 2 else array
            if self.is_depth:
                return resize_depth(to_depth_m(array, enc, self.depth_scale), self.camera.height, self.camera.width)
            return resize_rgb(to_rgb8(array, enc), self.camera.height, self.camera.width)
        if self.is_depth:
            return depth_frame(msg.data, h, w, enc, step, self.camera.height, self.camera.width, big,
                               self.depth_scale)
        return camera_frame(msg.data, h, w, enc, step, self.camera.height, self.camera.width, big)

    def from_compressed(self, msg) -> np.ndarray:
        """sensor_msgs/CompressedImage (JPEG or PNG) -> model-ready array."""
        if self.is_depth:
            array, enc = decode_compressed(msg.data)
            if enc != "16UC1":
                raise ImageError(f"camera '{self.camera.name}' is a depth camera but its compressed image "
                                 f"decodes to {enc}; send 16-bit PNG depth")
            return resize_depth(to_depth_m(array, enc, self.depth_scale), self.camera.height, self.camera.width)
        return compressed_frame(msg.data, self.camera.height, self.camera.width)
