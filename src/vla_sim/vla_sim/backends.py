"""Uniform simulator backend over gymnasium environments, driven by plain configuration.

This is what the ROS sim-robot node calls. One concrete class, :class:`SimBackend`,
maps any gymnasium env onto the robot contract:

* images: uint8 (H, W, 3) RGB, one camera or several;
* joint positions and velocities in SI units (m or rad, m/s or rad/s) in the robot frame, float64;
* actions in the robot contract's action space: joint velocities in m/s (planar robots such as the
  tabletop gantry), or absolute joint-position targets in the units of the joint positions (arms: rad, and
  the gripper as one more joint), with physical limits ``action_low`` / ``action_high``;
* the current language instruction, success flag, and (if the env offers
  one) a privileged state vector for a scripted expert.

How an env's observations and actions map onto that contract is configuration
(a plain dict, typically loaded from a YAML parameter file), not code. Keys
(``CONFIG_KEYS`` lists them; unknown keys raise ValueError):

``env_id`` (str, required)
    gymnasium id, e.g. "vla_sim/TabletopPush-v0" or "gym_pusht/PushT-v0".
``env_kwargs`` (dict, {})
    keyword arguments for ``gymnasium.make``.
``max_episode_steps`` (int | None)
    passed to ``gymnasium.make`` (outer TimeLimit); None keeps the env's own.
``import_module`` (str | None)
    module imported first so the id gets registered; default: from the id's
    namespace (``vla_sim`` -> ``vla_sim.envs``, otherwise the namespace itself).
``install_hint`` (str | None)
    how to install the env, shown when the id or module is missing.
``env_vars`` (dict, {})
    environment variables set with ``os.environ.setdefault`` before import.
    ``SDL_VIDEODRIVER=dummy`` is always set this way (backends are headless).
``image_key`` (str | None, "pixels")
    observation key of the image; None = use ``env.render()``. The key may hold a dict of
    images, one per camera: ``cameras`` then names them.
``cameras`` (list[str] | None)
    the cameras to publish, keys of the image dict, in order (None: all of them); the
    first is ``Frame.image``. Only for an image dict.
``joint_position_key`` (str, "agent_pos") / ``joint_velocity_key`` (str | None, None)
    observation keys (looked up in the observation dict, then in ``info``),
    in env units and env units/s. Without a velocity key the velocity is the
    finite difference of positions over one control period (zero at reset).
``joint_names`` / ``action_names`` (list[str] | None)
    defaults: ``joint_<i>`` and ``<joint>_velocity``.
``action_mode`` ("velocity" | "position_target" | "position", "velocity")
    velocity: the env's action is a velocity in env units/s.
    position_target: the env's action is an absolute target position in env
    units; the backend integrates the command: target = position + v * dt.
    position: the command is an absolute joint-position target in the units of
    the joint positions (rad, m; a gripper is one more joint), the env's action
    is that target times ``action_scale``; limits are the env's action bounds
    divided by it. Frames (units_per_meter, env_origin, env_to_robot) do not apply.
``action_scale`` (list[float] | None)
    position mode: per-dimension factor from the command to the env's action
    (e.g. a gripper opening in m -> the env's 0..1 command); default all 1.
``units_per_meter`` (float, 1.0)
    env length units per metre (e.g. pixels per metre).
``env_origin`` (list[float] | None) / ``env_to_robot`` (list[list[float]] | None)
    robot-frame position = env_to_robot @ (env_position - env_origin) / units_per_meter.
    env_to_robot must be orthonormal (a rotation / axis permutation with signs);
    defaults: zeros and identity.
``max_speed`` (float | None)
    m/s per-axis command limit; required meaning for position_target (default
    0.25); in velocity mode it can only tighten the env's own action bounds.
``fps`` (float | None)
    control rate; default: the env's ``metadata["render_fps"]``.
``instruction`` (str | None)
    fixed instruction text. For envs with a fixed task this is the task
    description; for instruction-conditioned envs it is passed at every reset
    unless ``reset(instruction=...)`` overrides it (None = the env samples one).
``instruction_option`` (str | None, None)
    name of the env's reset option that takes instruction text ("instruction"
    for the tabletop env); None = the env has a fixed task.
``success_key`` (str, "is_success")
    info key of the success flag.
``privileged_state_method`` (str | None, "privileged_state")
    method of the unwrapped env returning a flat float64 vector.
``expert`` (str | None) / ``expert_kwargs`` (dict, {})
    name of a scripted expert in ``vla_sim.experts.EXPERTS`` (e.g. "tabletop"), with ``reset()`` and
    ``act(privileged) -> (n_actions,)`` in the env's action units, built by :meth:`SimBackend.make_expert`,
    which returns it in the backend's command units.

Not thread-safe: one caller (the node's executor) should own a backend.
No rclpy or torch imports here.
"""

from __future__ import annotations

import copy
import importlib
import math
import os
from dataclasses import dataclass, field
from typing import Any

import gymnasium as gym
import numpy as np

DEFAULT_FPS = 10.0
DEFAULT_POSITION_TARGET_MAX_SPEED = 0.25  # m/s

#: Accepted configuration keys and their defaults (None = no default / optional).
CONFIG_DEFAULTS: dict[str, Any] = {
    "env_id": None,
    "env_kwargs": {},
    "max_episode_steps": None,
    "import_module": None,
    "install_hint": None,
    "env_vars": {},
    "image_key": "pixels",
    "joint_position_key": "agent_pos",
    "joint_velocity_key": None,
    "joint_names": None,
    "action_names": None,
    "action_mode": "velocity",
    "action_scale": None,
    "cameras": None,
    "units_per_meter": 1.0,
    "env_origin": None,
    "env_to_robot": None,
    "max_speed": None,
    "fps": None,
    "instruction": None,
    "instruction_option": None,
    "success_key": "is_success",
    "privileged_state_method": "privileged_state",
    "expert": None,
    "expert_kwargs": {},
}
CONFIG_KEYS: tuple[str, ...] = tuple(CONFIG_DEFAULTS)
ACTION_MODES: tuple[str, ...] = ("velocity", "position_target", "position")

#: Modules that register a namespace's env ids, and how to install them.
_NAMESPACE_MODULES = {"vla_sim": "vla_sim.envs", "gym_pusht": "gym_pusht"}
_INSTALL_HINTS = {
    "vla_sim": "the vla_sim package must be importable (build the workspace and source install/setup.bash)",
    "gym_pusht": "pip install gym-pusht",
}


def _tabletop_preset(env_id: str) -> dict[str, Any]:
    """The embedded tabletop push task registered as ``env_id`` (the variants differ only in their layout)."""
    return {
        "env_id": env_id,
        "env_kwargs": {"image_size": [96, 96]},
        "image_key": "pixels",
        "joint_position_key": "agent_pos",
        "joint_velocity_key": "agent_vel",
        "joint_names": ["gantry_x", "gantry_y"],
        "action_mode": "velocity",
        "instruction": None,
        "instruction_option": "instruction",
        "expert": "tabletop",
    }


#: Ready-made configurations. ``make_backend(PRESETS["tabletop"])``.
PRESETS: dict[str, dict[str, Any]] = {
    "tabletop": _tabletop_preset("vla_sim/TabletopPush-v0"),
    "tabletop_hard": _tabletop_preset("vla_sim/TabletopPushHard-v0"),
    # The MuJoCo arm (vla_sim/envs/arm.py): six joint targets (rad) and the gripper as a seventh joint whose
    # command is the opening between the pads (m, as joint_states reports it); the env takes 0..1 for it
    # (opening / 0.08 m), hence the scale. Two cameras.
    "arm": {
        "env_id": "vla_sim/ArmPickPlace-v0",
        "env_kwargs": {"image_size": [96, 96]},
        "image_key": "pixels",
        "cameras": ["scene", "wrist"],
        "joint_position_key": "agent_pos",
        "joint_velocity_key": "agent_vel",
        "joint_names": ["shoulder_pan", "shoulder_lift", "elbow", "forearm_roll", "wrist_pitch", "wrist_roll",
                        "gripper"],
        "action_mode": "position",
        "action_scale": [1.0, 1.0, 1.0, 1.0, 1.0, 1.0, 12.5],
        "instruction": None,
        "instruction_option": "instruction",
        "expert": "arm",
    },
    # LeRobot's PushT benchmark. Its 512 x 512 workspace is read as 1 unit = 1 mm
    # (pusher radius 15 mm, T bar 120 mm), i.e. a 0.512 m table like ours. Its
    # frame has x = image right, y = image down, origin at the top-left corner;
    # env_origin / env_to_robot re-express it like base_link (origin at the
    # workspace centre, x = image up, y = image left).
    "pusht": {
        "env_id": "gym_pusht/PushT-v0",
        "env_kwargs": {
            "obs_type": "pixels_agent_pos",
            "render_mode": "rgb_array",
            "observation_width": 96,
            "observation_height": 96,
        },
        "install_hint": "pip install gym-pusht",
        "env_vars": {"SDL_VIDEODRIVER": "dummy", "PYGAME_HIDE_SUPPORT_PROMPT": "1"},
        "image_key": "pixels",
        "joint_position_key": "agent_pos",
        "joint_velocity_key": None,
        "joint_names": ["gantry_x", "gantry_y"],
        "action_mode": "position_target",
        "units_per_meter": 1000.0,
        "env_origin": [256.0, 256.0],
        "env_to_robot": [[0.0, -1.0], [-1.0, 0.0]],
        "max_speed": 0.25,
        "instruction": "push the T-shaped block onto the target",
    },
}


@dataclass(frozen=True)
class Frame:
    """One observation of the robot after a reset or a step.

    Attributes:
        image: (H, W, 3) uint8 RGB camera image (the first camera).
        joint_positions: float64 (n_joints,) in SI units (m, rad), robot frame.
        joint_velocities: float64 (n_joints,) (m/s, rad/s).
        reward: the env's reward for the last step (0.0 after reset).
        terminated / truncated: gymnasium episode-end flags.
        is_success: the task is achieved.
        info: the env's info dict (shallow copy).
        images: camera name -> (H, W, 3) uint8 RGB, for every camera (``SimBackend.camera_names``);
            empty for a single-camera env.
    """

    image: np.ndarray
    joint_positions: np.ndarray
    joint_velocities: np.ndarray
    reward: float
    terminated: bool
    truncated: bool
    is_success: bool
    info: dict = field(default_factory=dict)
    images: dict = field(default_factory=dict)

    def camera(self, name: str) -> np.ndarray:
        """The image of camera ``name`` (a one-camera env's image whatever the name: its contract names it)."""
        if not self.images:
            return self.image
        try:
            return self.images[name]
        except KeyError:
            raise ValueError(f"camera {name!r} is not among this frame's cameras {list(self.images)}") from None


class SimBackend:
    """A gymnasium env mapped onto the robot contract by a config dict (see module docstring).

    Attributes:
        env_id: gymnasium id.
        fps: control rate (Hz); one ``step`` = 1 / fps seconds.
        joint_names / action_names: names of state and command dimensions.
        action_low / action_high: float64 (n_actions,) command limits (m/s, or positions).
        position_controlled: commands are absolute joint positions (action_mode position).
        camera_names: the cameras of an env with several (() for one image).
        image_shape: (H, W, 3) (the first camera's).
        instruction: current instruction text ("" if none).
        has_expert: a scripted expert and a privileged state are available.
        max_episode_steps: episode length limit if known, else None.

    Raises (constructor):
        ValueError: bad configuration, unknown env id (with install hint), or
            env kwargs the env rejects.
    """

    def __init__(self, config: dict[str, Any]) -> None:
        cfg = _validate_config(config)
        self.config = cfg
        self.env_id: str = cfg["env_id"]
        self.env = _make_env(cfg)
        self._unwrapped = self.env.unwrapped
        self._upm = float(cfg["units_per_meter"])
        self._mode = cfg["action_mode"]

        if not isinstance(self.env.action_space, gym.spaces.Box) or len(self.env.action_space.shape) != 1:
            self.env.close()
            raise ValueError(f"env {self.env_id!r} needs a 1-D Box action space, has {self.env.action_space}")
        n_act = int(self.env.action_space.shape[0])
        self._n = n_act
        self.position_controlled = self._mode == "position"
        if self.position_controlled and any(cfg[k] is not None for k in ("env_origin", "env_to_robot")):
            raise ValueError(f"action_mode 'position' takes joint positions as the env reports them; remove "
                             f"env_origin/env_to_robot from the config of {self.env_id!r}")
        scale = np.ones(n_act) if cfg["action_scale"] is None else np.asarray(cfg["action_scale"], np.float64)
        if scale.shape != (n_act,) or not np.all(np.isfinite(scale)) or np.any(scale <= 0):
            raise ValueError(f"action_scale must be {n_act} finite numbers > 0 for {self.env_id!r}, "
                             f"got {cfg['action_scale']!r}")
        if cfg["action_scale"] is not None and not self.position_controlled:
            raise ValueError("action_scale applies to action_mode 'position'; remove it or set that mode")
        self._scale = scale
        self._origin = np.zeros(n_act) if cfg["env_origin"] is None else np.asarray(cfg["env_origin"], np.float64)
        self._rot = np.eye(n_act) if cfg["env_to_robot"] is None else np.asarray(cfg["env_to_robot"], np.float64)
        if self._origin.shape != (n_act,) or self._rot.shape != (n_act, n_act):
            raise ValueError(
                f"env_origin must have {n_act} values and env_to_robot be {n_act}x{n_act} "
                f"for {self.env_id!r}; got {cfg['env_origin']!r}, {cfg['env_to_robot']!r}"
            )
        if not np.allclose(self._rot @ self._rot.T, np.eye(n_act), atol=1e-9):
            raise ValueError(f"env_to_robot must be orthonormal, got {cfg['env_to_robot']!r}")

        self.fps = float(cfg["fps"] or self._unwrapped.metadata.get("render_fps") or DEFAULT_FPS)
        self.dt = 1.0 / self.fps
        self.joint_names = tuple(cfg["joint_names"] or (f"joint_{i}" for i in range(n_act)))
        default_names = self.joint_names if self.position_controlled else (f"{n}_velocity" for n in self.joint_names)
        self.action_names = tuple(cfg["action_names"] or default_names)
        if len(self.joint_names) != n_act or len(self.action_names) != n_act:
            raise ValueError(
                f"joint_names and action_names need {n_act} entries for {self.env_id!r}, "
                f"got {list(self.joint_names)} and {list(self.action_names)}"
            )

        self._env_low = self.env.action_space.low.astype(np.float64)
        self._env_high = self.env.action_space.high.astype(np.float64)
        if self.position_controlled:
            self.action_low = self._env_low / self._scale
            self.action_high = self._env_high / self._scale
        elif self._mode == "velocity":
            # Robot-frame limits of an env-frame box; axes are permuted/flipped by _rot.
            corners = np.abs(self._rot) @ np.maximum(np.abs(self._env_low), np.abs(self._env_high))
            high = corners / self._upm
            if cfg["max_speed"] is not None:
                high = np.minimum(high, float(cfg["max_speed"]))
        else:
            high = np.full(n_act, float(cfg["max_speed"] or DEFAULT_POSITION_TARGET_MAX_SPEED))
        if not self.position_controlled:
            self.action_high = high.astype(np.float64)
            self.action_low = -self.action_high

        self.camera_names = self._camera_names()
        self.image_shape = self._declared_image_shape()
        self.max_episode_steps = self._find_max_episode_steps()
        self.instruction: str = cfg["instruction"] or ""
        self._priv = None
        if cfg["privileged_state_method"]:
            self._priv = getattr(self._unwrapped, cfg["privileged_state_method"], None)
        self.has_expert = bool(cfg["expert"]) and callable(self._priv)
        self._pos = np.zeros(n_act)  # last joint positions (m), for integration / differences
        self._ready = False
        self.steps = 0

    # ------------------------------------------------------------------ API
    def reset(self, seed: int, instruction: str | None = None) -> Frame:
        """Start an episode.

        Args:
            seed: episode seed (same seed -> same episode).
            instruction: task text for instruction-conditioned envs; None = the
                configured ``instruction`` or, if that is None, one drawn by the env.

        Raises:
            ValueError: the env cannot follow the instruction (fixed-task env and a
                different text, or colours/objects not in the scene). The previous
                episode is left as it was.
        """
        text = instruction if instruction is not None else self.config["instruction"]
        option = self.config["instruction_option"]
        options = None
        if option:
            options = {option: text}
        elif instruction is not None and instruction != (self.config["instruction"] or ""):
            raise ValueError(
                f"env {self.env_id!r} has a fixed task ({self.config['instruction']!r}); "
                f"it cannot follow instruction {instruction!r}"
            )
        obs, info = self.env.reset(seed=int(seed), options=options)
        if option:
            self.instruction = str(info.get("instruction") or getattr(self._unwrapped, "instruction", None) or text or "")
        else:
            self.instruction = self.config["instruction"] or ""
        self._pos = self._joint_positions(obs, info)
        self._ready = True
        self.steps = 0
        frame = self._frame(obs, 0.0, False, False, info, np.zeros(self._n))
        self.image_shape = frame.image.shape
        return frame

    def hold_action(self) -> np.ndarray:
        """The command that keeps the robot where it is: the measured joint positions (position control), or
        zero velocity."""
        return self._pos.copy() if self.position_controlled else np.zeros(self._n)

    def step(self, action: np.ndarray) -> Frame:
        """Apply a command for one control period: a joint velocity (m/s, robot frame), or with action_mode
        position an absolute joint-position target (rad, m).

        Values outside ``[action_low, action_high]`` are clipped.

        Raises:
            ValueError: wrong shape or non-finite values; nothing is applied
                (the caller counts and drops such commands).
            RuntimeError: step before the first reset.
        """
        a = self._check_action(action)
        if not self._ready:
            raise RuntimeError("SimBackend.step called before reset")
        a = np.clip(a, self.action_low, self.action_high)
        if self.position_controlled:
            env_action = a * self._scale
        elif self._mode == "velocity":
            env_action = self._rot.T @ a * self._upm
        else:
            target_m = self._pos + a * self.dt
            env_action = self._origin + self._rot.T @ target_m * self._upm
        env_action = np.clip(env_action, self._env_low, self._env_high).astype(self.env.action_space.dtype)
        obs, reward, terminated, truncated, info = self.env.step(env_action)
        self.steps += 1
        prev = self._pos
        self._pos = self._joint_positions(obs, info)
        return self._frame(obs, float(reward), bool(terminated), bool(truncated), info,
                           (self._pos - prev) / self.dt)

    @property
    def task_state_names(self) -> tuple[str, ...]:
        """Names of :meth:`task_state`'s values; empty where the env offers none."""
        return tuple(getattr(self._unwrapped, "TASK_STATE_NAMES", ()))

    def task_state(self) -> np.ndarray:
        """Where the things the instruction names are (the env's ``task_state()``, e.g. the target block and zone);
        empty where the env offers none."""
        fn = getattr(self._unwrapped, "task_state", None)
        return np.asarray(fn(), np.float64).ravel() if callable(fn) else np.zeros(0, np.float64)

    def privileged_state(self) -> np.ndarray:
        """Flat float64 vector from the env (see the env's docs); empty if it offers none."""
        if not callable(self._priv):
            return np.zeros(0, np.float64)
        return np.asarray(self._priv(), dtype=np.float64).ravel()

    def make_expert(self, **overrides):
        """A new scripted expert (``reset()``, ``act(privileged) -> (n,) m/s``) as configured;
        ``overrides`` replace or add to the configured ``expert_kwargs`` (e.g. ``noise_std``).

        Raises:
            ValueError: no expert configured or no privileged state available.
        """
        if not self.has_expert:
            raise ValueError(f"no scripted expert for {self.env_id!r} (config 'expert' and a privileged state are needed)")
        from vla_sim.experts import make_expert
        expert = make_expert(self.config["expert"], **{**self.config["expert_kwargs"], **overrides})
        return _ScaledExpert(expert, self._scale) if np.any(self._scale != 1.0) else expert

    def set_randomization(self, ranges) -> None:
        """Domain randomisation ranges (``vla_sim.randomization.RandomizationRanges``) for the episodes from the
        next reset on.

        Raises:
            ValueError: the env takes no randomisation (the tabletop and arm envs do) and ``ranges`` is not
                all zero, or the env refuses the ranges.
        """
        setter = getattr(self._unwrapped, "set_randomization", None)
        if callable(setter):
            setter(ranges)
        elif ranges.enabled:
            raise ValueError(f"env {self.env_id!r} takes no domain randomisation (the tabletop and arm envs do); set "
                             "every randomization range to 0")

    def close(self) -> None:
        """Release the env (idempotent)."""
        if self.env is not None:
            self.env.close()
            self._ready = False

    # ------------------------------------------------------------ internals
    def _check_action(self, action) -> np.ndarray:
        try:
            a = np.asarray(action, dtype=np.float64)
        except (TypeError, ValueError) as exc:
            raise ValueError(
                f"action {action!r} is not numeric; expected shape ({self._n},) in m/s ({exc})"
            ) from None
        if a.shape != (self._n,):
            raise ValueError(f"action {action!r} has shape {a.shape}; expected shape ({self._n},) {self.action_names}")
        if not np.all(np.isfinite(a)):
            raise ValueError(f"action {action!r} has non-finite values; expected finite shape ({self._n},) in m/s")
        return a

    def _lookup(self, key: str, obs, info) -> np.ndarray:
        if isinstance(obs, dict) and key in obs:
            return np.asarray(obs[key], np.float64).ravel()
        if key in info:
            return np.asarray(info[key], np.float64).ravel()
        keys = list(obs) if isinstance(obs, dict) else f"a {type(obs).__name__} observation"
        raise ValueError(f"key {key!r} not found in observation ({keys}) or info ({list(info)}) of {self.env_id!r}")

    def _joint_positions(self, obs, info) -> np.ndarray:
        env_pos = self._lookup(self.config["joint_position_key"], obs, info)
        return self._rot @ (env_pos - self._origin) / self._upm

    def _frame(self, obs, reward, terminated, truncated, info, fd_velocity) -> Frame:
        key = self.config["image_key"]
        image = obs[key] if key is not None else self.env.render()
        images = {}
        if isinstance(image, dict):
            missing = [c for c in self.camera_names if c not in image]
            if missing:
                raise ValueError(f"cameras {missing} are not in the images of {self.env_id!r} ({list(image)})")
            images = {c: _rgb(image[c], self.env_id, f"{key}/{c}") for c in self.camera_names}
            image = images[self.camera_names[0]]
        image = _rgb(image, self.env_id, key)
        vkey = self.config["joint_velocity_key"]
        vel = self._rot @ self._lookup(vkey, obs, info) / self._upm if vkey else fd_velocity
        return Frame(
            image=image,
            joint_positions=self._pos.copy(),
            joint_velocities=np.asarray(vel, np.float64),
            reward=reward,
            terminated=terminated,
            truncated=truncated,
            is_success=bool(info.get(self.config["success_key"], False)),
            info=dict(info),
            images=images,
        )

    def _camera_names(self) -> tuple[str, ...]:
        key, space, wanted = self.config["image_key"], self.env.observation_space, self.config["cameras"]
        sub = space.spaces.get(key) if key is not None and isinstance(space, gym.spaces.Dict) else None
        if not isinstance(sub, gym.spaces.Dict):
            if wanted:
                raise ValueError(f"config 'cameras' {wanted} needs a dict of images under {key!r}; {self.env_id!r} "
                                 "has one image there: remove 'cameras'")
            return ()
        names = tuple(wanted or sub.spaces)
        unknown = [c for c in names if c not in sub.spaces]
        if unknown or not names:
            raise ValueError(f"cameras {unknown or names} are not among the cameras of {self.env_id!r}: "
                             f"{list(sub.spaces)}")
        return names

    def _declared_image_shape(self) -> tuple[int, int, int] | None:
        key, space = self.config["image_key"], self.env.observation_space
        if key is not None and isinstance(space, gym.spaces.Dict) and key in space.spaces:
            sub = space[key]
            if isinstance(sub, gym.spaces.Dict):
                return tuple(sub[self.camera_names[0]].shape)
            return tuple(sub.shape)
        return None  # known after the first reset

    def _find_max_episode_steps(self) -> int | None:
        limits = [getattr(self._unwrapped, "max_episode_steps", None)]
        if self.env.spec is not None:
            limits.append(self.env.spec.max_episode_steps)
        limits = [int(v) for v in limits if isinstance(v, (int, np.integer)) and v > 0]
        return min(limits) if limits else None


def _rgb(image, env_id: str, key) -> np.ndarray:
    image = np.asarray(image)
    if image.dtype != np.uint8 or image.ndim != 3 or image.shape[2] != 3:
        raise ValueError(f"image from {env_id!r} (key {key!r}) must be uint8 (H, W, 3), got {image.dtype} {image.shape}")
    return image


class _ScaledExpert:
    """A scripted expert whose env-unit actions are returned in the backend's command units (/ action_scale)."""

    def __init__(self, expert, scale: np.ndarray):
        self._expert, self._scale = expert, scale

    def reset(self) -> None:
        self._expert.reset()

    def act(self, privileged) -> np.ndarray:
        return np.asarray(self._expert.act(privileged), dtype=np.float64) / self._scale

    @property
    def clean_action(self) -> np.ndarray | None:
        """The expert's last action without its demonstration noise, in the backend's units (None if it has none)."""
        clean = getattr(self._expert, "clean_action", None)
        return None if clean is None else np.asarray(clean, dtype=np.float64) / self._scale

    def __getattr__(self, name):  # noise_std, max_speed, phase... are the expert's
        return getattr(self._expert, name)

    def __setattr__(self, name, value):
        if name in ("_expert", "_scale"):
            object.__setattr__(self, name, value)
        else:
            setattr(self._expert, name, value)


def task_state_names(preset: str) -> tuple[str, ...]:
    """The names of preset ``preset``'s task state (:meth:`SimBackend.task_state`), read from its env class without
    building the env; empty where the env says nothing or the preset is unknown."""
    config = PRESETS.get(preset)
    if config is None or not str(config.get("env_id", "")).startswith("vla_sim/"):
        return ()
    import vla_sim.envs  # noqa: F401  (registers the embedded envs)
    entry = gym.spec(config["env_id"]).entry_point
    if isinstance(entry, str):
        module, _, name = entry.partition(":")
        entry = getattr(importlib.import_module(module), name)
    return tuple(getattr(entry, "TASK_STATE_NAMES", ()))


def make_backend(config: dict[str, Any]) -> SimBackend:
    """Build a :class:`SimBackend` from a config dict (e.g. ``PRESETS["tabletop"]``).

    The dict is deep-copied, so presets are never mutated.
    """
    return SimBackend(config)


def _validate_config(config: dict[str, Any]) -> dict[str, Any]:
    if not isinstance(config, dict):
        raise ValueError(f"backend config must be a dict, got {type(config).__name__}")
    unknown = sorted(set(config) - set(CONFIG_KEYS))
    if unknown:
        raise ValueError(f"unknown backend config keys {unknown}; accepted keys: {list(CONFIG_KEYS)}")
    cfg = copy.deepcopy(CONFIG_DEFAULTS)
    cfg.update(copy.deepcopy(config))
    if not isinstance(cfg["env_id"], str) or not cfg["env_id"]:
        raise ValueError(f"backend config needs 'env_id' (a gymnasium id string); accepted keys: {list(CONFIG_KEYS)}")
    for key in ("env_kwargs", "env_vars", "expert_kwargs"):
        if cfg[key] is None:
            cfg[key] = {}
        if not isinstance(cfg[key], dict):
            raise ValueError(f"config {key!r} must be a mapping, got {cfg[key]!r}")
    if cfg["action_mode"] not in ACTION_MODES:
        raise ValueError(f"config 'action_mode' must be one of {ACTION_MODES}, got {cfg['action_mode']!r}")
    for key in ("units_per_meter", "max_speed", "fps"):
        v = cfg[key]
        if v is not None and (not isinstance(v, (int, float)) or not math.isfinite(v) or v <= 0):
            raise ValueError(f"config {key!r} must be a positive number, got {v!r}")
    if not isinstance(cfg["joint_position_key"], str):
        raise ValueError(f"config 'joint_position_key' must be a string, got {cfg['joint_position_key']!r}")
    for key in ("image_key", "joint_velocity_key", "instruction", "instruction_option", "import_module",
                "install_hint", "privileged_state_method"):
        if cfg[key] is not None and not isinstance(cfg[key], str):
            raise ValueError(f"config {key!r} must be a string or null, got {cfg[key]!r}")
    for key in ("joint_names", "action_names", "cameras"):
        names = cfg[key]
        if names is not None and (
            isinstance(names, str) or not all(isinstance(n, str) and n for n in names)
        ):
            raise ValueError(f"config {key!r} must be a list of non-empty strings, got {names!r}")
    if cfg["expert"] is not None:
        from vla_sim.experts import EXPERTS
        if cfg["expert"] not in EXPERTS:
            raise ValueError(f"config 'expert': {EXPERTS.unknown(cfg['expert'])}")
    return cfg


def _make_env(cfg: dict[str, Any]) -> gym.Env:
    # Headless by default (pygame-based envs such as gym-pusht need this).
    os.environ.setdefault("SDL_VIDEODRIVER", "dummy")
    for name, value in cfg["env_vars"].items():
        os.environ.setdefault(str(name), str(value))
    env_id = cfg["env_id"]
    namespace = env_id.split("/", 1)[0] if "/" in env_id else None
    hint = cfg["install_hint"] or _INSTALL_HINTS.get(namespace or "", "install the package that registers it")
    module = cfg["import_module"] or _NAMESPACE_MODULES.get(namespace or "", namespace)
    if module:
        try:
            importlib.import_module(module)
        except ModuleNotFoundError as exc:
            raise ValueError(
                f"env {env_id!r} needs module {module!r}, which cannot be imported ({exc}); to install: {hint}"
            ) from None
    kwargs = dict(cfg["env_kwargs"])
    if cfg["max_episode_steps"] is not None:
        kwargs["max_episode_steps"] = int(cfg["max_episode_steps"])
    try:
        return gym.make(env_id, **kwargs)
    except gym.error.Error as exc:
        raise ValueError(f"unknown env id {env_id!r} ({exc}); to install: {hint}") from None
    except TypeError as exc:
        raise ValueError(f"env {env_id!r} rejected env_kwargs {cfg['env_kwargs']!r}: {exc}") from None


__all__ = ["Frame", "SimBackend", "make_backend", "PRESETS", "CONFIG_KEYS", "ACTION_MODES"]
