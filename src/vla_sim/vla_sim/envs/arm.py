"""Instruction-conditioned MuJoCo arm: pick and place cubes into bins, or stack them.

Scene (``assets/arm/arm_tabletop.xml``)
---------------------------------------
A table whose top is the plane z = 0 of ``base_link`` (REP 103: x forward,
y left, z up, origin at the arm's base). On it:

* a 6-joint arm (shoulder_pan, shoulder_lift, elbow, forearm_roll,
  wrist_pitch, wrist_roll; limits in the MJCF) with a parallel two-finger
  gripper; each joint is a position servo, the links are gravity-compensated;
* ``num_cubes`` (2..4) cubes of 0.04 m and distinct colours from CUBE_COLOURS,
  with random positions and yaw;
* ``num_bins`` (1..3) open bins (0.12 m square, 0.036 m high walls) of
  distinct colours from BIN_COLOURS.

Cubes and bins not in the episode wait under the table, out of every camera's
view. The instruction decides the task (see :mod:`vla_sim.envs.arm_instructions`):
``place`` ("put the red cube in the teal bin") or ``stack`` ("stack the red cube
on the blue cube"); ``skills`` chooses which ones episodes sample.

Action (Box, float32, shape (7,))
---------------------------------
``[q_1 .. q_6, gripper]``: absolute joint-position targets (rad) for the six
arm joints in ARM_JOINT_NAMES order, bounded by the joint limits, then the
gripper command, normalised: 0 = closed, 1 = fully open (0.08 m between the
pads; each finger's target is ``gripper * 0.04`` m). A target outside the
bounds is clipped to them and reported in ``info["action_clipped"]``; a
non-finite value or a wrong shape raises ValueError and leaves the state as
it was. One control step of ``dt = 1 / fps`` s runs ``ceil(dt / 0.002)``
equal physics steps.

Observation (Dict)
------------------
* ``"pixels"``: Dict of uint8 (H, W, 3) RGB images, ``image_size = (H, W)``:
  ``"scene"`` (fixed camera facing the arm across the table) and ``"wrist"``
  (on the gripper, looking between the fingers).
* ``"agent_pos"``: float64 (7,) the six joint positions (rad) and the gripper
  opening (m, 0..0.08).
* ``"agent_vel"``: float64 (7,) the six joint velocities (rad/s) and the
  opening's rate (m/s).

Reward, termination
-------------------
``reward = -||target cube - goal point||`` (m; goal = resting spot in the bin,
or on top of the base cube), or ``1.0`` on the step the task succeeds.
Success (``info["is_success"]``) = the target cube rests (slower than
0.1 m/s) where the instruction asked, out of the gripper (no finger touches it):
``place``: its centre inside the bin's walls and below their top; ``stack``:
its centre within 0.02 m horizontally of the base cube's and 0.03..0.05 m
above it, the base cube on the table. Success terminates the episode;
``truncated`` becomes True after ``max_episode_steps`` steps.

Domain randomisation
--------------------
``randomization`` (constructor, the reset option of that name for one episode, or :meth:`set_randomization`
from the next reset on) takes :class:`vla_sim.randomization.RandomizationRanges`, a mapping of its fields or a
preset name; all ranges zero (the default) is the scene exactly as without it. Each reset draws, from a
generator of its own seeded by the episode seed (the layout and task of a seed never change with the ranges):
lighting (brightness and white balance on both cameras' images), shades of every cube's and bin's colour within
its name, the table's tint (the texture's mean; MuJoCo would need the texture uploaded to every renderer's GL
context for the grain), distractor discs in neutral colours clear of the cubes and bins (visual only), the scene
camera's pose (a shift along its image axes, a turn about its optical axis and a zoom of its field of view; the
wrist camera is mounted), each cube's friction (``friction_slide``: the distance a cube released at 0.5 m/s
slides, mu = v^2 / (2 g d), at most the nominal 1.0; the cube's friction then acts in all its contacts, the
fingers' included, rather than the larger of the two) and mass, and an action latency whose idle action holds
the reset pose. See docs/randomization.md.

Rendering is headless: MUJOCO_GL defaults to ``egl`` (software Mesa works;
Debian packages libegl1 and libgl1-mesa-dri), shadows and reflections are off.
Call :meth:`ArmPickPlaceEnv.close` to free the GL contexts.
"""

from __future__ import annotations

import atexit
import math
import numbers
import os
import weakref
from typing import Any, NamedTuple

os.environ.setdefault("MUJOCO_GL", "egl")  # before mujoco is imported anywhere in this process

import gymnasium as gym  # noqa: E402
import mujoco  # noqa: E402
import numpy as np  # noqa: E402
from gymnasium import spaces  # noqa: E402

from vla_sim.envs.arm_instructions import (  # noqa: E402
    BIN_COLOURS,
    CUBE_COLOURS,
    INSTRUCTION_SETS,
    SKILLS,
    ArmTask,
    arm_templates,
    format_arm_instruction,
    parse_arm_instruction,
)
from vla_sim.envs.arm_kinematics import (  # noqa: E402
    ARM_JOINT_NAMES,
    FINGER_JOINT_NAMES,
    FINGER_TRAVEL,
    HOME_QPOS,
    load_arm_model,
)
from vla_sim.envs.common import check_reset_options, place, privileged_vector  # noqa: E402
from vla_sim.randomization import (  # noqa: E402
    DISTRACTOR_RGB,
    GRAVITY,
    ActionLatency,
    RandomizationRanges,
    SceneRandomization,
    apply_lighting,
    lighting_lut,
    sample_scene,
    table_texture,
)

CAMERA_NAMES: tuple[str, ...] = ("scene", "wrist")
CUBE_HALF = 0.02          # m, half the cube's side
BIN_INNER_HALF = 0.054    # m, half the inside width of a bin
BIN_WALL_HEIGHT = 0.036   # m, top of a bin's walls above the table
MAX_OPENING = 2 * FINGER_TRAVEL
MAX_CUBES = len(CUBE_COLOURS)
MAX_BINS = len(BIN_COLOURS)

# Envs whose GL contexts are still open: closed at exit, before EGL itself is torn
# down (a context freed after that raises noisy errors from the interpreter's shutdown).
# The hook is registered after the first GL context exists, so after mujoco's own
# EGL clean-up hook, and atexit runs it first.
_OPEN_ENVS: "weakref.WeakSet[ArmPickPlaceEnv]" = weakref.WeakSet()
_exit_hook_registered = False


def _close_open_envs() -> None:
    for env in list(_OPEN_ENVS):
        env.close()

# Where objects may be placed: an annulus sector in front of the arm that the
# gripper reaches pointing straight down (checked by the kinematics tests).
_REACH_MIN, _REACH_MAX, _MAX_BEARING = 0.25, 0.53, math.radians(55.0)
_PARK_Z = -0.7            # m, under the table: objects not in this episode
_HOME_NOISE = 0.08        # rad, uniform perturbation of the home pose at reset
# Seed-sequence tag of the randomisation stream (separate from the layout's np_random).
_RANDOMIZATION_STREAM = 0x0A3A11
MAX_DISTRACTORS = 8       # distractor bodies in the MJCF
DISTRACTOR_RADIUS = 0.025  # m
SLIDE_SPEED = 0.5         # m/s: friction_slide is how far a cube released at this speed slides

# Privileged state vector layout (version 1). All values float64.
ARM_PRIVILEGED_VERSION = 1.0
_HEADER = (
    "version", "skill", "num_cubes", "num_bins", "target_cube", "target",
    "cube_half", "bin_inner_half", "bin_wall_height", "dt",
)
ARM_PRIVILEGED_HEADER_SIZE = len(_HEADER) + 6 + 1 + 6  # + qpos, opening, qvel


class ArmPrivilegedState(NamedTuple):
    """Decoded privileged state (see :meth:`ArmPickPlaceEnv.privileged_state`). Metres, radians, base_link."""

    skill: str                    # "place" or "stack"
    qpos: np.ndarray              # (6,) arm joint positions
    qvel: np.ndarray              # (6,) arm joint velocities
    opening: float                # gripper opening (m)
    cube_pos: np.ndarray          # (nc, 3) cube centres
    cube_quat: np.ndarray         # (nc, 4) cube orientations (w, x, y, z)
    bin_pos: np.ndarray           # (nb, 2) bin centres
    cube_colour_ids: np.ndarray   # (nc,) index into CUBE_COLOURS
    bin_colour_ids: np.ndarray    # (nb,) index into BIN_COLOURS
    target_cube: int              # index into cube_pos: the cube to move
    target: int                   # index into bin_pos (place) or cube_pos (stack)
    cube_half: float
    bin_inner_half: float
    bin_wall_height: float
    dt: float

    @property
    def goal(self) -> np.ndarray:
        """(3,) where the target cube's centre should come to rest."""
        if self.skill == "place":
            x, y = self.bin_pos[self.target]
            return np.array([x, y, 0.004 + self.cube_half])
        return self.cube_pos[self.target] + np.array([0.0, 0.0, 2.0 * self.cube_half])


class ArmPickPlaceEnv(gym.Env):
    """Move the cube named by the instruction into the named bin, or onto the named cube.

    See the module docstring for the scene, action, observation and reward.

    Args:
        num_cubes: cubes on the table, 2..4 (distinct colours).
        num_bins: bins, 1..3 (distinct colours); 0 is allowed with ``skills=("stack",)``.
        skills: skills episodes sample from, a non-empty subset of SKILLS.
        image_size: (H, W) of both camera images in the observation, each >= 16.
        render_size: (H, W) of :meth:`render` (scene camera); default image_size.
        fps: control rate (Hz), up to 500; each control step of dt = 1 / fps runs
            ceil(dt / 0.002) equal physics steps.
        max_episode_steps: steps before ``truncated``; None = no limit.
        instruction_set: default template set: "train", "heldout" or "all".
        render_mode: None or "rgb_array".

    Reset options (``env.reset(seed=..., options={...})``):
        ``"instruction"``: str or None. If given, the task is parsed from it; its
            skill must be among ``skills`` and its colours present in the seed's
            layout (the layout depends only on the seed), else ValueError.
        ``"instruction_set"``: overrides the constructor's set for this episode.
    """

    metadata = {"render_modes": ["rgb_array"], "render_fps": 10}

    def __init__(
        self,
        num_cubes: int = 3,
        num_bins: int = 2,
        skills: tuple[str, ...] | list[str] = SKILLS,
        image_size: tuple[int, int] | list[int] = (96, 96),
        render_size: tuple[int, int] | list[int] | None = None,
        fps: float = 10.0,
        max_episode_steps: int | None = 200,
        instruction_set: str = "train",
        render_mode: str | None = None,
        randomization: RandomizationRanges | dict | str | None = None,
    ) -> None:
        super().__init__()
        skills = tuple(skills)
        if not skills or any(s not in SKILLS for s in skills) or len(set(skills)) != len(skills):
            raise ValueError(f"skills must be distinct names from {SKILLS}, got {skills!r}")
        if not 2 <= int(num_cubes) <= MAX_CUBES:
            raise ValueError(f"num_cubes must be in 2..{MAX_CUBES}, got {num_cubes!r}")
        min_bins = 1 if "place" in skills else 0
        if not min_bins <= int(num_bins) <= MAX_BINS:
            raise ValueError(f"num_bins must be in {min_bins}..{MAX_BINS} for skills {skills}, got {num_bins!r}")
        size = _image_size(image_size, "image_size")
        rsize = size if render_size is None else _image_size(render_size, "render_size")
        if max_episode_steps is not None and int(max_episode_steps) < 1:
            raise ValueError(f"max_episode_steps must be >= 1 or None, got {max_episode_steps!r}")
        arm_templates(skills[0], instruction_set)  # validates the set name
        if render_mode not in (None, "rgb_array"):
            raise ValueError(f"render_mode must be None or 'rgb_array', got {render_mode!r}")

        self.model = load_arm_model()
        self.data = mujoco.MjData(self.model)
        m = self.model
        if not (isinstance(fps, numbers.Real) and not isinstance(fps, bool) and 0 < fps <= 500):
            raise ValueError(f"fps must be a number in (0, 500] Hz, got {fps!r}")
        # Physics steps of at most the MJCF's 0.002 s, a whole number of them per control step.
        substeps = max(1, math.ceil(1.0 / float(fps) / m.opt.timestep - 1e-9))
        m.opt.timestep = 1.0 / float(fps) / substeps
        self.num_cubes, self.num_bins, self.skills = int(num_cubes), int(num_bins), skills
        self.image_size, self.render_size = size, rsize
        self.fps, self.dt, self.substeps = float(fps), 1.0 / float(fps), substeps
        self.max_episode_steps = None if max_episode_steps is None else int(max_episode_steps)
        self.instruction_set = instruction_set
        self.render_mode = render_mode
        self.metadata = {**type(self).metadata, "render_fps": self.fps}

        def ids(kind, names):
            out = np.array([mujoco.mj_name2id(m, kind, n) for n in names])
            if np.any(out < 0):
                raise ValueError(f"the arm MJCF lacks one of {names}")
            return out

        joints = ids(mujoco.mjtObj.mjOBJ_JOINT, ARM_JOINT_NAMES)
        fingers = ids(mujoco.mjtObj.mjOBJ_JOINT, FINGER_JOINT_NAMES)
        self._arm_qadr = m.jnt_qposadr[joints]
        self._arm_dadr = m.jnt_dofadr[joints]
        self._finger_qadr = m.jnt_qposadr[fingers]
        self._finger_dadr = m.jnt_dofadr[fingers]
        self._finger_geoms = set(ids(mujoco.mjtObj.mjOBJ_GEOM, FINGER_JOINT_NAMES).tolist())
        cube_joints = ids(mujoco.mjtObj.mjOBJ_JOINT, [f"cube_{c}" for c in CUBE_COLOURS])
        self._cube_qadr = m.jnt_qposadr[cube_joints]  # per colour: x y z qw qx qy qz
        self._cube_dadr = m.jnt_dofadr[cube_joints]
        self._cube_geoms = ids(mujoco.mjtObj.mjOBJ_GEOM, [f"cube_{c}" for c in CUBE_COLOURS])
        bin_bodies = ids(mujoco.mjtObj.mjOBJ_BODY, [f"bin_{c}" for c in BIN_COLOURS])
        self._bin_mocap = m.body_mocapid[bin_bodies]
        self._bin_geoms = [np.flatnonzero(m.geom_bodyid == b) for b in bin_bodies]  # per colour: floor, walls
        self._cube_bodies = m.geom_bodyid[self._cube_geoms]
        self._distractor_mocap = m.body_mocapid[ids(mujoco.mjtObj.mjOBJ_BODY,
                                                    [f"distractor_{i}" for i in range(MAX_DISTRACTORS)])]
        self._distractor_geoms = ids(mujoco.mjtObj.mjOBJ_GEOM, [f"distractor_{i}" for i in range(MAX_DISTRACTORS)])
        self._table_geom = int(ids(mujoco.mjtObj.mjOBJ_GEOM, ["table"])[0])
        self._scene_cam = int(mujoco.mj_name2id(m, mujoco.mjtObj.mjOBJ_CAMERA, "scene"))
        # What randomisation changes, as the MJCF has it: restored at every reset before an episode's draw.
        self._nominal = {name: getattr(m, name).copy() for name in (
            "geom_rgba", "geom_friction", "geom_priority", "body_mass", "body_inertia", "cam_pos", "cam_quat", "cam_fovy")}
        #: Ranges every episode draws from (set between episodes with :meth:`set_randomization`).
        self.randomization = RandomizationRanges.coerce(randomization)
        self.scene = SceneRandomization()  # this episode's draw
        self._dr_rng: np.random.Generator | None = None
        self._latency: ActionLatency | None = None
        self._lut: np.ndarray | None = None
        self.joint_lower = m.jnt_range[joints, 0].copy()
        self.joint_upper = m.jnt_range[joints, 1].copy()

        self.action_space = spaces.Box(
            np.append(self.joint_lower, 0.0).astype(np.float32),
            np.append(self.joint_upper, 1.0).astype(np.float32),
            (7,), np.float32,
        )
        h, w = size
        margin = 0.05  # servos may overshoot a limit slightly before the limit constraint acts
        self.observation_space = spaces.Dict({
            "pixels": spaces.Dict({c: spaces.Box(0, 255, (h, w, 3), np.uint8) for c in CAMERA_NAMES}),
            "agent_pos": spaces.Box(
                np.append(self.joint_lower - margin, -0.005), np.append(self.joint_upper + margin, MAX_OPENING + 0.005),
                (7,), np.float64,
            ),
            "agent_vel": spaces.Box(-np.inf, np.inf, (7,), np.float64),
        })

        self._renderers: dict[tuple[int, int], mujoco.Renderer] = {}
        self._cube_cids = np.arange(self.num_cubes)  # colour id of each episode cube
        self._bin_cids = np.arange(self.num_bins)
        self._task = ArmTask("place", CUBE_COLOURS[0], BIN_COLOURS[0])
        self._target_cube = 0
        self._target = 0
        self._steps = 0
        self._pixels: dict[str, np.ndarray] | None = None
        self.instruction: str = ""

    # ------------------------------------------------------------------ API
    def reset(
        self, *, seed: int | None = None, options: dict[str, Any] | None = None
    ) -> tuple[dict[str, Any], dict[str, Any]]:
        """Sample a layout and a task from the seed; see the class docstring for options.

        A ValueError (bad option or instruction) leaves the previous episode intact.
        """
        options = check_reset_options(options, extra=("randomization",))
        instruction_set = options.get("instruction_set") or self.instruction_set
        arm_templates(self.skills[0], instruction_set)  # validates before anything changes
        ranges = (self.randomization if options.get("randomization") is None
                  else RandomizationRanges.coerce(options["randomization"]))
        super().reset(seed=seed)
        rng = self.np_random
        if seed is not None:
            self._dr_rng = np.random.default_rng([int(seed), _RANDOMIZATION_STREAM])
        elif self._dr_rng is None:  # never seeded: as random as the layout
            self._dr_rng = np.random.default_rng()

        cube_cids, bin_cids, cubes, yaws, bins = self._sample_layout(rng)
        home = HOME_QPOS + rng.uniform(-_HOME_NOISE, _HOME_NOISE, size=6)
        # Task draws always happen so the RNG stream does not depend on the options.
        skill = self.skills[int(rng.integers(len(self.skills)))]
        target_cube = int(rng.integers(self.num_cubes))
        other = int(rng.integers(self.num_cubes - 1))
        target_bin = int(rng.integers(max(1, self.num_bins)))
        template_pick = float(rng.random())

        cube_names = [CUBE_COLOURS[c] for c in cube_cids]
        bin_names = [BIN_COLOURS[c] for c in bin_cids]
        text = options.get("instruction")
        if text is not None:
            task = parse_arm_instruction(text)
            if task.skill not in self.skills:
                raise ValueError(f"instruction {text!r} asks to {task.skill}; this env does {self.skills}")
            present = cube_names if task.skill == "stack" else bin_names
            if task.cube not in cube_names or task.target not in present:
                raise ValueError(
                    f"instruction {text!r} asks for the {task.cube} cube and the {task.target} "
                    f"{'cube' if task.skill == 'stack' else 'bin'}, but this layout has cubes "
                    f"{cube_names} and bins {bin_names}"
                )
            target_cube = cube_names.index(task.cube)
            target = present.index(task.target)
        else:
            target = (target_cube + 1 + other) % self.num_cubes if skill == "stack" else target_bin
            task = ArmTask(skill, cube_names[target_cube],
                           (cube_names if skill == "stack" else bin_names)[target])
            phrasings = arm_templates(skill, instruction_set)
            text = format_arm_instruction(phrasings[int(template_pick * len(phrasings))], task)

        m, d = self.model, self.data
        mujoco.mj_resetData(m, d)
        d.qpos[self._arm_qadr] = home
        d.ctrl[:6] = home
        d.qpos[self._finger_qadr] = FINGER_TRAVEL
        d.ctrl[6:8] = FINGER_TRAVEL
        for k in range(MAX_CUBES):  # park every cube under the table, then place ours
            a = self._cube_qadr[k]
            d.qpos[a:a + 7] = [0.1 + 0.1 * k, -0.3, _PARK_Z, 1, 0, 0, 0]
        for i, cid in enumerate(cube_cids):
            a = self._cube_qadr[cid]
            d.qpos[a:a + 3] = [cubes[i, 0], cubes[i, 1], CUBE_HALF]
            d.qpos[a + 3:a + 7] = [math.cos(yaws[i] / 2), 0.0, 0.0, math.sin(yaws[i] / 2)]
        for k in range(MAX_BINS):
            d.mocap_pos[self._bin_mocap[k]] = [0.1 + 0.15 * k, 0.3, _PARK_Z]
        for i, cid in enumerate(bin_cids):
            d.mocap_pos[self._bin_mocap[cid]] = [bins[i, 0], bins[i, 1], 0.0]
        self._apply_randomization(ranges, cube_cids, bin_cids, cubes, bins, home)
        mujoco.mj_forward(m, d)

        self._cube_cids, self._bin_cids = cube_cids, bin_cids
        self._task, self._target_cube, self._target = task, target_cube, target
        self.instruction = text
        self._steps = 0
        return self._observe(), self._info(False, False)

    def step(self, action: np.ndarray):
        """Apply one action for ``dt`` seconds.

        Returns:
            (observation, reward, terminated, truncated, info) as gymnasium.

        Raises:
            ValueError: wrong shape or non-finite values, naming them (state unchanged).
        """
        a = np.asarray(action, dtype=np.float64)
        if a.shape != (7,):
            raise ValueError(
                f"action must have shape (7,): 6 joint targets (rad) and a gripper command in [0, 1]; "
                f"got shape {a.shape}: {action!r}"
            )
        if not np.all(np.isfinite(a)):
            bad = [i for i in range(7) if not math.isfinite(a[i])]
            raise ValueError(f"action must be finite; entries {bad} are not: {action!r}")
        low, high = self.action_space.low.astype(np.float64), self.action_space.high.astype(np.float64)
        clipped = np.clip(a, low, high)
        if self._latency is not None:  # randomised latency: the action commanded some steps ago acts now
            clipped = self._latency(clipped)
        d = self.data
        d.ctrl[:6] = clipped[:6]
        d.ctrl[6:8] = clipped[6] * FINGER_TRAVEL
        mujoco.mj_step(self.model, d, nstep=self.substeps)
        self._steps += 1

        success = self._is_success()
        reward = 1.0 if success else -self._goal_distance()
        truncated = (
            not success and self.max_episode_steps is not None and self._steps >= self.max_episode_steps
        )
        return self._observe(), reward, success, truncated, self._info(success, bool(np.any(clipped != a)))

    def render(self) -> np.ndarray:
        """(H, W, 3) uint8 RGB image of the scene camera at ``render_size``."""
        if self.render_size == self.image_size and self._pixels is not None:
            return self._pixels["scene"].copy()
        return self.render_camera("scene", *self.render_size)

    def render_camera(self, camera: str, height: int, width: int) -> np.ndarray:
        """(height, width, 3) uint8 RGB image of ``camera`` ("scene" or "wrist") now, any size up to 1280x960."""
        if camera not in CAMERA_NAMES:
            raise ValueError(f"unknown camera {camera!r}; cameras: {CAMERA_NAMES}")
        key = (int(height), int(width))
        if not (16 <= key[0] <= 960 and 16 <= key[1] <= 1280):
            raise ValueError(f"image size must be within 16x16..960x1280 (H, W), got {key}")
        renderer = self._renderers.get(key)
        if renderer is None:
            renderer = mujoco.Renderer(self.model, *key)
            renderer.scene.flags[mujoco.mjtRndFlag.mjRND_SHADOW] = 0
            renderer.scene.flags[mujoco.mjtRndFlag.mjRND_REFLECTION] = 0
            renderer.scene.flags[mujoco.mjtRndFlag.mjRND_SKYBOX] = 0
            self._renderers[key] = renderer
            _OPEN_ENVS.add(self)
            global _exit_hook_registered
            if not _exit_hook_registered:
                atexit.register(_close_open_envs)
                _exit_hook_registered = True
        renderer.update_scene(self.data, camera=camera)
        image = renderer.render()
        return apply_lighting(image, self._lut) if self._lut is not None else image

    def close(self) -> None:
        """Free the renderers' GL contexts."""
        for renderer in self._renderers.values():
            renderer.close()
        self._renderers.clear()
        _OPEN_ENVS.discard(self)
        super().close()

    def privileged_state(self) -> np.ndarray:
        """Flat float64 vector with everything a scripted expert needs.

        Layout (version 1), nc = num_cubes, nb = num_bins:
            [0:10]  version, skill id (index into SKILLS), nc, nb, target cube
                    index, target index (bin for place, cube for stack), cube
                    half size (m), bin inner half size (m), bin wall height (m), dt (s)
            [10:16] arm joint positions (rad); [16] gripper opening (m);
            [17:23] arm joint velocities (rad/s)
            next 7*nc  cube poses x, y, z (m), qw, qx, qy, qz
            next 2*nb  bin centres x, y (m)
            next nc    cube colour ids (index into CUBE_COLOURS)
            next nb    bin colour ids (index into BIN_COLOURS)
        Decode with :meth:`decode_privileged`.
        """
        d = self.data
        header = [
            ARM_PRIVILEGED_VERSION, SKILLS.index(self._task.skill), self.num_cubes, self.num_bins,
            self._target_cube, self._target, CUBE_HALF, BIN_INNER_HALF, BIN_WALL_HEIGHT, self.dt,
        ]
        cubes = [d.qpos[self._cube_qadr[c]:self._cube_qadr[c] + 7] for c in self._cube_cids]
        bins = [d.mocap_pos[self._bin_mocap[c], :2] for c in self._bin_cids]
        return np.concatenate([
            np.asarray(header, np.float64), d.qpos[self._arm_qadr], [self._opening()],
            d.qvel[self._arm_dadr], *cubes, *bins,
            np.asarray(self._cube_cids, np.float64), np.asarray(self._bin_cids, np.float64),
        ])

    #: What :meth:`task_state` holds: the instruction's cube (centre in m, base_link; its yaw as sin and cos of 4x
    #: the angle, a cube looking the same every quarter turn) and where it should come to rest.
    TASK_STATE_NAMES = ("target_cube.x", "target_cube.y", "target_cube.z", "target_cube.sin4yaw",
                        "target_cube.cos4yaw", "goal.x", "goal.y", "goal.z")

    def task_state(self) -> np.ndarray:
        """The instruction's cube and goal (``TASK_STATE_NAMES``): what the cameras must find. Recorded as
        ``observation.environment_state`` (LeRobot's key for privileged state) for auxiliary training targets;
        a policy never takes it as input."""
        a = self._cube_qadr[self._cube_cids[self._target_cube]]
        pos, (w, x, y, z) = self.data.qpos[a:a + 3], self.data.qpos[a + 3:a + 7]
        yaw = math.atan2(2.0 * (w * z + x * y), 1.0 - 2.0 * (y * y + z * z))
        return np.concatenate([pos, [math.sin(4 * yaw), math.cos(4 * yaw)], self._goal()]).astype(np.float64)

    @staticmethod
    def decode_privileged(vector: np.ndarray) -> ArmPrivilegedState:
        """Inverse of :meth:`privileged_state`.

        Raises:
            ValueError: wrong version or a length that does not match the header.
        """
        v = privileged_vector(vector, ARM_PRIVILEGED_VERSION, ARM_PRIVILEGED_HEADER_SIZE, "arm")
        nc, nb = int(v[2]), int(v[3])
        expected = ARM_PRIVILEGED_HEADER_SIZE + 8 * nc + 3 * nb
        if v.size != expected:
            raise ValueError(f"arm privileged state has {v.size} values, expected {expected} for {nc} cubes and {nb} bins")
        i = ARM_PRIVILEGED_HEADER_SIZE
        cubes = v[i:i + 7 * nc].reshape(nc, 7)
        i += 7 * nc
        bins = v[i:i + 2 * nb].reshape(nb, 2)
        i += 2 * nb
        return ArmPrivilegedState(
            skill=SKILLS[int(v[1])], qpos=v[10:16].copy(), opening=float(v[16]), qvel=v[17:23].copy(),
            cube_pos=cubes[:, :3].copy(), cube_quat=cubes[:, 3:].copy(), bin_pos=bins.copy(),
            cube_colour_ids=v[i:i + nc].astype(int), bin_colour_ids=v[i + nc:i + nc + nb].astype(int),
            target_cube=int(v[4]), target=int(v[5]), cube_half=float(v[6]),
            bin_inner_half=float(v[7]), bin_wall_height=float(v[8]), dt=float(v[9]),
        )

    @property
    def task(self) -> ArmTask:
        """The episode's task: skill, cube colour, target colour."""
        return self._task

    @property
    def cube_colours(self) -> tuple[str, ...]:
        """Colour names of the episode's cubes, in cube-index order."""
        return tuple(CUBE_COLOURS[c] for c in self._cube_cids)

    @property
    def bin_colours(self) -> tuple[str, ...]:
        """Colour names of the episode's bins, in bin-index order."""
        return tuple(BIN_COLOURS[c] for c in self._bin_cids)

    def cube_position(self, colour: str) -> np.ndarray:
        """(3,) centre of the cube of ``colour`` (m, base_link)."""
        a = self._cube_qadr[CUBE_COLOURS.index(colour)]
        return self.data.qpos[a:a + 3].copy()

    def set_randomization(self, randomization: RandomizationRanges | dict | str | None) -> None:
        """Ranges for the episodes from the next reset on (as the constructor's ``randomization``)."""
        self.randomization = RandomizationRanges.coerce(randomization)

    # ------------------------------------------------------------ internals
    def _apply_randomization(self, ranges: RandomizationRanges, cube_cids, bin_cids, cubes: np.ndarray,
                             bins: np.ndarray, home: np.ndarray) -> None:
        """Restore the MJCF's nominal scene, then draw this episode's randomisation and apply it to the model
        (colours, camera, friction, mass), the distractors' places, the images' lighting and the latency."""
        m, d = self.model, self.data
        for name, value in self._nominal.items():
            getattr(m, name)[:] = value
        cube_names = [CUBE_COLOURS[c] for c in cube_cids]
        bin_names = [BIN_COLOURS[c] for c in bin_cids]
        scene = sample_scene(ranges, self._dr_rng, cube_names + bin_names, self.num_cubes)
        self.scene = scene
        self._lut = lighting_lut(scene.gains) if scene.lighting else None
        self._latency = ActionLatency(scene.latency, np.append(home, 1.0)) if scene.latency else None
        if not ranges.enabled:
            return
        for geoms, name in [([self._cube_geoms[c]], n) for c, n in zip(cube_cids, cube_names)] + \
                [(self._bin_geoms[c], n) for c, n in zip(bin_cids, bin_names)]:
            for g in geoms if name in scene.shades else ():
                rgb = np.rint(self._nominal["geom_rgba"][g, :3] * 255.0)
                m.geom_rgba[g, :3] = np.asarray(scene.shade(name, rgb), np.float64) / 255.0
        if scene.texture_strength:  # the texture's tint (its mean over the table)
            tint = table_texture((32, 32), scene.texture_strength, scene.texture_seed).mean(axis=(0, 1))
            m.geom_rgba[self._table_geom, :3] = np.clip(
                self._nominal["geom_rgba"][self._table_geom, :3] + tint / 255.0, 0.0, 1.0)
        if scene.camera_jitter:
            shift_x, shift_y, degrees, zoom = scene.camera
            c = self._scene_cam
            axes = np.zeros(9)
            mujoco.mju_quat2Mat(axes, self._nominal["cam_quat"][c])
            axes = axes.reshape(3, 3)  # columns: the camera's x (image right), y (image up), z (backwards)
            m.cam_pos[c] = self._nominal["cam_pos"][c] + axes[:, 1] * shift_x - axes[:, 0] * shift_y
            turn = np.zeros(4)
            mujoco.mju_axisAngle2Quat(turn, np.array([0.0, 0.0, 1.0]), math.radians(degrees))
            mujoco.mju_mulQuat(m.cam_quat[c], self._nominal["cam_quat"][c], turn)
            fovy = math.radians(float(self._nominal["cam_fovy"][c]))
            m.cam_fovy[c] = math.degrees(2.0 * math.atan(math.tan(fovy / 2.0) / zoom))
        for i, cid in enumerate(cube_cids):
            g, b = self._cube_geoms[cid], self._cube_bodies[cid]
            if scene.slide[i] > 0:  # priority: the cube's friction, not the larger one, acts in its contacts
                mu = SLIDE_SPEED ** 2 / (2.0 * GRAVITY * scene.slide[i])
                m.geom_friction[g, 0] = min(float(self._nominal["geom_friction"][g, 0]), mu)
                m.geom_priority[g] = 1
            m.body_mass[b] = self._nominal["body_mass"][b] * scene.mass[i]
            m.body_inertia[b] = self._nominal["body_inertia"][b] * scene.mass[i]
        self._place_distractors(scene.distractor_count, cubes, bins)

    def _place_distractors(self, count: int, cubes: np.ndarray, bins: np.ndarray) -> None:
        """Up to ``count`` distractor discs on the table clear of every cube and bin, coloured from the
        neutral DISTRACTOR_RGB; the rest stay parked under the table."""
        rng = self._dr_rng
        colours = list(DISTRACTOR_RGB.values())
        placed: list[np.ndarray] = []
        for i in range(min(count, MAX_DISTRACTORS)):
            for _ in range(50):
                r = math.sqrt(rng.uniform(_REACH_MIN ** 2, _REACH_MAX ** 2))
                bearing = rng.uniform(-_MAX_BEARING, _MAX_BEARING)
                p = np.array([r * math.cos(bearing), r * math.sin(bearing)])
                if all(np.hypot(*(p - c)) >= 0.06 for c in cubes) and \
                        all(np.max(np.abs(p - b)) >= 0.09 for b in bins) and \
                        all(np.hypot(*(p - o)) >= 2.2 * DISTRACTOR_RADIUS for o in placed):
                    break
            else:
                continue  # no room left for this one: it stays parked
            placed.append(p)
            self.data.mocap_pos[self._distractor_mocap[i]] = [p[0], p[1], 0.0]
            self.model.geom_rgba[self._distractor_geoms[i], :3] = \
                np.asarray(colours[int(rng.integers(len(colours)))], np.float64) / 255.0

    def _sample_layout(self, rng: np.random.Generator):
        """Non-overlapping bins; cubes clear of bins and of each other by a finger's width."""
        def polar_sample():
            r = math.sqrt(rng.uniform(_REACH_MIN**2, _REACH_MAX**2))
            bearing = rng.uniform(-_MAX_BEARING, _MAX_BEARING)
            return np.array([r * math.cos(bearing), r * math.sin(bearing)])

        for _ in range(100):  # restart the whole layout on the (rare) dead end
            cube_cids = rng.permutation(MAX_CUBES)[: self.num_cubes]
            bin_cids = rng.permutation(MAX_BINS)[: self.num_bins]
            bins = place(polar_sample, self.num_bins,
                         lambda c, bs: all(np.max(np.abs(c - b)) >= 0.16 for b in bs), tries=300)
            if bins is None:
                continue
            cubes = place(
                polar_sample, self.num_cubes,
                lambda c, cs: all(np.max(np.abs(c - b)) >= 0.12 for b in bins)
                and all(np.hypot(*(c - o)) >= 0.10 for o in cs),
                tries=300,
            )
            if cubes is None:
                continue
            yaws = rng.uniform(-math.pi / 4, math.pi / 4, size=self.num_cubes)
            return cube_cids, bin_cids, cubes, yaws, bins.reshape(self.num_bins, 2)
        raise RuntimeError("could not sample an arm layout; too many objects for the reachable area")

    def _opening(self) -> float:
        return float(np.sum(self.data.qpos[self._finger_qadr]))

    def _cube_state(self, index: int) -> tuple[np.ndarray, np.ndarray]:
        cid = self._cube_cids[index]
        a, v = self._cube_qadr[cid], self._cube_dadr[cid]
        return self.data.qpos[a:a + 3], self.data.qvel[v:v + 3]

    def _goal(self) -> np.ndarray:
        if self._task.skill == "place":
            x, y = self.data.mocap_pos[self._bin_mocap[self._bin_cids[self._target]], :2]
            return np.array([x, y, 0.004 + CUBE_HALF])
        return self._cube_state(self._target)[0] + np.array([0.0, 0.0, 2 * CUBE_HALF])

    def _goal_distance(self) -> float:
        return float(np.linalg.norm(self._cube_state(self._target_cube)[0] - self._goal()))

    def _touches_finger(self, geom: int) -> bool:
        c = self.data.contact
        n = self.data.ncon
        for g1, g2 in zip(c.geom1[:n], c.geom2[:n]):
            if (g1 == geom and g2 in self._finger_geoms) or (g2 == geom and g1 in self._finger_geoms):
                return True
        return False

    def _is_success(self) -> bool:
        pos, vel = self._cube_state(self._target_cube)
        if np.linalg.norm(vel) > 0.1 or self._touches_finger(self._cube_geoms[self._cube_cids[self._target_cube]]):
            return False
        if self._task.skill == "place":
            x, y = self.data.mocap_pos[self._bin_mocap[self._bin_cids[self._target]], :2]
            inside = max(abs(pos[0] - x), abs(pos[1] - y)) <= BIN_INNER_HALF
            return bool(inside and pos[2] < BIN_WALL_HEIGHT)
        base = self._cube_state(self._target)[0]
        dz = pos[2] - base[2]
        return bool(
            math.hypot(pos[0] - base[0], pos[1] - base[1]) <= CUBE_HALF
            and 1.5 * CUBE_HALF <= dz <= 2.5 * CUBE_HALF and base[2] < 1.5 * CUBE_HALF
        )

    def _info(self, success: bool, clipped: bool) -> dict[str, Any]:
        return {
            "instruction": self.instruction,
            "skill": self._task.skill,
            "target_cube": self._task.cube,
            "target": self._task.target,
            "is_success": bool(success),
            "distance": self._goal_distance(),
            "action_clipped": clipped,
            "cube_colours": self.cube_colours,
            "bin_colours": self.bin_colours,
        }

    def _observe(self) -> dict[str, Any]:
        h, w = self.image_size
        self._pixels = {c: self.render_camera(c, h, w) for c in CAMERA_NAMES}
        d = self.data
        fv = d.qvel[self._finger_dadr]
        return {
            "pixels": {c: img.copy() for c, img in self._pixels.items()},
            "agent_pos": np.append(d.qpos[self._arm_qadr], self._opening()),
            "agent_vel": np.append(d.qvel[self._arm_dadr], float(np.sum(fv))),
        }


def _image_size(value, name: str) -> tuple[int, int]:
    size = tuple(int(v) for v in value)
    if len(size) != 2 or min(size) < 16 or size[0] > 960 or size[1] > 1280:
        raise ValueError(f"{name} must be (H, W) with 16 <= H <= 960 and 16 <= W <= 1280, got {value!r}")
    return size


__all__ = [
    "ArmPickPlaceEnv",
    "ArmPrivilegedState",
    "ARM_PRIVILEGED_VERSION",
    "ARM_PRIVILEGED_HEADER_SIZE",
    "BIN_INNER_HALF",
    "BIN_WALL_HEIGHT",
    "CAMERA_NAMES",
    "CUBE_HALF",
    "INSTRUCTION_SETS",
]
