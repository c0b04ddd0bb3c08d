"""Camera frames for the view: throttle before decoding, decode sensor_msgs/Image fields, downscale, JPEG (no ROS)."""
from __future__ import annotations

import struct
from typing import NamedTuple

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


class RawImage(NamedTuple):
    """The fields of a serialized sensor_msgs/Image that the view uses; ``data`` is a view into the message."""

    sec: int
    nanosec: int
    height: int
    width: int
    encoding: str
    step: int
    data: memoryview


def parse_image_cdr(raw: bytes) -> RawImage:
    """A sensor_msgs/Image as DDS carries it (XCDR1, the 4-byte encapsulation header then the fields, each aligned
    to its size from the end of that header) -> its fields, without building a message: rclpy's deserialize copies
    a VGA frame into a Python array (3% of a core at 2 cameras x 10 Hz). Raises ValueError for a buffer that is not
    a little- or big-endian CDR Image."""
    view = memoryview(raw)
    if len(view) < 4 or view[0] != 0 or view[1] not in (0, 1):
        raise ValueError("not a CDR-encapsulated message (expected a CDR_BE or CDR_LE header)")
    order = "<" if view[1] == 1 else ">"
    body, pos = view[4:], 0

    def align(n: int) -> None:
        nonlocal pos
        pos += -pos % n

    def u32() -> int:
        nonlocal pos
        align(4)
        if pos + 4 > len(body):
            raise ValueError("a truncated sensor_msgs/Image")
        value = struct.unpack_from(order + "I", body, pos)[0]
        pos += 4
        return value

    def string() -> str:
        nonlocal pos
        n = u32()
        if n == 0 or pos + n > len(body):
            raise ValueError("a truncated sensor_msgs/Image string")
        text = bytes(body[pos:pos + n - 1]).decode("utf-8", "replace")
        pos += n
        return text

    sec = u32()
    sec = sec - (1 << 32) if sec >= 1 << 31 else sec  # int32
    nanosec = u32()
    string()  # frame_id
    height, width = u32(), u32()
    encoding = string()
    pos += 1  # is_bigendian
    step = u32()
    n = u32()
    if pos + n > len(body):
        raise ValueError(f"sensor_msgs/Image data of {n} bytes, the message holds {len(body) - pos}")
    return RawImage(sec, nanosec, height, width, encoding, step, body[pos:pos + n])


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
