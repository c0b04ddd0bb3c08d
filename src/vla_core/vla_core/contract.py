"""The robot contract: which ROS topics carry which dataset/policy features, at what rate and size.

One YAML file per robot in ``params/robots/``. The recorder writes exactly these features, the trainer reads
them, a policy artifact declares them, and the sim robot and the perception/policy nodes serve them.
Feature names follow LeRobot: ``observation.images.<camera>``, ``observation.state``, ``action``.
"""
from __future__ import annotations

import math

import numpy as np

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from vla_core.codecs import COMMAND_TYPES, STATE_FIELDS, TWIST, joint_state_vector
from vla_core.errors import ConfigError
from vla_core.features import ACTION, STATE, image_key

IMAGE_ENCODINGS = ("rgb8", "bgr8", "mono8", "rgba8", "bgra8", "16UC1", "32FC1")
# Message type -> the fields an action may name (None: array indices, data[0], data[1], ...).
ACTION_TYPES = COMMAND_TYPES
LIMIT_KEYS = ("max_velocity", "max_acceleration")
# How a joint command's values are meant: absolute targets (the default), or increments from the measured positions.
ACTION_MODES = ("absolute", "delta")


def _limit_list(value: Any, key: str, size: int, problems: list[str]) -> tuple[float, ...] | None:
    """An optional per-field physical limit of the action (finite, > 0, one per field)."""
    if value is None:
        return None
    ok = isinstance(value, list) and len(value) == size and all(
        isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v) and v > 0 for v in value)
    if not ok:
        problems.append(f"action.{key} = {value!r}: expected {size} finite numbers > 0, one per action field")
        return None
    return tuple(float(v) for v in value)


def _action_mode(value: Any, action_type: str | None, problems: list[str]) -> str:
    """``action.mode``: absolute (default) or delta, and delta only for joint commands."""
    if value not in ACTION_MODES:
        problems.append(f"action.mode = {value!r}: expected absolute (joint targets) or delta (increments from the "
                        "measured joint positions)")
        return "absolute"
    if value == "delta" and action_type == TWIST:
        problems.append(f"action.mode = 'delta' applies to joint commands; a {TWIST} is a velocity: leave "
                        "mode absolute (or drop it)")
    return value


@dataclass(frozen=True)
class CameraSpec:
    """One camera: ``topic`` carries sensor_msgs/Image; the model sees (height, width, 3) RGB."""

    name: str
    topic: str
    info_topic: str
    height: int
    width: int
    encoding: str = "rgb8"
    frame_id: str = ""


@dataclass(frozen=True)
class StateSpec:
    """Proprioception from sensor_msgs/JointState: ``fields`` of every joint, joint-major order."""

    topic: str
    joints: tuple[str, ...]
    fields: tuple[str, ...] = ("position", "velocity")

    @property
    def names(self) -> list[str]:
        return [f"{j}.{f}" for j in self.joints for f in self.fields]

    def vector(self, positions, velocities, efforts=()) -> np.ndarray:
        """observation.state (float32) from per-joint arrays in ``joints`` order (joint-major, ``fields`` in
        order): the JointState codec with the contract's own joint names."""
        columns = {"position": positions, "velocity": velocities, "effort": efforts}
        return joint_state_vector(self.joints, columns, self.joints, self.fields).astype(np.float32)


@dataclass(frozen=True)
class ActionSpec:
    """The command a policy or person proposes and the shield forwards, in SI units."""

    topic: str
    type: str
    fields: tuple[str, ...]
    names: tuple[str, ...]
    low: tuple[float, ...]
    high: tuple[float, ...]
    unit: str = ""
    # The robot's physical limits per action field (None: not declared). With ``low``/``high`` they are the
    # safety shield's hard limits, which run-time tuning can only tighten: ``max_velocity`` bounds joint
    # velocities (position commands) or adds a speed bound to velocity commands, ``max_acceleration`` bounds
    # the change of velocity per second on every field.
    max_velocity: tuple[float, ...] | None = None
    max_acceleration: tuple[float, ...] | None = None
    # "absolute": each value is the target itself (joint positions in the units of joint_states); "delta": each
    # value is an increment from the joint's position measured when the command is made (target = measured +
    # value), and ``low``/``high`` bound the increment. Joint commands only: a Twist is a velocity.
    mode: str = "absolute"

    @property
    def dim(self) -> int:
        return len(self.fields)


@dataclass(frozen=True)
class RobotContract:
    robot: str
    fps: float
    cameras: tuple[CameraSpec, ...]
    state: StateSpec
    action: ActionSpec
    instruction_topic: str = "instruction"
    base_frame: str = "base_link"
    source: str = ""
    extra: dict = field(default_factory=dict, compare=False)

    def features(self) -> dict[str, dict[str, Any]]:
        """LeRobot-style feature table: name -> {dtype, shape, names}."""
        feats: dict[str, dict[str, Any]] = {}
        for cam in self.cameras:
            feats[image_key(cam.name)] = {
                "dtype": "video", "shape": [cam.height, cam.width, 3], "names": ["height", "width", "channels"],
            }
        feats[STATE] = {"dtype": "float32", "shape": [len(self.state.names)], "names": self.state.names}
        feats[ACTION] = {"dtype": "float32", "shape": [self.action.dim], "names": list(self.action.names)}
        return feats

    @classmethod
    def from_yaml(cls, path: str | Path) -> "RobotContract":
        path = Path(path)
        if not path.is_file():
            raise ConfigError(f"robot contract not found: {path} (contracts live in params/robots/)")
        try:
            data = yaml.safe_load(path.read_text())
        except yaml.YAMLError as exc:
            raise ConfigError(f"not valid YAML: {exc}", source=str(path)) from exc
        return cls.from_dict(data, source=str(path))

    @classmethod
    def from_dict(cls, data: Any, source: str = "<contract>") -> "RobotContract":
        """Build and validate a contract; every problem is collected into one ConfigError."""
        problems: list[str] = []
        if not isinstance(data, dict):
            raise ConfigError("a contract is a mapping with keys robot, fps, cameras, state, action", source)
        known = {"robot", "description", "fps", "base_frame", "cameras", "state", "action", "instruction", "extra"}
        for key in sorted(set(data) - known):
            problems.append(f"unknown key '{key}'; accepted keys: {', '.join(sorted(known))}")

        def need(mapping: dict, key: str, kind: type, where: str) -> Any:
            if key not in mapping:
                problems.append(f"{where}: missing key '{key}'")
                return None
            value = mapping[key]
            if kind is float and isinstance(value, int) and not isinstance(value, bool):
                value = float(value)
            if not isinstance(value, kind) or isinstance(value, bool) and kind is not bool:
                problems.append(f"{where}.{key} = {value!r}: expected {kind.__name__}")
                return None
            return value

        robot = need(data, "robot", str, "contract")
        fps = need(data, "fps", float, "contract")
        if fps is not None and not 0.5 <= fps <= 1000:
            problems.append(f"contract.fps = {fps}: expected a rate in [0.5, 1000] Hz")

        cameras = []
        for name, cam in (data.get("cameras") or {}).items():
            where = f"cameras.{name}"
            if not isinstance(cam, dict):
                problems.append(f"{where}: expected a mapping with topic, height, width")
                continue
            topic, h, w = need(cam, "topic", str, where), need(cam, "height", int, where), need(cam, "width", int, where)
            enc = cam.get("encoding", "rgb8")
            if enc not in IMAGE_ENCODINGS:
                problems.append(f"{where}.encoding = {enc!r}: expected one of {', '.join(IMAGE_ENCODINGS)}")
            for dim_name, dim in (("height", h), ("width", w)):
                if dim is not None and not 8 <= dim <= 4096:
                    problems.append(f"{where}.{dim_name} = {dim}: expected 8..4096 pixels")
            if None not in (topic, h, w):
                info = cam.get("info_topic", topic.rsplit("/", 1)[0] + "/camera_info")
                cameras.append(CameraSpec(name, topic, info, h, w, enc, cam.get("frame_id", "")))

        state = None
        st = data.get("state")
        if not isinstance(st, dict):
            problems.append("state: missing; expected {topic, joints, fields}")
        else:
            topic, joints = need(st, "topic", str, "state"), need(st, "joints", list, "state")
            fields = tuple(st.get("fields", ["position", "velocity"]))
            bad = [f for f in fields if f not in STATE_FIELDS]
            if bad:
                problems.append(f"state.fields: {bad} not accepted; expected a subset of {list(STATE_FIELDS)}")
            if topic is not None and joints:
                state = StateSpec(topic, tuple(joints), fields)

        action = None
        ac = data.get("action")
        if not isinstance(ac, dict):
            problems.append("action: missing; expected {topic, type, fields, low, high}")
        else:
            topic, typ = need(ac, "topic", str, "action"), need(ac, "type", str, "action")
            fields, low, high = need(ac, "fields", list, "action"), need(ac, "low", list, "action"), need(ac, "high", list, "action")
            if typ is not None and typ not in ACTION_TYPES:
                problems.append(f"action.type = {typ!r}: expected one of {', '.join(ACTION_TYPES)}")
            allowed = ACTION_TYPES.get(typ or "")
            if allowed and fields:
                bad = [f for f in fields if f not in allowed]
                if bad:
                    problems.append(f"action.fields: {bad} are not fields of {typ}; accepted: {', '.join(allowed)}")
            if fields and low is not None and high is not None:
                if not len(fields) == len(low) == len(high):
                    problems.append(f"action: fields, low and high must have one entry per action dimension "
                                    f"(got {len(fields)}, {len(low)}, {len(high)})")
                elif any(lo >= hi for lo, hi in zip(low, high)):
                    problems.append(f"action: every low must be below its high (low={low}, high={high})")
                else:
                    names = tuple(ac.get("names", fields))
                    rates = {key: _limit_list(ac.get(key), key, len(fields), problems) for key in LIMIT_KEYS}
                    mode = _action_mode(ac.get("mode", "absolute"), typ, problems)
                    action = ActionSpec(topic, typ, tuple(fields), names, tuple(map(float, low)),
                                        tuple(map(float, high)), ac.get("unit", ""), **rates, mode=mode)
        if problems:
            raise ConfigError(problems, source)
        instruction = data.get("instruction") or {}
        return cls(robot, fps, tuple(cameras), state, action, instruction.get("topic", "instruction"),
                   data.get("base_frame", "base_link"), source, data.get("extra") or {})
