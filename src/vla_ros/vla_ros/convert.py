"""Conversions between ROS messages and numpy arrays (no rclpy: messages are plain Python objects).

The robot contract's codecs (vla_core.codecs) meet the messages here: ``joint_state_vector`` (JointState ->
observation.state) and ``command_message_type`` / ``command_to_vector`` / ``vector_to_command`` (the action's
message, chosen by the contract's action type). Every node converts through these.

Command types: geometry_msgs/Twist (the contract's fields name the Twist fields), std_msgs/Float64MultiArray
(one value per action name, in order) and trajectory_msgs/JointTrajectory (``joint_names`` = the action names,
one point per action, or an action chunk as several points ``dt`` apart in ``time_from_start``; reading a
trajectory takes its first point, the target for now, reordered by joint name). A gripper is one more joint
of the action, in the same message (docs/arms.md).
"""
from __future__ import annotations

import math
from typing import Sequence

import numpy as np
from builtin_interfaces.msg import Time
from geometry_msgs.msg import Twist
from sensor_msgs.msg import CameraInfo, Image, JointState
from builtin_interfaces.msg import Duration
from std_msgs.msg import Float64MultiArray
from trajectory_msgs.msg import JointTrajectory, JointTrajectoryPoint

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


def seconds_to_duration(t: float) -> Duration:
    ns = int(round(t * 1e9))
    return Duration(sec=ns // 1_000_000_000, nanosec=ns % 1_000_000_000)


def array_to_joint_trajectory(values: np.ndarray, names: Sequence[str], dt: float | None = None) -> JointTrajectory:
    """A JointTrajectory to ``names`` (the contract's action names, gripper included): ``values`` (n,) is one
    point, a chunk (T, n) is T points; point i has ``time_from_start`` (i + 1) * ``dt`` s (the control period;
    None: one point at 0, "now"). Raises CommandError for a wrong width, non-finite values or a chunk given
    without ``dt``. The header stamp is left zero: the controller starts it on receipt."""
    chunk = np.asarray(values, dtype=np.float64)
    single = chunk.ndim == 1
    chunk = chunk.reshape(1, -1) if single else chunk
    n = len(names)
    if chunk.ndim != 2 or chunk.shape[1] != n or chunk.shape[0] == 0:
        raise codecs.CommandError("dimension", f"a trajectory to {list(names)} needs {n} values per point, got "
                                               f"shape {np.shape(values)}; send (n,) or a (T, n) chunk")
    for row in chunk:
        codecs.check_command(row, n, names)
    if not single and (dt is None or not dt > 0):
        raise codecs.CommandError("time_from_start", f"a chunk of {len(chunk)} points needs dt > 0 (the control "
                                                     f"period, s), got {dt!r}")
    step = 0.0 if dt is None else float(dt)
    points = [JointTrajectoryPoint(positions=[float(v) for v in row], time_from_start=seconds_to_duration((i + 1) * step))
              for i, row in enumerate(chunk)]
    return JointTrajectory(joint_names=list(names), points=points)


def joint_trajectory_chunk(msg: JointTrajectory, names: Sequence[str]) -> tuple[np.ndarray, np.ndarray]:
    """A JointTrajectory's positions as a (T, n) chunk in ``names`` order and its (T,) ``time_from_start`` (s).
    Raises CommandError: joint names other than ``names`` (listed), no points, a point whose positions do not
    match joint_names, non-finite values, or times that do not increase."""
    order = codecs.trajectory_order(msg.joint_names, names)
    if not msg.points:
        raise codecs.CommandError("no_points", f"trajectory to {list(msg.joint_names)} has no points; send at "
                                               "least one point with positions")
    n = len(msg.joint_names)
    rows = []
    for i, point in enumerate(msg.points):
        if len(point.positions) != n:
            raise codecs.CommandError("point_size", f"trajectory point {i} has {len(point.positions)} positions for "
                                                    f"{n} joint_names; send one position per joint")
        rows.append(np.asarray(point.positions, dtype=np.float64)[order])
    chunk = np.stack(rows)
    for row in chunk:
        codecs.check_command(row, len(names), names)
    times = np.array([p.time_from_start.sec + p.time_from_start.nanosec * 1e-9 for p in msg.points])
    if len(times) > 1 and np.any(np.diff(times) <= 0):
        raise codecs.CommandError("time_from_start", f"trajectory time_from_start {times.tolist()} must increase "
                                                     "from point to point")
    return chunk, times


def joint_trajectory_to_array(msg: JointTrajectory, names: Sequence[str]) -> np.ndarray:
    """The trajectory's first point (the target for now) as the action vector in ``names`` order
    (:func:`joint_trajectory_chunk`'s checks)."""
    return joint_trajectory_chunk(msg, names)[0][0]


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


# Action type -> (message class, (message, fields, names) -> vector, (vector, fields, names, dt) -> message); a new
# command type is one entry here (and its field rule in vla_core.codecs.COMMAND_TYPES).
_COMMANDS = {
    codecs.TWIST: (Twist, lambda msg, fields, names: twist_to_array(msg, fields),
                   lambda values, fields, names, dt: array_to_twist(values, fields)),
    codecs.FLOAT64_ARRAY: (Float64MultiArray, lambda msg, fields, names: multiarray_to_array(msg),
                           lambda values, fields, names, dt: array_to_multiarray(values)),
    codecs.JOINT_TRAJECTORY: (JointTrajectory, lambda msg, fields, names: joint_trajectory_to_array(msg, names),
                              lambda values, fields, names, dt: array_to_joint_trajectory(values, names, dt)),
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


def command_to_vector(msg, action_type: str, fields: tuple[str, ...],
                      names: Sequence[str] | None = None) -> np.ndarray:
    """A command message as the action vector (float64): the Twist ``fields``, the array's data as sent, or a
    trajectory's first point in ``names`` order (the contract's action names; default ``fields``), which
    raises CommandError for joint names other than those."""
    return _command_codec(action_type)[1](msg, fields, tuple(fields if names is None else names))


def vector_to_command(values: np.ndarray, action_type: str, fields: tuple[str, ...],
                      names: Sequence[str] | None = None, dt: float | None = None):
    """The command message carrying the action vector ``values`` (one value per ``fields``). A trajectory goes
    to ``names`` (the contract's action names; default ``fields``) and also takes a (T, n) chunk, its points
    ``dt`` s apart (:func:`array_to_joint_trajectory`)."""
    return _command_codec(action_type)[2](values, fields, tuple(fields if names is None else names), dt)


def time_to_seconds(stamp: Time) -> float:
    """builtin_interfaces/Time (a header stamp) -> seconds."""
    return stamp.sec + stamp.nanosec * 1e-9


def sent_time(info) -> float | None:
    """When the publisher sent a message (s, its system clock): the DDS source timestamp of an rclpy
    subscription callback's ``MessageInfo``; None where the middleware gives none. Messages of two topics are
    ordered by it (their arrival order can differ)."""
    ns = info.get("source_timestamp") if info else None
    return ns * 1e-9 if ns else None


def seconds_to_time(t: float) -> Time:
    # Round once in nanoseconds: 12.9999999999 is 13 s, not 12 s + (1e9 % 1e9) ns (a stamp 1 s in the past).
    ns = int(round(t * 1e9))
    return Time(sec=ns // 1_000_000_000, nanosec=ns % 1_000_000_000)
