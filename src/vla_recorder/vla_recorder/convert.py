"""Robot-contract message fields -> feature vectors and images (plain functions over message objects)."""
from __future__ import annotations

import math

import numpy as np

from vla_core.contract import CameraSpec, RobotContract
from vla_core.image import DEPTH_ENCODINGS, ImageError, camera_frame


def image_to_feature(msg, cam: CameraSpec) -> tuple[np.ndarray, str]:
    """A sensor_msgs/Image -> (cam.height, cam.width, 3) uint8 RGB, and a note of what was converted ('' if
    nothing). The contract allows converting any colour encoding and resizing at the same aspect ratio;
    anything else raises ImageError naming the value and the fix."""
    if msg.encoding in DEPTH_ENCODINGS:
        raise ImageError(f"{cam.topic}: encoding '{msg.encoding}' is depth, camera '{cam.name}' is colour "
                         f"({cam.encoding}); publish a colour image there")
    notes = []
    if msg.encoding != cam.encoding:
        notes.append(f"{msg.encoding}->rgb8")
    if (msg.height, msg.width) != (cam.height, cam.width):
        if msg.height <= 0 or not math.isclose(msg.width / msg.height, cam.width / cam.height, rel_tol=0.01):
            raise ImageError(f"{cam.topic}: image {msg.width}x{msg.height} has another aspect ratio than the "
                             f"contract's {cam.width}x{cam.height}; fix the camera size or the contract")
        notes.append(f"{msg.width}x{msg.height}->{cam.width}x{cam.height}")
    rgb = camera_frame(msg.data, msg.height, msg.width, msg.encoding, msg.step, cam.height, cam.width,
                       bool(msg.is_bigendian))
    return rgb, ", ".join(notes)


def joint_state_vector(msg, contract: RobotContract) -> np.ndarray:
    """sensor_msgs/JointState -> the contract's state vector (joint-major: j0.position, j0.velocity, ...).
    A joint or field the message lacks is NaN, which makes the frame invalid."""
    index = {name: i for i, name in enumerate(msg.name)}
    out = []
    for joint in contract.state.joints:
        i = index.get(joint)
        for field in contract.state.fields:
            values = getattr(msg, field)
            out.append(float(values[i]) if i is not None and i < len(values) else math.nan)
    return np.asarray(out, dtype=np.float64)


def command_vector(msg, contract: RobotContract) -> np.ndarray:
    """The command message (Twist fields or Float64MultiArray data) -> the action vector."""
    if contract.action.type == "geometry_msgs/msg/Twist":
        return np.array([getattr(getattr(msg, f.split(".")[0]), f.split(".")[1]) for f in contract.action.fields],
                        dtype=np.float64)
    data = np.asarray(msg.data, dtype=np.float64)
    return data if data.shape == (contract.action.dim,) else np.full(contract.action.dim, math.nan)


def command_type(contract: RobotContract):
    if contract.action.type == "geometry_msgs/msg/Twist":
        from geometry_msgs.msg import Twist
        return Twist
    if contract.action.type == "std_msgs/msg/Float64MultiArray":
        from std_msgs.msg import Float64MultiArray
        return Float64MultiArray
    raise ValueError(f"action type {contract.action.type} cannot be recorded yet; use Twist or Float64MultiArray")
