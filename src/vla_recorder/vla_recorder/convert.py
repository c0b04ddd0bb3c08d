"""Robot-contract message fields -> feature vectors and images (plain functions over message objects)."""
from __future__ import annotations

import math

import numpy as np

from vla_core.codecs import StateError
from vla_core.contract import CameraSpec, RobotContract
from vla_core.image import DEPTH_ENCODINGS, ImageError, camera_frame
from vla_ros import convert


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
    """sensor_msgs/JointState -> the contract's state vector (joint-major: j0.position, j0.velocity, ...), through
    the contract's codec (vla_ros.convert.joint_state_vector). A joint or value the message lacks (the codec's
    StateError) is NaN, which makes the frame invalid: the row is kept and counted, never silently replaced."""
    try:
        return convert.joint_state_vector(msg, contract.state.joints, contract.state.fields)
    except StateError as exc:
        return exc.values


def command_vector(msg, contract: RobotContract) -> np.ndarray:
    """The command message (Twist fields or Float64MultiArray data) -> the action vector; an array of another
    size is NaN (the frame is invalid)."""
    values = convert.command_to_vector(msg, contract.action.type, contract.action.fields)
    return values if values.shape == (contract.action.dim,) else np.full(contract.action.dim, math.nan)


def command_type(contract: RobotContract):
    """The message class of the contract's command (raises ValueError for a type that cannot be recorded yet)."""
    return convert.command_message_type(contract.action.type)
