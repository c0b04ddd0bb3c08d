"""Camera images to model-ready RGB: the one implementation used when recording, training and serving.

Recorder, trainer and perception node all call :func:`camera_frame`, so the pixels a policy sees at run time
are bitwise the pixels it was trained on (no train/serve skew). Arrays are (height, width, channels), uint8 RGB.
"""
from __future__ import annotations

import cv2
import numpy as np

# ROS sensor_msgs/Image encodings: (numpy dtype, channels)
ENCODINGS: dict[str, tuple[str, int]] = {
    "rgb8": ("uint8", 3), "bgr8": ("uint8", 3), "rgba8": ("uint8", 4), "bgra8": ("uint8", 4),
    "mono8": ("uint8", 1), "8UC1": ("uint8", 1), "8UC3": ("uint8", 3),
    "mono16": ("uint16", 1), "16UC1": ("uint16", 1), "32FC1": ("float32", 1),
}
COLOUR_ENCODINGS = ("rgb8", "bgr8", "rgba8", "bgra8", "mono8", "8UC1", "8UC3", "mono16")
DEPTH_ENCODINGS = ("16UC1", "32FC1")


class ImageError(ValueError):
    """An image that cannot be used as it is; the message names the value and what to change."""


def image_array(data: bytes | bytearray | memoryview | np.ndarray, height: int, width: int, encoding: str,
                step: int, is_bigendian: bool = False) -> np.ndarray:
    """A sensor_msgs/Image buffer as an (H, W, C) array (a view where possible), honouring row padding."""
    if encoding not in ENCODINGS:
        raise ImageError(f"image encoding '{encoding}' is not supported; use one of {', '.join(ENCODINGS)}")
    dtype_name, channels = ENCODINGS[encoding]
    dtype = np.dtype(dtype_name).newbyteorder(">" if is_bigendian else "<")
    row = width * channels * dtype.itemsize
    if height <= 0 or width <= 0:
        raise ImageError(f"image size {width}x{height} is empty")
    if step < row:
        raise ImageError(f"image step {step} is smaller than a {encoding} row of {width} pixels ({row} bytes)")
    buf = np.frombuffer(data, dtype=np.uint8) if not isinstance(data, np.ndarray) else data.reshape(-1).view(np.uint8)
    if buf.size != step * height:
        raise ImageError(f"image data has {buf.size} bytes; {width}x{height} {encoding} with step {step} "
                         f"needs {step * height}")
    rows = buf.reshape(height, step)[:, :row]
    return rows.view(dtype).reshape(height, width, channels)


def to_rgb8(array: np.ndarray, encoding: str) -> np.ndarray:
    """(H, W, C) array in ``encoding`` -> (H, W, 3) uint8 RGB. Depth encodings are refused (not colour)."""
    if encoding in DEPTH_ENCODINGS:
        raise ImageError(f"'{encoding}' is a depth image, not a colour camera; map it to a depth feature instead")
    if encoding in ("rgb8", "8UC3"):
        return np.ascontiguousarray(array)
    if encoding == "bgr8":
        return cv2.cvtColor(np.ascontiguousarray(array), cv2.COLOR_BGR2RGB)
    if encoding == "rgba8":
        return cv2.cvtColor(np.ascontiguousarray(array), cv2.COLOR_RGBA2RGB)
    if encoding == "bgra8":
        return cv2.cvtColor(np.ascontiguousarray(array), cv2.COLOR_BGRA2RGB)
    if encoding == "mono16":
        array = (array.astype(np.uint16) >> 8).astype(np.uint8)
    if encoding in ("mono8", "8UC1", "mono16"):
        return cv2.cvtColor(np.ascontiguousarray(array[..., 0]), cv2.COLOR_GRAY2RGB)
    raise ImageError(f"image encoding '{encoding}' is not a colour encoding; use one of {', '.join(COLOUR_ENCODINGS)}")


def resize_rgb(rgb: np.ndarray, height: int, width: int) -> np.ndarray:
    """Resize (H, W, 3) uint8 to (height, width, 3): area averaging when shrinking (no aliasing),
    bilinear when enlarging, a copy when the size already matches."""
    h, w = rgb.shape[:2]
    if (h, w) == (height, width):
        return np.array(rgb, copy=True)
    interpolation = cv2.INTER_AREA if height <= h and width <= w else cv2.INTER_LINEAR
    return cv2.resize(rgb, (width, height), interpolation=interpolation)


def camera_frame(data, height: int, width: int, encoding: str, step: int, out_height: int, out_width: int,
                 is_bigendian: bool = False) -> np.ndarray:
    """A camera message's buffer -> (out_height, out_width, 3) uint8 RGB, the model-ready image."""
    rgb = to_rgb8(image_array(data, height, width, encoding, step, is_bigendian), encoding)
    return resize_rgb(rgb, out_height, out_width)


def decode_compressed(data: bytes | bytearray | memoryview | np.ndarray) -> tuple[np.ndarray, str]:
    """A sensor_msgs/CompressedImage payload (JPEG or PNG) -> ((H, W, C) array, its ROS encoding).

    cv2.imdecode yields BGR/BGRA/grey in 8 bits, or grey in 16 bits for 16-bit PNGs (reported as '16UC1',
    the depth encoding that compressed depth streams carry)."""
    buf = np.frombuffer(data, dtype=np.uint8) if not isinstance(data, np.ndarray) else data.reshape(-1).view(np.uint8)
    if buf.size == 0:
        raise ImageError("compressed image is empty; the camera driver sent no data")
    array = cv2.imdecode(buf, cv2.IMREAD_UNCHANGED)
    if array is None:
        raise ImageError(f"compressed image of {buf.size} bytes could not be decoded; send JPEG or PNG data")
    if array.ndim == 2:
        array = array[..., None]
    channels, dtype = array.shape[2], array.dtype
    encoding = {(3, np.uint8): "bgr8", (4, np.uint8): "bgra8", (1, np.uint8): "mono8",
                (1, np.uint16): "16UC1"}.get((channels, dtype.type))
    if encoding is None:
        raise ImageError(f"decoded image has {channels} channels of {dtype}; send 8-bit colour/grey or 16-bit depth")
    return array, encoding


def compressed_frame(data, out_height: int, out_width: int) -> np.ndarray:
    """A CompressedImage payload -> (out_height, out_width, 3) uint8 RGB, the model-ready image."""
    array, encoding = decode_compressed(data)
    return resize_rgb(to_rgb8(array, encoding), out_height, out_width)


def to_depth_m(array: np.ndarray, encoding: str, depth_scale: float = 0.001) -> np.ndarray:
    """(H, W, 1) depth in ``encoding`` -> (H, W) float32 metres; 0 where unknown (0 or non-finite input).
    16UC1 counts ``depth_scale`` metres per unit (millimetres by default, as REP 118 allows); 32FC1 is metres."""
    if encoding == "16UC1":
        return array[..., 0].astype(np.float32) * np.float32(depth_scale)
    if encoding == "32FC1":
        depth = array[..., 0].astype(np.float32)
        depth[~np.isfinite(depth)] = 0.0
        return depth
    raise ImageError(f"'{encoding}' is not a depth encoding; use one of {', '.join(DEPTH_ENCODINGS)}")


def resize_depth(depth: np.ndarray, height: int, width: int) -> np.ndarray:
    """Resize (H, W) depth with nearest neighbour: averaging would invent depths between objects."""
    if depth.shape[:2] == (height, width):
        return np.array(depth, copy=True)
    return cv2.resize(depth, (width, height), interpolation=cv2.INTER_NEAREST)


def depth_frame(data, height: int, width: int, encoding: str, step: int, out_height: int, out_width: int,
                is_bigendian: bool = False, depth_scale: float = 0.001) -> np.ndarray:
    """A depth camera message's buffer -> (out_height, out_width) float32 metres, the model-ready depth."""
    depth = to_depth_m(image_array(data, height, width, encoding, step, is_bigendian), encoding, depth_scale)
    return resize_depth(depth, out_height, out_width)
