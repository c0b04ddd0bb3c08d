"""Domain randomisation for the embedded simulators: ranges, a seeded sampler, image operations, action latency
and a success-driven curriculum. Pure numpy; no simulator, no ROS.

An environment holds a :class:`RandomizationRanges` (every range zero by default: randomisation off, the env
exactly as without it). At each reset it calls :func:`sample_scene` with its own generator (seeded from the
episode seed on a stream separate from the layout's, so the layout and task of a seed do not depend on the
ranges) and applies the :class:`SceneRandomization` drawn:

* lighting: a brightness factor and a white balance from a colour temperature, applied to the rendered
  image (:func:`lighting_gains`, :func:`apply_lighting`);
* colour shades: each named colour's hue moves within that name's band (:data:`HUE_BANDS`), its saturation and
  value by a bounded factor (:func:`shade_rgb`): a "red" cube stays red;
* table texture: a tint and a smooth grain (:func:`table_texture`);
* distractors: flat rings in colours that no instruction names (:data:`DISTRACTOR_RGB`);
* camera pose jitter: a shift, a rotation about the optical axis and a zoom (:func:`camera_warp`, applied
  with :func:`apply_warp` after rendering, so it works for any top-down renderer);
* dynamics: per-object friction (as the distance an object released at top speed slides on) and mass ratio,
  and a per-episode action latency in control steps (:class:`ActionLatency`).

:class:`Curriculum` widens or narrows a scale 0..1 over the configured ranges from measured success
(``ranges.scaled(curriculum.scale)``).
"""
from __future__ import annotations

import colorsys
import dataclasses
import math
from collections import deque
from dataclasses import dataclass, field
from typing import Any, Iterable, Mapping, Sequence

import numpy as np

#: Nominal white point; ``colour_temperature`` draws around it (K).
NOMINAL_KELVIN = 6500.0
#: Standard gravity (m/s^2), for the friction coefficient a slide distance stands for.
GRAVITY = 9.81

#: Hue band of each colour name: (nominal hue, half width), degrees. A shade keeps its hue in
#: nominal +- half width; neighbouring bands (red 0, orange 31, yellow 50) never overlap.
HUE_BANDS: dict[str, tuple[float, float]] = {
    "red": (0.0, 10.0),
    "orange": (30.7, 5.0),
    "yellow": (49.8, 5.0),
    "green": (129.2, 12.0),
    "teal": (180.0, 15.0),
    "blue": (227.0, 15.0),
    "purple": (272.3, 15.0),
}
#: Saturation and value factors of a shade stay in 1 +- SHADE_SV * shade.
SHADE_SV = 0.2

#: Distractor colours: neutral, named by no instruction (no task colour is a substring of their names).
DISTRACTOR_RGB: dict[str, tuple[int, int, int]] = {
    "grey": (128, 128, 128),
    "brown": (121, 85, 61),
    "white": (250, 250, 250),
}
DISTRACTOR_SHAPE = "ring"


@dataclass(frozen=True)
class RandomizationRanges:
    """How far each randomisation may go; every field 0 = off (the environment exactly as without it).

    Attributes:
        brightness: image brightness factor drawn in [1 - brightness, 1 + brightness] (0 .. 0.9).
        colour_temperature: white point drawn in 6500 K +- this (K, 0 .. 4000).
        shade: fraction (0 .. 1) of each colour name's hue band (:data:`HUE_BANDS`) a shade may use; saturation
            and value move by up to ``0.2 * shade`` of themselves.
        table_texture: strength (0 .. 1) of the table's tint and grain.
        distractors: most distractor objects per episode (0 .. 8); the count is drawn in 0 .. distractors.
        camera_shift: camera translation jitter per axis (m, 0 .. 0.05).
        camera_rotation: camera rotation about its optical axis (degrees, 0 .. 45).
        camera_zoom: relative zoom drawn in [1 - camera_zoom, 1 + camera_zoom] (0 .. 0.5).
        friction_slide: low friction, as the distance (m, 0 .. 0.2) an object released at top speed slides on;
            drawn per object in [0, friction_slide]; 0 = the nominal contact (an object stops when no longer
            pushed). Coefficient: mu = max_speed^2 / (2 g slide).
        mass: object mass ratio drawn in [1 - mass, 1 + mass] (0 .. 0.9); a heavier object slows what pushes it.
        latency: most control steps (0 .. 10) between an action and its effect, drawn per episode.
    """

    brightness: float = 0.0
    colour_temperature: float = 0.0
    shade: float = 0.0
    table_texture: float = 0.0
    distractors: int = 0
    camera_shift: float = 0.0
    camera_rotation: float = 0.0
    camera_zoom: float = 0.0
    friction_slide: float = 0.0
    mass: float = 0.0
    latency: int = 0

    def __post_init__(self):
        problems = []
        for f in dataclasses.fields(self):
            value, (low, high), unit = getattr(self, f.name), LIMITS[f.name], UNITS[f.name]
            integer = f.name in INTEGER_FIELDS
            if isinstance(value, bool) or not isinstance(value, (int, float)) or (
                    integer and not float(value).is_integer()):
                problems.append(f"{f.name}={value!r} must be {'an integer' if integer else 'a number'} "
                                f"in [{low:g}, {high:g}]{unit}")
            elif not (math.isfinite(value) and low <= value <= high):
                problems.append(f"{f.name}={value!r} is out of range; set it in [{low:g}, {high:g}]{unit}")
            else:
                object.__setattr__(self, f.name, int(value) if integer else float(value))
        if problems:
            raise ValueError("randomization ranges: " + "; ".join(problems))

    @classmethod
    def from_dict(cls, values: Mapping[str, Any] | None) -> "RandomizationRanges":
        """Ranges from a mapping of field names (missing: 0).

        Raises:
            ValueError: an unknown key (naming the accepted ones) or a value out of its range.
        """
        values = dict(values or {})
        unknown = sorted(set(values) - set(LIMITS))
        if unknown:
            raise ValueError(f"unknown randomization keys {unknown}; accepted: {list(LIMITS)}")
        return cls(**values)

    @classmethod
    def coerce(cls, value: "RandomizationRanges | Mapping[str, Any] | str | None") -> "RandomizationRanges":
        """Ranges from ranges, a mapping, a preset name (:data:`PRESETS`) or None (all off)."""
        if isinstance(value, cls):
            return value
        if isinstance(value, str):
            if value not in PRESETS:
                raise ValueError(f"unknown randomization preset {value!r}; presets: {sorted(PRESETS)}")
            return PRESETS[value]
        if value is None or isinstance(value, Mapping):
            return cls.from_dict(value)
        raise ValueError(f"randomization must be a RandomizationRanges, a mapping, a preset name or None; "
                         f"got {type(value).__name__} {value!r}")

    def to_dict(self) -> dict[str, float | int]:
        return dataclasses.asdict(self)

    @property
    def enabled(self) -> bool:
        """Any range above zero."""
        return any(getattr(self, name) for name in LIMITS)

    def scaled(self, scale: float) -> "RandomizationRanges":
        """These ranges times ``scale`` (0 .. 1); integer ranges round to the nearest step."""
        if not (isinstance(scale, (int, float)) and 0.0 <= scale <= 1.0):
            raise ValueError(f"randomization scale must be in [0, 1], got {scale!r}")
        return RandomizationRanges(**{
            name: (int(round(v * scale)) if name in INTEGER_FIELDS else v * scale)
            for name, v in self.to_dict().items()})


#: Accepted bounds of every range, and its unit (for messages and ROS parameter descriptors).
LIMITS: dict[str, tuple[float, float]] = {
    "brightness": (0.0, 0.9), "colour_temperature": (0.0, 4000.0), "shade": (0.0, 1.0),
    "table_texture": (0.0, 1.0), "distractors": (0, 8), "camera_shift": (0.0, 0.05),
    "camera_rotation": (0.0, 45.0), "camera_zoom": (0.0, 0.5), "friction_slide": (0.0, 0.2),
    "mass": (0.0, 0.9), "latency": (0, 10),
}
UNITS: dict[str, str] = {
    "brightness": "", "colour_temperature": " K", "shade": "", "table_texture": "", "distractors": " objects",
    "camera_shift": " m", "camera_rotation": " deg", "camera_zoom": "", "friction_slide": " m", "mass": "",
    "latency": " steps",
}
INTEGER_FIELDS = frozenset({"distractors", "latency"})

#: Named ranges: ``make(..., randomization="medium")``, the sim node's ``randomization_preset``.
PRESETS: dict[str, RandomizationRanges] = {}
PRESETS.update({
    "off": RandomizationRanges(),
    "visual": RandomizationRanges(brightness=0.2, colour_temperature=1000.0, shade=1.0, table_texture=1.0,
                                  distractors=3, camera_shift=0.01, camera_rotation=5.0, camera_zoom=0.05),
    "dynamics": RandomizationRanges(friction_slide=0.03, mass=0.5, latency=2),
})
PRESETS["full"] = RandomizationRanges(**{**PRESETS["visual"].to_dict(), **{
    k: v for k, v in PRESETS["dynamics"].to_dict().items() if v}})

#: What an evaluation can perturb a scene by: every preset, and each field of the full preset alone, named after
#: the field (``"brightness"``: the full preset's brightness range and nothing else), for success under every
#: single perturbation.
PERTURBATIONS: dict[str, RandomizationRanges] = {**PRESETS, **{
    name: RandomizationRanges(**{name: value}) for name, value in PRESETS["full"].to_dict().items() if value}}


@dataclass(frozen=True)
class Distractor:
    """A flat distractor on the table: ``name`` (e.g. "grey ring"), centre (m), outer radius (m), RGB."""

    name: str
    position: tuple[float, float]
    radius: float
    rgb: tuple[int, int, int]


@dataclass(frozen=True)
class SceneRandomization:
    """What one episode drew (the identity when drawn from zero ranges).

    Attributes:
        gains: (3,) per-channel image gains, brightness times white balance.
        shades: colour name -> (hue offset in degrees, saturation factor, value factor).
        texture_strength: 0 .. 1; ``texture_seed`` seeds :func:`table_texture`.
        distractor_count: how many distractors to try to place (the env places them clear of task objects).
        camera: (shift_x m, shift_y m, rotation deg, zoom factor).
        slide: (n_objects,) slide distance per object (m); 0 = nominal contact.
        mass: (n_objects,) mass ratio per object.
        latency: control steps of action latency this episode.
    """

    gains: tuple[float, float, float] = (1.0, 1.0, 1.0)
    shades: dict = field(default_factory=dict)
    texture_strength: float = 0.0
    texture_seed: int = 0
    distractor_count: int = 0
    camera: tuple[float, float, float, float] = (0.0, 0.0, 0.0, 1.0)
    slide: tuple[float, ...] = ()
    mass: tuple[float, ...] = ()
    latency: int = 0

    @property
    def lighting(self) -> bool:
        return self.gains != (1.0, 1.0, 1.0)

    @property
    def camera_jitter(self) -> bool:
        return self.camera != (0.0, 0.0, 0.0, 1.0)

    def shade(self, name: str, rgb: Sequence[int]) -> tuple[int, int, int]:
        """``rgb`` (of colour ``name``) in this episode's shade of that name; unchanged if it has none."""
        if name not in self.shades:
            return tuple(int(c) for c in rgb)
        return shade_rgb(rgb, *self.shades[name])


def sample_scene(ranges: RandomizationRanges, rng: np.random.Generator, colour_names: Iterable[str],
                 n_objects: int) -> SceneRandomization:
    """Draw one episode's randomisation. Every draw happens whatever the ranges (a zero range draws and
    ignores), so one field's range never shifts another field's values for the same seed.

    Args:
        colour_names: the colour names in the scene that get a shade (each must be in :data:`HUE_BANDS`).
        n_objects: movable objects that get a friction and a mass.
    """
    r = ranges
    u = lambda: float(rng.uniform(-1.0, 1.0))  # noqa: E731 - one symmetric draw
    brightness = 1.0 + r.brightness * u()
    kelvin = NOMINAL_KELVIN + r.colour_temperature * u()
    gains = tuple(float(g) for g in brightness * lighting_gains(kelvin)) if (
        r.brightness or r.colour_temperature) else (1.0, 1.0, 1.0)
    shades = {}
    for name in colour_names:
        if name not in HUE_BANDS:
            raise ValueError(f"colour {name!r} has no hue band; known: {sorted(HUE_BANDS)}")
        draws = (u(), u(), u())
        if r.shade:
            shades[name] = (draws[0] * r.shade * HUE_BANDS[name][1], 1.0 + draws[1] * SHADE_SV * r.shade,
                            1.0 + draws[2] * SHADE_SV * r.shade)
    texture_seed = int(rng.integers(2**31))
    count = int(rng.random() * (r.distractors + 1))  # one draw whatever the range (rng.integers(1) takes none)
    camera = (r.camera_shift * u(), r.camera_shift * u(), r.camera_rotation * u(), 1.0 + r.camera_zoom * u())
    slide = tuple(float(v) for v in r.friction_slide * rng.uniform(0.0, 1.0, n_objects))
    mass = tuple(float(v) for v in 1.0 + r.mass * rng.uniform(-1.0, 1.0, n_objects))
    latency = int(rng.random() * (r.latency + 1))
    return SceneRandomization(gains=gains, shades=shades, texture_strength=r.table_texture,
                              texture_seed=texture_seed, distractor_count=count, camera=camera,
                              slide=slide, mass=mass, latency=latency)


#: Prefix of the sim node's randomisation parameters (``randomization_brightness``, ..., ``randomization_scale``).
PARAM_PREFIX = "randomization_"


def ranges_from_params(values: Mapping[str, Any]) -> RandomizationRanges:
    """The ranges the sim node's parameters ask for: every ``randomization_<field>`` times
    ``randomization_scale`` (missing: 0, and scale 1)."""
    ranges = RandomizationRanges.from_dict({name: values[PARAM_PREFIX + name] for name in LIMITS
                                            if PARAM_PREFIX + name in values})
    return ranges.scaled(float(values.get(PARAM_PREFIX + "scale", 1.0)))


# ------------------------------------------------------------------------------------------ colours
def hue_degrees(rgb: Sequence[float]) -> float:
    """Hue of an RGB colour (0..255 per channel), degrees in [0, 360)."""
    h, _, _ = colorsys.rgb_to_hsv(*(float(c) / 255.0 for c in rgb))
    return h * 360.0


def hue_in_band(rgb: Sequence[float], name: str, tolerance: float = 0.0) -> bool:
    """Whether ``rgb``'s hue lies in the band of colour ``name`` (+- ``tolerance`` degrees)."""
    nominal, half = HUE_BANDS[name]
    return abs((hue_degrees(rgb) - nominal + 180.0) % 360.0 - 180.0) <= half + tolerance


def shade_rgb(rgb: Sequence[int], hue_offset: float, saturation: float, value: float) -> tuple[int, int, int]:
    """``rgb`` (0..255) with its hue moved by ``hue_offset`` degrees and saturation and value scaled (clipped
    to 1)."""
    h, s, v = colorsys.rgb_to_hsv(*(float(c) / 255.0 for c in rgb))
    out = colorsys.hsv_to_rgb((h + hue_offset / 360.0) % 1.0, min(1.0, s * saturation), min(1.0, v * value))
    return tuple(int(round(c * 255.0)) for c in out)


def lighting_gains(kelvin: float) -> np.ndarray:
    """(3,) RGB gains of a light of colour temperature ``kelvin`` relative to 6500 K (Tanner Helland's fit of
    the black-body colour; warm light below 6500 K: more red, less blue)."""
    return _kelvin_rgb(kelvin) / _kelvin_rgb(NOMINAL_KELVIN)


def _kelvin_rgb(kelvin: float) -> np.ndarray:
    t = float(kelvin) / 100.0
    r = 255.0 if t <= 66 else 329.698727446 * (t - 60) ** -0.1332047592
    g = 99.4708025861 * math.log(t) - 161.1195681661 if t <= 66 else 288.1221695283 * (t - 60) ** -0.0755148492
    b = 255.0 if t >= 66 else (0.0 if t <= 19 else 138.5177312231 * math.log(t - 10) - 305.0447927307)
    return np.clip([r, g, b], 1.0, 255.0)


def lighting_lut(gains: Sequence[float]) -> np.ndarray:
    """(256, 3) uint8 look-up table: channel value -> value under ``gains`` (rounded, clipped to 255)."""
    levels = np.arange(256, dtype=np.float64)[:, None] * np.asarray(gains, np.float64)[None, :]
    return np.clip(np.rint(levels), 0, 255).astype(np.uint8)


def apply_lighting(image: np.ndarray, lut: np.ndarray) -> np.ndarray:
    """(H, W, 3) uint8 image through a :func:`lighting_lut` (a new array)."""
    return np.stack([lut[:, c][image[..., c]] for c in range(3)], axis=-1)


# ------------------------------------------------------------------------------------------ table, camera
def table_texture(shape: tuple[int, int], strength: float, seed: int) -> np.ndarray:
    """(H, W, 3) float offsets (intensity units) to add to a table colour: a tint of up to 8 and a smooth
    grain of up to 24 (bilinear noise on a 6 x 6 grid plus stripes of random direction), times ``strength``."""
    rng = np.random.default_rng(seed)
    h, w = shape
    tint = rng.uniform(-8.0, 8.0, 3)
    grid = rng.normal(0.0, 1.0, (6, 6))
    ys, xs = np.linspace(0, 5, h), np.linspace(0, 5, w)
    y0, x0 = np.minimum(ys.astype(int), 4), np.minimum(xs.astype(int), 4)
    fy, fx = (ys - y0)[:, None], (xs - x0)[None, :]
    smooth = ((grid[y0][:, x0] * (1 - fy) + grid[y0 + 1][:, x0] * fy) * (1 - fx)
              + (grid[y0][:, x0 + 1] * (1 - fy) + grid[y0 + 1][:, x0 + 1] * fy) * fx)
    angle, period = rng.uniform(0, math.pi), rng.uniform(4.0, 12.0)
    stripes = np.sin((np.arange(h)[:, None] * math.sin(angle) + np.arange(w)[None, :] * math.cos(angle))
                     * 2 * math.pi / period)
    grain = np.clip(0.6 * smooth + 0.4 * stripes, -1.0, 1.0) * 24.0
    return strength * (tint[None, None, :] + grain[..., None])


def camera_warp(shape: tuple[int, int], camera: tuple[float, float, float, float],
                px_per_m: float) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Where each pixel of a jittered top-down camera looks in the nominal image.

    Args:
        shape: (H, W) of the image.
        camera: (shift_x m, shift_y m, rotation deg, zoom): the camera moves by the shift in the image's
            up (x) and left (y) directions, turns about its optical axis and zooms about the image centre.
        px_per_m: nominal image scale.

    Returns:
        (rows, cols, inside): int source pixel of every output pixel, and whether it lies in the image
        (outside: the caller fills the floor).
    """
    h, w = shape
    sx, sy, deg, zoom = camera
    a = math.radians(deg)
    v = np.arange(h, dtype=np.float64)[:, None] + 0.5 - h / 2.0
    u = np.arange(w, dtype=np.float64)[None, :] + 0.5 - w / 2.0
    # Output pixel offset -> nominal image offset: undo the zoom and rotation, then the camera's shift.
    dv = (math.cos(a) * v - math.sin(a) * u) / zoom - sx * px_per_m
    du = (math.sin(a) * v + math.cos(a) * u) / zoom - sy * px_per_m
    rows = np.floor(dv + h / 2.0).astype(np.int64)
    cols = np.floor(du + w / 2.0).astype(np.int64)
    inside = (rows >= 0) & (rows < h) & (cols >= 0) & (cols < w)
    return np.clip(rows, 0, h - 1), np.clip(cols, 0, w - 1), inside


def apply_warp(image: np.ndarray, warp: tuple[np.ndarray, np.ndarray, np.ndarray],
               fill: Sequence[int]) -> np.ndarray:
    """``image`` seen through a :func:`camera_warp` (nearest neighbour; ``fill`` where it sees nothing)."""
    rows, cols, inside = warp
    out = image[rows, cols]
    out[~inside] = fill
    return out


# ------------------------------------------------------------------------------------------ dynamics
def slide_deceleration(slide: float, max_speed: float) -> float:
    """Friction deceleration (m/s^2) that stops an object moving at ``max_speed`` within ``slide`` m
    (mu * g = max_speed^2 / (2 slide)); inf for slide 0 (the nominal contact: no sliding)."""
    return math.inf if slide <= 0.0 else max_speed * max_speed / (2.0 * slide)


class ActionLatency:
    """A FIFO that delays actions by ``steps`` control steps; the first ``steps`` outputs are ``idle``."""

    def __init__(self, steps: int, idle: np.ndarray):
        if int(steps) < 0:
            raise ValueError(f"latency must be >= 0 steps, got {steps!r}")
        self.steps = int(steps)
        self._queue = deque(np.array(idle, dtype=np.float64) for _ in range(self.steps))

    def __call__(self, action: np.ndarray) -> np.ndarray:
        """The action to apply now, given the one commanded now."""
        if not self.steps:
            return action
        self._queue.append(np.array(action, dtype=np.float64))
        return self._queue.popleft()


# ------------------------------------------------------------------------------------------ curriculum
@dataclass
class Curriculum:
    """A scale 0..1 over the configured ranges, moved by measured success.

    Feed it each evaluation round's episode outcomes (:meth:`update`); once ``window`` episodes have been seen
    since the last change, a success rate >= ``target`` widens the scale by ``step`` and a rate < ``floor``
    narrows it by ``step`` (clamped to [min_scale, max_scale]); each change starts a fresh window, so every
    move rests on episodes played at the current scale.
    """

    step: float = 0.1
    target: float = 0.8
    floor: float = 0.5
    window: int = 20
    scale: float = 0.0
    min_scale: float = 0.0
    max_scale: float = 1.0
    _outcomes: deque = field(default_factory=deque, init=False, repr=False)

    def __post_init__(self):
        if not 0.0 <= self.min_scale <= self.scale <= self.max_scale <= 1.0:
            raise ValueError(f"curriculum needs 0 <= min_scale <= scale <= max_scale <= 1, got "
                             f"{self.min_scale!r}, {self.scale!r}, {self.max_scale!r}")
        if not 0.0 < self.step <= 1.0:
            raise ValueError(f"curriculum step must be in (0, 1], got {self.step!r}")
        if not 0.0 <= self.floor <= self.target <= 1.0:
            raise ValueError(f"curriculum needs 0 <= floor <= target <= 1, got floor {self.floor!r}, "
                             f"target {self.target!r}")
        if int(self.window) < 1:
            raise ValueError(f"curriculum window must be >= 1 episode, got {self.window!r}")

    @property
    def success_rate(self) -> float | None:
        """Success over the episodes seen at the current scale (None before any)."""
        return sum(self._outcomes) / len(self._outcomes) if self._outcomes else None

    def update(self, successes: Iterable[bool]) -> float:
        """Record one evaluation round's episode outcomes; return the scale for the next round."""
        for s in successes:
            self._outcomes.append(bool(s))
            while len(self._outcomes) > self.window:
                self._outcomes.popleft()
        if len(self._outcomes) >= self.window:
            rate = self.success_rate
            new = self.scale
            if rate >= self.target:
                new = min(self.max_scale, self.scale + self.step)
            elif rate < self.floor:
                new = max(self.min_scale, self.scale - self.step)
            if new != self.scale:
                self.scale = round(new, 9)
                self._outcomes.clear()
        return self.scale


__all__ = [
    "RandomizationRanges", "SceneRandomization", "Distractor", "Curriculum", "ActionLatency", "PRESETS", "LIMITS",
    "UNITS", "HUE_BANDS", "DISTRACTOR_RGB", "sample_scene", "shade_rgb", "hue_degrees", "hue_in_band",
    "lighting_gains", "lighting_lut", "apply_lighting", "table_texture", "camera_warp", "apply_warp",
    "slide_deceleration", "ranges_from_params", "PARAM_PREFIX",
]
