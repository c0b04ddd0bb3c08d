"""Instruction-conditioned top-down tabletop pushing environment (pure numpy + gymnasium).

Scene
-----
A 0.5 m x 0.5 m table seen from above. Frame ``base_link`` sits at the table
centre and follows REP 103: x forward (= image up), y left (= image left), z up,
so the table spans x, y in [-0.25, 0.25] m. On it:

* a planar gantry end-effector, a disc "pusher" of radius ``pusher_radius``
  (0.02 m) whose two prismatic joints are ``gantry_x`` and ``gantry_y``;
* ``num_blocks`` (1..4) blocks of distinct colours from BLOCK_COLOURS, drawn as
  axis-aligned squares of side ``block_size`` (0.05 m). For contacts every block
  is a disc of radius ``block_size / 2`` (the square's inscribed circle); the
  pusher is a disc as well. This choice is used consistently everywhere
  (physics, layout sampling, the privileged state and the expert);
* ``num_zones`` (1..3) square goal zones (side ``zone_size``, 0.11 m) of
  distinct colours from ZONE_COLOURS, drawn as light tinted squares with an
  outline of the full colour.

The instruction decides the task: "push the red block into the purple zone" in
one of many phrasings (see :mod:`vla_sim.envs.instructions`).

Dynamics (deterministic, no physics engine)
-------------------------------------------
Action = commanded pusher velocity ``(vx, vy)`` in m/s in ``base_link``, clipped
to ``[-max_speed, max_speed]`` per axis. The pusher tracks the command directly
(a stiff gantry) and is clamped to the table. Each control step of
``dt = 1 / fps`` s is split into ``substeps`` sub-steps; in each, after moving
the pusher, overlaps are removed by positional contact resolution (a few
Gauss-Seidel sweeps): the pusher displaces blocks, blocks displace blocks
(a block touched by the pusher is treated as immovable by blocks it pushes,
so chains of blocks move as a rigid train), blocks are clamped to the table,
and finally the pusher yields to blocks that could not move (jammed at the
edge). There is no momentum: a block stops when it is no longer pushed.

Observation (Dict)
------------------
* ``"pixels"``: uint8 (H, W, 3) RGB top-down image, ``image_size = (H, W)``.
  The table is scaled uniformly to fit ``min(H, W)`` and centred; a
  non-square image shows dark floor on the sides.
* ``"agent_pos"``: float64 (2,) pusher position (m) in ``base_link``.
* ``"agent_vel"``: float64 (2,) pusher velocity (m/s): the pusher's actual
  displacement over the last step divided by dt.

Reward, termination
-------------------
``reward = -||target block centre - target zone centre||`` (m), or ``1.0`` on
the step where the task succeeds. Success (``info["is_success"]``) = the target
block's centre lies inside the target zone's square; it terminates the episode.
``truncated`` becomes True after ``max_episode_steps`` steps (the env enforces
this itself; ``None`` disables it).

Domain randomisation
--------------------
``randomization`` (constructor, or the reset option of that name for one
episode) takes :class:`vla_sim.randomization.RandomizationRanges`, a mapping of
its fields or a preset name; all ranges are zero by default and the env is then
exactly the one described above. Each reset draws lighting, colour shades,
table texture, flat distractor rings, camera jitter, per-block friction (slide)
and mass, and an action latency from a generator of its own seeded by the
episode seed, so a seed's layout and task do not depend on the ranges. Blocks
that may slide keep their velocity between steps and stop under friction; a
block heavier than nominal slows the pusher that drives it (by its mass ratio).
The privileged state and ``agent_pos`` stay in true coordinates (the camera
jitter moves only the image). See docs/randomization.md.
"""

from __future__ import annotations

import math
from typing import Any, NamedTuple

import gymnasium as gym
import numpy as np
from gymnasium import spaces

from vla_sim.envs.common import check_reset_options, place, privileged_vector
from vla_sim.randomization import (
    DISTRACTOR_RGB,
    DISTRACTOR_SHAPE,
    ActionLatency,
    Distractor,
    RandomizationRanges,
    SceneRandomization,
    apply_lighting,
    apply_warp,
    camera_warp,
    lighting_lut,
    sample_scene,
    slide_deceleration,
    table_texture,
)
from vla_sim.envs.instructions import (
    BLOCK_COLOURS,
    INSTRUCTION_SETS,
    ZONE_COLOURS,
    format_instruction,
    parse_instruction,
    templates,
)

TABLE_HALF_SIZE = 0.25  # m, the table spans [-0.25, 0.25]^2 in base_link
MAX_BLOCKS = len(BLOCK_COLOURS)
MAX_ZONES = len(ZONE_COLOURS)
JOINT_NAMES = ("gantry_x", "gantry_y")

# RGB colours. Blocks are saturated; zones are light tints with a saturated
# outline, and their hues (purple, orange, teal) are far from the block hues.
BLOCK_RGB = {
    "red": (220, 40, 40),
    "green": (40, 170, 60),
    "blue": (40, 80, 225),
    "yellow": (235, 200, 30),
}
ZONE_RGB = {"purple": (140, 70, 200), "orange": (245, 135, 20), "teal": (0, 150, 150)}
ZONE_TINT_RGB = {"purple": (218, 196, 238), "orange": (252, 214, 170), "teal": (170, 226, 222)}
TABLE_RGB = (236, 232, 222)
FLOOR_RGB = (70, 70, 74)
PUSHER_RGB = (45, 45, 50)
# Seed-sequence tag of the randomisation stream (separate from the layout's np_random).
_RANDOMIZATION_STREAM = 0x0D0A11

# Privileged state vector layout (version 1). All values float64.
PRIVILEGED_VERSION = 1.0
_HEADER = (
    "version",        # 0: PRIVILEGED_VERSION
    "num_blocks",     # 1: nb
    "num_zones",      # 2: nz
    "target_block",   # 3: index into the block list
    "target_zone",    # 4: index into the zone list
    "block_radius",   # 5: m, block collision radius (= block_size / 2)
    "zone_half_size", # 6: m
    "pusher_radius",  # 7: m
    "table_half_size",# 8: m
    "max_speed",      # 9: m/s, per-axis action limit
    "dt",             # 10: s, control period
    "pusher_x", "pusher_y",    # 11, 12: m
    "pusher_vx", "pusher_vy",  # 13, 14: m/s
)
PRIVILEGED_HEADER_SIZE = len(_HEADER)


class PrivilegedState(NamedTuple):
    """Decoded privileged state (see :meth:`TabletopPushEnv.privileged_state`).

    Positions are metres in ``base_link``; velocities m/s.
    """

    pusher_pos: np.ndarray        # (2,)
    pusher_vel: np.ndarray        # (2,)
    block_pos: np.ndarray         # (nb, 2) block centres
    zone_pos: np.ndarray          # (nz, 2) zone centres
    block_colour_ids: np.ndarray  # (nb,) int, index into BLOCK_COLOURS
    zone_colour_ids: np.ndarray   # (nz,) int, index into ZONE_COLOURS
    target_block: int             # index into block_pos
    target_zone: int              # index into zone_pos
    block_radius: float
    zone_half_size: float
    pusher_radius: float
    table_half_size: float
    max_speed: float
    dt: float

    @property
    def target_block_pos(self) -> np.ndarray:
        """(2,) centre of the block to push, m."""
        return self.block_pos[self.target_block]

    @property
    def target_zone_pos(self) -> np.ndarray:
        """(2,) centre of the goal zone, m."""
        return self.zone_pos[self.target_zone]


class TabletopPushEnv(gym.Env):
    """Push the block named by the instruction into the zone named by the instruction.

    See the module docstring for frames, units, dynamics, observation and reward.

    Args:
        num_blocks: blocks on the table, 1..4 (distinct colours).
        num_zones: goal zones, 1..3 (distinct colours).
        image_size: (H, W) of the rendered image in pixels, each >= 16.
        fps: control rate (Hz); dt = 1 / fps.
        max_speed: per-axis limit of the commanded pusher velocity (m/s).
        max_episode_steps: steps before ``truncated``; None = no limit.
        instruction_set: default template set for sampled instructions:
            "train", "heldout" or "all".
        render_mode: None or "rgb_array".
        substeps: physics sub-steps per control step.
        block_size, zone_size, pusher_radius: geometry (m).
        randomization: domain randomisation ranges (RandomizationRanges, a mapping of its fields,
            a preset name of ``vla_sim.randomization.PRESETS``, or None: off).

    Reset options (``env.reset(seed=..., options={...})``):
        ``"instruction"``: str or None. If given, the task is parsed from it; the
            colours must exist in the seed's layout (the layout depends only on
            the seed), else ValueError naming the text and the colours present.
        ``"instruction_set"``: overrides the constructor's set for this episode.
        ``"randomization"``: ranges for this episode (as the constructor's argument); later
            episodes return to ``self.randomization``.
    """

    metadata = {"render_modes": ["rgb_array"], "render_fps": 10}

    def __init__(
        self,
        num_blocks: int = 3,
        num_zones: int = 2,
        image_size: tuple[int, int] | list[int] = (96, 96),
        fps: float = 10.0,
        max_speed: float = 0.25,
        max_episode_steps: int | None = 200,
        instruction_set: str = "train",
        render_mode: str | None = None,
        substeps: int = 4,
        block_size: float = 0.05,
        zone_size: float = 0.11,
        pusher_radius: float = 0.02,
        randomization: RandomizationRanges | dict | str | None = None,
    ) -> None:
        super().__init__()
        if not 1 <= int(num_blocks) <= MAX_BLOCKS:
            raise ValueError(f"num_blocks must be in 1..{MAX_BLOCKS}, got {num_blocks!r}")
        if not 1 <= int(num_zones) <= MAX_ZONES:
            raise ValueError(f"num_zones must be in 1..{MAX_ZONES}, got {num_zones!r}")
        size = tuple(int(v) for v in image_size)
        if len(size) != 2 or min(size) < 16:
            raise ValueError(f"image_size must be (H, W) with H, W >= 16, got {image_size!r}")
        if not fps > 0 or not max_speed > 0 or int(substeps) < 1:
            raise ValueError(
                f"need fps > 0, max_speed > 0, substeps >= 1; got {fps!r}, {max_speed!r}, {substeps!r}"
            )
        if max_episode_steps is not None and int(max_episode_steps) < 1:
            raise ValueError(f"max_episode_steps must be >= 1 or None, got {max_episode_steps!r}")
        templates(instruction_set)  # validates the name
        if render_mode not in (None, "rgb_array"):
            raise ValueError(f"render_mode must be None or 'rgb_array', got {render_mode!r}")

        self.num_blocks = int(num_blocks)
        self.num_zones = int(num_zones)
        self.image_size = size
        self.fps = float(fps)
        self.dt = 1.0 / self.fps
        self.max_speed = float(max_speed)
        self.max_episode_steps = None if max_episode_steps is None else int(max_episode_steps)
        self.instruction_set = instruction_set
        self.render_mode = render_mode
        self.substeps = int(substeps)
        self.block_radius = float(block_size) / 2.0
        self.zone_half_size = float(zone_size) / 2.0
        self.pusher_radius = float(pusher_radius)
        self.metadata = {**type(self).metadata, "render_fps": self.fps}
        #: Ranges every episode draws from (set between episodes with :meth:`set_randomization`).
        self.randomization = RandomizationRanges.coerce(randomization)
        self._dr_rng: np.random.Generator | None = None
        self.scene = SceneRandomization()  # what this episode drew
        self.distractors: tuple[Distractor, ...] = ()
        self._latency: ActionLatency | None = None
        self._decel: list[float] | None = None  # per-block friction deceleration (m/s^2); None = nominal
        self._mass: list[float] | None = None   # per-block mass ratio; None = nominal
        self._block_vel = np.zeros((self.num_blocks, 2))
        self._warp = None
        self._lut = None

        self.action_space = spaces.Box(-self.max_speed, self.max_speed, (2,), np.float32)
        h, w = self.image_size
        lim = TABLE_HALF_SIZE - self.pusher_radius
        self.observation_space = spaces.Dict(
            {
                "pixels": spaces.Box(0, 255, (h, w, 3), np.uint8),
                "agent_pos": spaces.Box(-lim, lim, (2,), np.float64),
                "agent_vel": spaces.Box(-self.max_speed, self.max_speed, (2,), np.float64),
            }
        )

        # Rendering geometry: uniform scale, table centred in the image.
        # Continuous pixel coordinates: row v = cv - x * s, column u = cu - y * s.
        self._scale = min(h, w) / (2.0 * TABLE_HALF_SIZE)  # px / m
        self._cv, self._cu = h / 2.0, w / 2.0
        self._row_centres = np.arange(h, dtype=np.float64) + 0.5
        self._col_centres = np.arange(w, dtype=np.float64) + 0.5
        self._base_image = np.empty((h, w, 3), np.uint8)
        self._base_image[:] = FLOOR_RGB
        half_px = TABLE_HALF_SIZE * self._scale
        self._fill_rect(self._base_image, self._cv - half_px, self._cv + half_px,
                        self._cu - half_px, self._cu + half_px, TABLE_RGB)
        self._nominal_base = self._base_image
        self._background = self._base_image.copy()
        self._outline_px = max(1, int(round(0.004 * self._scale)))

        # State (valid after reset).
        self._pusher_pos = np.zeros(2)
        self._pusher_vel = np.zeros(2)
        self._block_pos = np.zeros((self.num_blocks, 2))
        self._zone_pos = np.zeros((self.num_zones, 2))
        self._block_cids = np.arange(self.num_blocks)
        self._zone_cids = np.arange(self.num_zones)
        self._target_block = 0
        self._target_zone = 0
        self._steps = 0
        self._frame: np.ndarray | None = None
        self.instruction: str = ""

    # ------------------------------------------------------------------ API
    def reset(
        self, *, seed: int | None = None, options: dict[str, Any] | None = None
    ) -> tuple[dict[str, np.ndarray], dict[str, Any]]:
        """Sample a layout and a task from the seed; see the class docstring for options.

        The state is only replaced when everything succeeded, so a ValueError
        (bad instruction) leaves the previous episode intact.
        """
        options = check_reset_options(options, extra=("randomization",))
        instruction_set = options.get("instruction_set") or self.instruction_set
        phrasings = templates(instruction_set)
        ranges = (self.randomization if options.get("randomization") is None
                  else RandomizationRanges.coerce(options["randomization"]))
        super().reset(seed=seed)
        rng = self.np_random
        if seed is not None:
            self._dr_rng = np.random.default_rng([int(seed), _RANDOMIZATION_STREAM])
        elif self._dr_rng is None:  # never seeded: as random as the layout
            self._dr_rng = np.random.default_rng()

        block_cids, zone_cids, blocks, zones, pusher = self._sample_layout(rng)
        # Task draws always happen so the RNG stream does not depend on the options.
        target_block = int(rng.integers(self.num_blocks))
        target_zone = int(rng.integers(self.num_zones))
        template = phrasings[int(rng.integers(len(phrasings)))]

        block_names = [BLOCK_COLOURS[c] for c in block_cids]
        zone_names = [ZONE_COLOURS[c] for c in zone_cids]
        text = options.get("instruction")
        if text is not None:
            block, zone = parse_instruction(text)
            if block not in block_names or zone not in zone_names:
                raise ValueError(
                    f"instruction {text!r} asks for the {block} block and the {zone} zone, but this "
                    f"layout has blocks {block_names} and zones {zone_names}"
                )
            target_block, target_zone = block_names.index(block), zone_names.index(zone)
        else:
            text = format_instruction(template, block_names[target_block], zone_names[target_zone])

        self._block_cids, self._zone_cids = block_cids, zone_cids
        self._block_pos, self._zone_pos = blocks, zones
        self._pusher_pos, self._pusher_vel = pusher, np.zeros(2)
        self._target_block, self._target_zone = target_block, target_zone
        self.instruction = text
        self._steps = 0
        self._apply_randomization(ranges)
        self._draw_background()
        obs = self._observe()
        return obs, self._info(self._is_success())

    def step(self, action: np.ndarray):
        """Apply a pusher velocity command for one control period.

        Args:
            action: (2,) commanded velocity (vx, vy) in m/s in base_link; clipped
                to +-max_speed per axis.

        Returns:
            (observation, reward, terminated, truncated, info) as gymnasium.

        Raises:
            ValueError: wrong shape or non-finite values (state unchanged).
        """
        a = np.asarray(action, dtype=np.float64)
        if a.shape != (2,):
            raise ValueError(f"action must have shape (2,), got shape {a.shape}: {action!r}")
        if not np.all(np.isfinite(a)):
            raise ValueError(f"action must be finite, got {action!r}")
        a = np.clip(a, -self.max_speed, self.max_speed)
        if self._latency is not None:
            a = self._latency(a)

        old = self._pusher_pos.copy()
        self._simulate(float(a[0]), float(a[1]))
        self._pusher_vel = np.clip((self._pusher_pos - old) / self.dt, -self.max_speed, self.max_speed)
        self._steps += 1

        success = self._is_success()
        reward = 1.0 if success else -float(self._target_distance())
        truncated = (
            not success
            and self.max_episode_steps is not None
            and self._steps >= self.max_episode_steps
        )
        return self._observe(), reward, success, truncated, self._info(success)

    def render(self) -> np.ndarray:
        """(H, W, 3) uint8 RGB image of the current state (same as obs["pixels"])."""
        if self._frame is None:
            self._frame = self._render_frame()
        return self._frame.copy()

    def privileged_state(self) -> np.ndarray:
        """Flat float64 vector with everything a scripted expert needs.

        Layout (version 1), nb = num_blocks, nz = num_zones:
            [0:15]  header: version, nb, nz, target block index, target zone index,
                    block radius (m), zone half size (m), pusher radius (m),
                    table half size (m), max speed (m/s), dt (s),
                    pusher x, y (m), pusher vx, vy (m/s)
            next 2*nb  block centres x0, y0, x1, y1, ... (m, base_link)
            next 2*nz  zone centres (m, base_link)
            next nb    block colour ids (index into BLOCK_COLOURS)
            next nz    zone colour ids (index into ZONE_COLOURS)
        Decode with :meth:`decode_privileged`.
        """
        header = [
            PRIVILEGED_VERSION, self.num_blocks, self.num_zones,
            self._target_block, self._target_zone,
            self.block_radius, self.zone_half_size, self.pusher_radius,
            TABLE_HALF_SIZE, self.max_speed, self.dt,
        ]
        return np.concatenate([
            np.asarray(header, np.float64), self._pusher_pos, self._pusher_vel,
            self._block_pos.ravel(), self._zone_pos.ravel(),
            np.asarray(self._block_cids, np.float64), np.asarray(self._zone_cids, np.float64),
        ])

    #: What :meth:`task_state` holds: where the instruction's block and zone are (m, base_link).
    TASK_STATE_NAMES = ("target_block.x", "target_block.y", "target_zone.x", "target_zone.y")

    def task_state(self) -> np.ndarray:
        """The instruction's block and zone centres (``TASK_STATE_NAMES``): what the camera must find. Recorded as
        ``observation.environment_state`` (LeRobot's key for privileged state) for auxiliary training targets;
        a policy never takes it as input."""
        return np.concatenate([self._block_pos[self._target_block], self._zone_pos[self._target_zone]]).astype(
            np.float64)

    @staticmethod
    def decode_privileged(vector: np.ndarray) -> PrivilegedState:
        """Inverse of :meth:`privileged_state`.

        Raises:
            ValueError: wrong version or a length that does not match the header.
        """
        v = privileged_vector(vector, PRIVILEGED_VERSION, PRIVILEGED_HEADER_SIZE, "tabletop")
        nb, nz = int(v[1]), int(v[2])
        expected = PRIVILEGED_HEADER_SIZE + 3 * nb + 3 * nz
        if v.size != expected:
            raise ValueError(
                f"privileged state has {v.size} values, expected {expected} for {nb} blocks and {nz} zones"
            )
        i = PRIVILEGED_HEADER_SIZE
        blocks = v[i:i + 2 * nb].reshape(nb, 2)
        i += 2 * nb
        zones = v[i:i + 2 * nz].reshape(nz, 2)
        i += 2 * nz
        return PrivilegedState(
            pusher_pos=v[11:13].copy(), pusher_vel=v[13:15].copy(),
            block_pos=blocks.copy(), zone_pos=zones.copy(),
            block_colour_ids=v[i:i + nb].astype(int), zone_colour_ids=v[i + nb:i + nb + nz].astype(int),
            target_block=int(v[3]), target_zone=int(v[4]),
            block_radius=float(v[5]), zone_half_size=float(v[6]), pusher_radius=float(v[7]),
            table_half_size=float(v[8]), max_speed=float(v[9]), dt=float(v[10]),
        )

    def set_state(
        self,
        agent_pos: np.ndarray | None = None,
        block_positions: np.ndarray | None = None,
        zone_positions: np.ndarray | None = None,
    ) -> dict[str, np.ndarray]:
        """Test / scripting hook: teleport the pusher, blocks and/or zones (no physics, no overlap check).

        Args:
            agent_pos: (2,) pusher position (m), clamped to the table.
            block_positions: (num_blocks, 2) block centres (m), clamped to the table.
            zone_positions: (num_zones, 2) zone centres (m), base_link.

        Returns:
            The new observation. Success is evaluated by the next ``step``.
        """
        if agent_pos is not None:
            lim = TABLE_HALF_SIZE - self.pusher_radius
            self._pusher_pos = np.clip(np.asarray(agent_pos, np.float64).reshape(2), -lim, lim)
            self._pusher_vel = np.zeros(2)
        if block_positions is not None:
            lim = TABLE_HALF_SIZE - self.block_radius
            self._block_pos = np.clip(
                np.asarray(block_positions, np.float64).reshape(self.num_blocks, 2), -lim, lim
            )
            self._block_vel = np.zeros((self.num_blocks, 2))
        if zone_positions is not None:
            self._zone_pos = np.asarray(zone_positions, np.float64).reshape(self.num_zones, 2).copy()
            self._draw_background()
        return self._observe()

    @property
    def block_colours(self) -> tuple[str, ...]:
        """Colour names of the blocks in this layout, in block-index order."""
        return tuple(BLOCK_COLOURS[c] for c in self._block_cids)

    @property
    def zone_colours(self) -> tuple[str, ...]:
        """Colour names of the zones in this layout, in zone-index order."""
        return tuple(ZONE_COLOURS[c] for c in self._zone_cids)

    def set_randomization(self, randomization: RandomizationRanges | dict | str | None) -> None:
        """Ranges for the episodes from the next reset on (as the constructor's ``randomization``)."""
        self.randomization = RandomizationRanges.coerce(randomization)

    # ------------------------------------------------------------ internals
    def _apply_randomization(self, ranges: RandomizationRanges) -> None:
        """Draw this episode's randomisation (after the layout) and set up rendering and dynamics for it."""
        names = [BLOCK_COLOURS[c] for c in self._block_cids] + [ZONE_COLOURS[c] for c in self._zone_cids]
        scene = sample_scene(ranges, self._dr_rng, names, self.num_blocks)
        self.scene = scene
        self._block_vel = np.zeros((self.num_blocks, 2))
        self._latency = ActionLatency(scene.latency, np.zeros(2)) if scene.latency else None
        self._decel = ([slide_deceleration(d, self.max_speed) for d in scene.slide]
                       if any(d > 0 for d in scene.slide) else None)
        self._mass = list(scene.mass) if any(m != 1.0 for m in scene.mass) else None
        self._lut = lighting_lut(scene.gains) if scene.lighting else None
        self._warp = (camera_warp(self.image_size, scene.camera, self._scale)
                      if scene.camera_jitter else None)
        self._base_image = self._nominal_base
        if scene.texture_strength:
            img = self._nominal_base.astype(np.float64)
            half_px = TABLE_HALF_SIZE * self._scale
            h, w = self.image_size
            r0, r1 = max(0, math.floor(self._cv - half_px + 0.5)), min(h, math.floor(self._cv + half_px + 0.5))
            c0, c1 = max(0, math.floor(self._cu - half_px + 0.5)), min(w, math.floor(self._cu + half_px + 0.5))
            img[r0:r1, c0:c1] += table_texture((r1 - r0, c1 - c0), scene.texture_strength, scene.texture_seed)
            self._base_image = np.clip(np.rint(img), 0, 255).astype(np.uint8)
        self.distractors = self._place_distractors(scene.distractor_count)

    def _place_distractors(self, count: int) -> tuple[Distractor, ...]:
        """Up to ``count`` flat rings clear of every zone, block and the pusher (fewer where no room is found)."""
        rng, placed = self._dr_rng, []
        names = sorted(DISTRACTOR_RGB)
        for _ in range(count):
            name = names[int(rng.integers(len(names)))]
            radius = float(rng.uniform(0.012, 0.02))
            lim = TABLE_HALF_SIZE - radius

            def clear(c):
                return (all(np.max(np.abs(c - z)) >= self.zone_half_size + radius + 0.005 for z in self._zone_pos)
                        and all(np.hypot(*(c - b)) >= self.block_radius * math.sqrt(2) + radius + 0.005
                                for b in self._block_pos)
                        and np.hypot(*(c - self._pusher_pos)) >= self.pusher_radius + radius + 0.005
                        and all(np.hypot(*(c - np.asarray(d.position))) >= d.radius + radius for d in placed))

            for _ in range(200):
                c = rng.uniform(-lim, lim, size=2)
                if clear(c):
                    placed.append(Distractor(f"{name} {DISTRACTOR_SHAPE}", (float(c[0]), float(c[1])), radius,
                                             DISTRACTOR_RGB[name]))
                    break
        return tuple(placed)

    def _sample_layout(self, rng: np.random.Generator):
        """Non-overlapping zones, blocks outside every zone, pusher clear of blocks."""
        rb, zh, rp = self.block_radius, self.zone_half_size, self.pusher_radius
        zone_lim = TABLE_HALF_SIZE - zh - 0.02
        # Blocks keep room between them and the edge so the pusher fits behind them.
        block_lim = TABLE_HALF_SIZE - rb - 2.0 * rp - 0.015
        pusher_lim = TABLE_HALF_SIZE - rp - 0.01
        for _ in range(100):  # restart the whole layout on the (rare) dead end
            block_cids = rng.permutation(MAX_BLOCKS)[: self.num_blocks]
            zone_cids = rng.permutation(MAX_ZONES)[: self.num_zones]
            zones = self._place(rng, self.num_zones, zone_lim,
                                lambda c, zs: all(np.max(np.abs(c - z)) >= 2 * zh + 0.03 for z in zs))
            if zones is None:
                continue
            blocks = self._place(
                rng, self.num_blocks, block_lim,
                lambda c, bs: all(np.max(np.abs(c - z)) >= zh + rb + 0.01 for z in zones)
                and all(np.hypot(*(c - b)) >= 2 * rb + 0.03 for b in bs),
            )
            if blocks is None:
                continue
            pusher = self._place(
                rng, 1, pusher_lim,
                lambda c, _: all(np.hypot(*(c - b)) >= rp + rb + 0.02 for b in blocks),
            )
            if pusher is None:
                continue
            return block_cids, zone_cids, blocks, zones, pusher[0]
        raise RuntimeError("could not sample a tabletop layout; geometry too crowded")

    @staticmethod
    def _place(rng, count, lim, ok):
        """Rejection-sample ``count`` positions uniformly in the square +-lim (m); None on a dead end."""
        return place(lambda: rng.uniform(-lim, lim, size=2), count, ok, tries=500)

    def _simulate(self, vx: float, vy: float) -> None:
        """Move the pusher at (vx, vy) m/s for dt, resolving contacts positionally."""
        h = self.dt / self.substeps
        rp, rb = self.pusher_radius, self.block_radius
        r_pb, r_bb = rp + rb, 2.0 * rb
        p_lim, b_lim = TABLE_HALF_SIZE - rp, TABLE_HALF_SIZE - rb
        px, py = float(self._pusher_pos[0]), float(self._pusher_pos[1])
        bx = self._block_pos[:, 0].tolist()
        by = self._block_pos[:, 1].tolist()
        n = self.num_blocks
        # Fallback normal when centres coincide exactly: the motion direction.
        speed = math.hypot(vx, vy)
        fx, fy = (vx / speed, vy / speed) if speed > 0 else (1.0, 0.0)
        decel, mass = self._decel, self._mass  # None: the nominal contact (no sliding, equal masses)
        bvx, bvy = self._block_vel[:, 0].tolist(), self._block_vel[:, 1].tolist()
        load = 1.0  # mass ratio of the heaviest block the pusher drove in the last sub-step

        for _ in range(self.substeps):
            if decel is not None:  # sliding blocks carry on first, decelerated by friction (exact per sub-step)
                sx, sy = list(bx), list(by)
                for i in range(n):
                    v = math.hypot(bvx[i], bvy[i])
                    if v > 0.0:
                        a = decel[i]
                        travel = v * h - 0.5 * a * h * h if v > a * h else v * v / (2.0 * a)
                        keep = max(0.0, v - a * h) / v
                        bx[i] += bvx[i] / v * travel
                        by[i] += bvy[i] / v * travel
                        bvx[i], bvy[i] = bvx[i] * keep, bvy[i] * keep
                fx_, fy_ = list(bx), list(by)
            if load > 1.0:
                px = min(max(px + vx * h / load, -p_lim), p_lim)
                py = min(max(py + vy * h / load, -p_lim), p_lim)
            else:
                px = min(max(px + vx * h, -p_lim), p_lim)
                py = min(max(py + vy * h, -p_lim), p_lim)
            load = 1.0
            for _ in range(4):  # Gauss-Seidel sweeps; usually exits after one
                moved = False
                driven = [False] * n
                for i in range(n):
                    dx, dy = bx[i] - px, by[i] - py
                    d2 = dx * dx + dy * dy
                    if d2 < r_pb * r_pb:
                        d = math.sqrt(d2)
                        nx, ny = (dx / d, dy / d) if d > 1e-12 else (fx, fy)
                        bx[i] += nx * (r_pb - d)
                        by[i] += ny * (r_pb - d)
                        driven[i] = moved = True
                        if mass is not None:
                            load = max(load, mass[i])
                for i in range(n):
                    for j in range(i + 1, n):
                        dx, dy = bx[j] - bx[i], by[j] - by[i]
                        d2 = dx * dx + dy * dy
                        if d2 >= r_bb * r_bb:
                            continue
                        d = math.sqrt(d2)
                        nx, ny = (dx / d, dy / d) if d > 1e-12 else (fx, fy)
                        pen = r_bb - d
                        # A block driven by the pusher does not give way to the one it pushes.
                        wi = 0.0 if driven[i] and not driven[j] else (1.0 if driven[j] and not driven[i] else 0.5)
                        if wi == 0.5 and mass is not None:  # the lighter block gives way more
                            wi = mass[j] / (mass[i] + mass[j])
                        bx[i] -= nx * pen * wi
                        by[i] -= ny * pen * wi
                        bx[j] += nx * pen * (1.0 - wi)
                        by[j] += ny * pen * (1.0 - wi)
                        if wi < 1.0:
                            driven[j] = driven[j] or driven[i]
                        if wi > 0.0:
                            driven[i] = driven[i] or driven[j]
                        moved = True
                for i in range(n):
                    bx[i] = min(max(bx[i], -b_lim), b_lim)
                    by[i] = min(max(by[i], -b_lim), b_lim)
                if not moved:
                    break
            # Blocks that could not move (jammed against the edge) push the pusher back.
            for i in range(n):
                dx, dy = px - bx[i], py - by[i]
                d2 = dx * dx + dy * dy
                if d2 < r_pb * r_pb:
                    d = math.sqrt(d2)
                    nx, ny = (dx / d, dy / d) if d > 1e-12 else (-fx, -fy)
                    px = min(max(px + nx * (r_pb - d), -p_lim), p_lim)
                    py = min(max(py + ny * (r_pb - d), -p_lim), p_lim)
            if decel is not None:  # a block that contact moved leaves at the speed of its whole sub-step motion
                for i in range(n):
                    if bx[i] != fx_[i] or by[i] != fy_[i]:
                        if math.isfinite(decel[i]):
                            bvx[i], bvy[i] = (bx[i] - sx[i]) / h, (by[i] - sy[i]) / h
                        else:
                            bvx[i] = bvy[i] = 0.0

        self._pusher_pos = np.array([px, py])
        if decel is not None:
            self._block_vel = np.column_stack([bvx, bvy])
        self._block_pos = np.column_stack([bx, by]) if n else self._block_pos

    def _target_distance(self) -> float:
        d = self._block_pos[self._target_block] - self._zone_pos[self._target_zone]
        return float(math.hypot(d[0], d[1]))

    def _is_success(self) -> bool:
        d = self._block_pos[self._target_block] - self._zone_pos[self._target_zone]
        return bool(abs(d[0]) <= self.zone_half_size and abs(d[1]) <= self.zone_half_size)

    def _info(self, success: bool) -> dict[str, Any]:
        return {
            "instruction": self.instruction,
            "target_block": BLOCK_COLOURS[self._block_cids[self._target_block]],
            "target_zone": ZONE_COLOURS[self._zone_cids[self._target_zone]],
            "is_success": bool(success),
            "distance": self._target_distance(),
            "block_colours": self.block_colours,
            "zone_colours": self.zone_colours,
        }

    def _observe(self) -> dict[str, np.ndarray]:
        self._frame = self._render_frame()
        return {
            "pixels": self._frame,
            "agent_pos": self._pusher_pos.copy(),
            "agent_vel": self._pusher_vel.copy(),
        }

    # ------------------------------------------------------------ rendering
    def _fill_rect(self, img, v0, v1, u0, u1, rgb) -> None:
        """Fill the continuous pixel rectangle rows [v0, v1) x cols [u0, u1) (rounded, clipped)."""
        h, w = img.shape[:2]
        r0, r1 = max(0, math.floor(v0 + 0.5)), min(h, math.floor(v1 + 0.5))
        c0, c1 = max(0, math.floor(u0 + 0.5)), min(w, math.floor(u1 + 0.5))
        if r1 > r0 and c1 > c0:
            img[r0:r1, c0:c1] = rgb

    def _square(self, img, x, y, half, fill, outline) -> None:
        """Axis-aligned square centred at (x, y) m with half side ``half`` m, with an outline."""
        s, v, u = self._scale, self._cv - x * self._scale, self._cu - y * self._scale
        hp, o = half * s, self._outline_px
        self._fill_rect(img, v - hp, v + hp, u - hp, u + hp, outline)
        self._fill_rect(img, v - hp + o, v + hp - o, u - hp + o, u + hp - o, fill)

    def _draw_background(self) -> None:
        """Table + zones; drawn once per reset because zones never move."""
        img = self._base_image.copy()
        for cid, (x, y) in zip(self._zone_cids, self._zone_pos):
            name = ZONE_COLOURS[cid]
            self._square(img, x, y, self.zone_half_size, self.scene.shade(name, ZONE_TINT_RGB[name]),
                         self.scene.shade(name, ZONE_RGB[name]))
        for d in self.distractors:  # flat rings: drawn under blocks and pusher
            self._disc(img, d.position, d.radius, d.rgb)
            self._disc(img, d.position, d.radius * 0.55, None)
        self._background = img

    def _disc(self, img, centre, radius, rgb) -> None:
        """Fill the disc of ``radius`` m at ``centre`` (m) with ``rgb``; None restores the table beneath."""
        s = self._scale
        v, u, r = self._cv - centre[0] * s, self._cu - centre[1] * s, radius * s
        h, w = img.shape[:2]
        r0, r1 = max(0, int(v - r)), min(h, int(v + r) + 1)
        c0, c1 = max(0, int(u - r)), min(w, int(u + r) + 1)
        if r1 > r0 and c1 > c0:
            dv = self._row_centres[r0:r1, None] - v
            du = self._col_centres[None, c0:c1] - u
            mask = dv * dv + du * du <= r * r
            img[r0:r1, c0:c1][mask] = self._base_image[r0:r1, c0:c1][mask] if rgb is None else rgb

    def _render_frame(self) -> np.ndarray:
        img = self._background.copy()
        for cid, (x, y) in zip(self._block_cids, self._block_pos):
            name = BLOCK_COLOURS[cid]
            rgb = self.scene.shade(name, BLOCK_RGB[name])
            dark = tuple(int(c * 0.6) for c in rgb)  # outline separates touching blocks
            self._square(img, x, y, self.block_radius, rgb, dark)
        self._disc(img, self._pusher_pos, self.pusher_radius, PUSHER_RGB)  # anti-alias-free, on a small window
        if self._warp is not None:
            img = apply_warp(img, self._warp, FLOOR_RGB)
        if self._lut is not None:
            img = apply_lighting(img, self._lut)
        return img


__all__ = [
    "TabletopPushEnv",
    "PrivilegedState",
    "PRIVILEGED_VERSION",
    "PRIVILEGED_HEADER_SIZE",
    "TABLE_HALF_SIZE",
    "JOINT_NAMES",
    "BLOCK_RGB",
    "ZONE_RGB",
    "INSTRUCTION_SETS",
]
