"""Camera frames for the view: throttle before decoding, decode sensor_msgs/Image fields, downscale, JPEG (no ROS)."""
from __future__ import annotations

import cv2
import numpy as np

ENCODINGS = ("rgb8", "bgr8", "mono8")


class FrameThrottle:
    """Lets at most ``rate_hz`` frames a second through, by receipt time (s, monotonic)."""

    def __init__(self, rate_hz: float):
        self.rate_hz = rate_hz
        self._next = float("-inf")

    def accept(self, now: float) -> bool:
        if now < self._next:
            return False
        period = 1.0 / self.rate_hz
        # Keep the cadence, but never owe frames after a pause.
        self._next = max(self._next + period, now + 0.5 * period) if self._next > float("-inf") else now + period
        return True


def image_to_rgb(encoding: str, height: int, width: int, step: int, data) -> np.ndarray:
    """sensor_msgs/Image fields -> (H, W, 3) uint8 RGB (a view where possible). Raises ValueError naming the
    problem for an unsupported encoding or a buffer that does not match the size."""
    if encoding not in ENCODINGS:
        raise ValueError(f"image encoding {encoding!r} is not shown; publish one of {', '.join(ENCODINGS)}")
    channels = 1 if encoding == "mono8" else 3
    buf = np.frombuffer(data, dtype=np.uint8)
    if height <= 0 or width <= 0 or step < width * channels or buf.size < step * height:
        raise ValueError(f"image {width}x{height} {encoding} with step {step} needs {step * height} bytes, "
                         f"got {buf.size}")
    array = buf[: step * height].reshape(height, step)[:, : width * channels].reshape(height, width, channels)
    if encoding == "mono8":
        return np.repeat(array, 3, axis=2)
    if encoding == "bgr8":
        return array[..., ::-1]
    return array


def downscale(rgb: np.ndarray, max_width: int) -> np.ndarray:
    """Downscale (area interpolation, aspect kept) to at most ``max_width`` pixels wide; smaller frames as is."""
    h, w = rgb.shape[:2]
    if w <= max_width:
        return rgb
    return cv2.resize(rgb, (max_width, max(1, round(h * max_width / w))), interpolation=cv2.INTER_AREA)


def to_jpeg(rgb: np.ndarray, quality: int) -> bytes:
    ok, buf = cv2.imencode(".jpg", np.ascontiguousarray(rgb[..., ::-1]), [cv2.IMWRITE_JPEG_QUALITY, quality])
    if not ok:
        raise ValueError(f"JPEG encoding failed for a {rgb.shape} frame")
    return buf.tobytes()
