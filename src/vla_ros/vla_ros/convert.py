"""Conversions between ROS messages and numpy arrays (no rclpy: messages are plain Python objects).

The robot contract's codecs (vla_core.codecs) meet the messages here: ``joint_state_vector`` (JointState ->
observation.state) and ``command_message_type`` / ``command_to_vector`` / ``vector_to_command`` (the action's
message, chosen by the contract's action type). Every node converts through these.
"""
from __future__ import annotations

import math
from typing import Sequence

import numpy as np
from builtin_interfaces.msg import Time
from geometry_msgs.msg import Twist
from sensor_msgs.msg import CameraInfo, Image, JointState
from std_msgs.msg import Float64MultiArray

from vla_core import codecs
from vla_core.codecs import TWIST_FIELDS  # noqa: F401 - re-exported: the Twist fields, named once


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
    return np.array([getattr(getattr(msg, part), axis) for part, axis in codecs.twist_axes(fields)],
                    dtype=np.float64)


def array_to_twist(values: np.ndarray, fields: tuple[str, ...]) -> Twist:
    """A Twist with ``fields`` set from ``values`` (the others zero)."""
    msg = Twist()
    for (part, axis), v in zip(codecs.twist_axes(fields), values):
        setattr(getattr(msg, part), axis, float(v))
    return msg


def multiarray_to_array(msg: Float64MultiArray) -> np.ndarray:
    return np.asarray(msg.data, dtype=np.float64)


def array_to_multiarray(values: np.ndarray, fields: tuple[str, ...] = ()) -> Float64MultiArray:
    return Float64MultiArray(data=[float(v) for v in values])


# ---- the robot contract's codecs ------------------------------------------------------------------
def joint_state_vector(msg: JointState, joints: Sequence[str], fields: Sequence[str]) -> np.ndarray:
    """A JointState as the contract's state vector (float64, joint-major): vla_core.codecs.joint_state_vector,
    which raises StateError naming a missing joint or value (its ``values``: NaN where missing)."""
    columns = {"position": msg.position, "velocity": msg.velocity, "effort": msg.effort}
    return codecs.joint_state_vector(msg.name, columns, joints, fields)


def joint_state_msg(names: Sequence[str], positions, velocities=(), efforts=(),
                    stamp: Time | None = None) -> JointState:
    """The JointState a robot publishes: per-joint columns parallel to ``names`` (SI units)."""
    msg = JointState(name=list(names), position=[float(v) for v in positions],
                     velocity=[float(v) for v in velocities], effort=[float(v) for v in efforts])
    if stamp is not None:
        msg.header.stamp = stamp
    return msg


# Action type -> (message class, message -> vector, vector -> message); a new command type is one entry here
# (and its field rule in vla_core.codecs.COMMAND_TYPES).
_COMMANDS = {
    codecs.TWIST: (Twist, twist_to_array, array_to_twist),
    codecs.FLOAT64_ARRAY: (Float64MultiArray, lambda msg, fields: multiarray_to_array(msg), array_to_multiarray),
}


def _command_codec(action_type: str):
    try:
        return _COMMANDS[action_type]
    except KeyError:
        raise ValueError(f"action type {action_type} has no command codec yet; use "
                         f"{' or '.join(_COMMANDS)}") from None


def command_message_type(action_type: str):
    """The message class of the contract's action type (raises ValueError for one without a codec)."""
    return _command_codec(action_type)[0]


def command_to_vector(msg, action_type: str, fields: tuple[str, ...]) -> np.ndarray:
    """A command message as the action vector (float64): the Twist ``fields``, or the array's data as sent."""
    return _command_codec(action_type)[1](msg, fields)


def vector_to_command(values: np.ndarray, action_type: str, fields: tuple[str, ...]):
    """The command message carrying the action vector ``values`` (one value per ``fields``)."""
    return _command_codec(action_type)[2](values, fields)


def time_to_seconds(stamp: Time) -> float:
    """builtin_interfaces/Time (a header stamp) -> seconds."""
    return stamp.sec + stamp.nanosec * 1e-9


def seconds_to_time(t: float) -> Time:
    # Round once in nanoseconds: 12.9999999999 is 13 s, not 12 s + (1e9 % 1e9) ns (a stamp 1 s in the past).
    ns = int(round(t * 1e9))
    return Time(sec=ns // 1_000_000_000, nanosec=ns % 1_000_000_000)
