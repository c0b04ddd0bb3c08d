"""Conversions between ROS messages and numpy arrays (no rclpy: messages are plain Python objects)."""
from __future__ import annotations

import math

import numpy as np
from builtin_interfaces.msg import Time
from geometry_msgs.msg import Twist
from sensor_msgs.msg import CameraInfo, Image
from std_msgs.msg import Float64MultiArray

TWIST_FIELDS = ("linear.x", "linear.y", "linear.z", "angular.x", "angular.y", "angular.z")


def rgb_to_image(rgb: np.ndarray, stamp: Time, frame_id: str) -> Image:
    """(H, W, 3) uint8 RGB array -> sensor_msgs/Image rgb8."""
    if rgb.dtype != np.uint8 or rgb.ndim != 3 or rgb.shape[2] != 3:
        raise ValueError(f"expected an (H, W, 3) uint8 RGB array, got {rgb.dtype} {rgb.shape}")
    h, w, _ = rgb.shape
    msg = Image(height=h, width=w, encoding="rgb8", is_bigendian=0, step=w * 3, data=rgb.tobytes())
    msg.header.stamp, msg.header.frame_id = stamp, frame_id
    return msg


def pinhole_camera_info(height: int, width: int, fov_deg: float, stamp: Time, frame_id: str) -> CameraInfo:
    """CameraInfo of an ideal pinhole camera (no distortion) with horizontal field of view ``fov_deg``."""
    f = 0.5 * width / math.tan(math.radians(fov_deg) / 2)
    cx, cy = (width - 1) / 2, (height - 1) / 2
    msg = CameraInfo(height=height, width=width, distortion_model="plumb_bob", d=[0.0] * 5,
                     k=[f, 0.0, cx, 0.0, f, cy, 0.0, 0.0, 1.0],
                     r=[1.0, 0.0, 0.0, 0.0, 1.0, 0.0, 0.0, 0.0, 1.0],
                     p=[f, 0.0, cx, 0.0, 0.0, f, cy, 0.0, 0.0, 0.0, 1.0, 0.0])
    msg.header.stamp, msg.header.frame_id = stamp, frame_id
    return msg


def twist_to_array(msg: Twist, fields: tuple[str, ...]) -> np.ndarray:
    """Selected Twist fields (e.g. ('linear.x', 'linear.y')) as a float64 vector."""
    return np.array([getattr(getattr(msg, f.split(".")[0]), f.split(".")[1]) for f in fields], dtype=np.float64)


def array_to_twist(values: np.ndarray, fields: tuple[str, ...]) -> Twist:
    msg = Twist()
    for f, v in zip(fields, values):
        part, axis = f.split(".")
        setattr(getattr(msg, part), axis, float(v))
    return msg


def multiarray_to_array(msg: Float64MultiArray) -> np.ndarray:
    return np.asarray(msg.data, dtype=np.float64)


def time_to_seconds(stamp: Time) -> float:
    """builtin_interfaces/Time (a header stamp) -> seconds."""
    return stamp.sec + stamp.nanosec * 1e-9


def seconds_to_time(t: float) -> Time:
    # Round once in nanoseconds: 12.9999999999 is 13 s, not 12 s + (1e9 % 1e9) ns (a stamp 1 s in the past).
    ns = int(round(t * 1e9))
    return Time(sec=ns // 1_000_000_000, nanosec=ns % 1_000_000_000)
