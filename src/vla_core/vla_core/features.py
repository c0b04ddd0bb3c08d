"""Feature names shared by the robot contract, the dataset, the trainer, the artifact and the nodes (LeRobot's).

``observation.images.<camera>`` (H, W, 3) uint8 RGB, ``observation.state`` float32 (joint-major),
``observation.language`` float32 (an instruction embedding), ``action`` float32 (the command, SI units);
``observation.environment_state`` float32 where a simulator recorded where its task's objects are (privileged: a
training target, never a policy input).
"""
from __future__ import annotations

STATE = "observation.state"
LANGUAGE = "observation.language"
ENV_STATE = "observation.environment_state"
ACTION = "action"
IMAGE_PREFIX = "observation.images."
OBSERVATION_PREFIX = "observation."


def image_key(camera: str) -> str:
    """The feature of camera ``camera``: ``observation.images.<camera>``."""
    return IMAGE_PREFIX + camera


def is_image(feature: str) -> bool:
    return feature.startswith(IMAGE_PREFIX)


def camera_of(feature: str) -> str:
    """The camera name of an image feature; raises ValueError for any other feature."""
    if not is_image(feature):
        raise ValueError(f"{feature!r} is not an image feature (expected {IMAGE_PREFIX}<camera>)")
    return feature[len(IMAGE_PREFIX):]
