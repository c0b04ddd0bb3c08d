"""Collision zones with the semantics of Nav2's collision monitor, in numpy (no rclpy).

Zones are polygons in ``base_link`` (m). A zone acts when at least ``min_points`` obstacle points lie
inside it: ``stop`` sends zero, ``slowdown`` scales the command by ``slowdown_ratio``, ``limit`` caps the
linear speed at ``linear_limit`` (m/s) and the angular at ``angular_limit`` (rad/s) keeping the direction,
``approach`` (its polygon is the robot footprint) simulates the commanded motion for
``time_before_collision`` s and scales the command so that a collision is never closer than that.
The most restrictive acting zone wins. Zones are configured as data (a YAML list in one string parameter,
as Nav2 takes footprints), never as code.
"""
from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import yaml

ZONE_TYPES = ("stop", "slowdown", "limit", "approach")


@dataclass(frozen=True)
class Zone:
    name: str
    kind: str
    polygon: np.ndarray  # (V, 2) vertices in base_link, m
    min_points: int = 1
    slowdown_ratio: float = 0.5
    linear_limit: float = 0.1
    angular_limit: float = 0.5
    time_before_collision: float = 1.0
    time_step: float = 0.1

    def __post_init__(self):
        object.__setattr__(self, "edges", polygon_edges(self.polygon))
        object.__setattr__(self, "bbox", (*self.polygon.min(axis=0), *self.polygon.max(axis=0)))

    def count_inside(self, points: np.ndarray) -> int:
        """How many of ``points`` (N, 2) lie inside the zone (bounding box first: most points are far)."""
        x0, y0, x1, y1 = self.bbox
        x, y = points[:, 0], points[:, 1]
        near = points[(x >= x0) & (x <= x1) & (y >= y0) & (y <= y1)]
        if len(near) < self.min_points:
            return len(near)
        return int(np.count_nonzero(points_in_polygon(near, self.edges)))


def parse_zones(text: str) -> tuple[Zone, ...]:
    """Zones from a YAML list such as
    ``[{name: front, type: stop, points: [[0.1, -0.2], [0.5, -0.2], [0.5, 0.2], [0.1, 0.2]], min_points: 3}]``.
    Raises ValueError naming the zone and key to fix."""
    try:
        data = yaml.safe_load(text) if text.strip() else []
    except yaml.YAMLError as exc:
        raise ValueError(f"zones is not a valid YAML list: {exc}") from exc
    if not isinstance(data, list):
        raise ValueError(f"zones must be a YAML list of mappings, got {type(data).__name__}")
    zones, problems = [], []
    known = {"name", "type", "points", "min_points", "slowdown_ratio", "linear_limit", "angular_limit",
             "time_before_collision", "time_step"}
    for i, item in enumerate(data):
        where = f"zones[{i}]"
        if not isinstance(item, dict):
            problems.append(f"{where}: expected a mapping with name, type, points")
            continue
        where = f"zones[{i}] ({item.get('name', '?')})"
        for key in sorted(set(item) - known):
            problems.append(f"{where}: unknown key '{key}'; accepted: {', '.join(sorted(known))}")
        if item.get("type") not in ZONE_TYPES:
            problems.append(f"{where}: type {item.get('type')!r}; expected one of {', '.join(ZONE_TYPES)}")
            continue
        try:
            poly = np.asarray(item.get("points"), dtype=np.float64)
        except (TypeError, ValueError):
            poly = np.zeros((0,))
        if poly.ndim != 2 or poly.shape[1] != 2 or len(poly) < 3 or not np.all(np.isfinite(poly)):
            problems.append(f"{where}: points must be 3 or more finite [x, y] pairs in base_link (m)")
            continue
        numbers = {k: item[k] for k in known - {"name", "type", "points"} if k in item}
        bad = [k for k, v in numbers.items() if isinstance(v, bool) or not isinstance(v, (int, float))
               or not np.isfinite(v) or v < 0]
        if bad:
            problems.append(f"{where}: {', '.join(bad)} must be non-negative numbers")
            continue
        zone = Zone(name=str(item.get("name", f"zone{i}")), kind=item["type"], polygon=poly,
                    min_points=int(numbers.get("min_points", 1)), **{k: float(v) for k, v in numbers.items()
                                                                     if k != "min_points"})
        if zone.min_points < 1:
            problems.append(f"{where}: min_points must be >= 1")
        if zone.kind == "slowdown" and not 0.0 <= zone.slowdown_ratio <= 1.0:
            problems.append(f"{where}: slowdown_ratio must be in [0, 1]")
        if zone.kind == "approach" and (zone.time_step <= 0 or zone.time_before_collision < zone.time_step):
            problems.append(f"{where}: need 0 < time_step <= time_before_collision")
        zones.append(zone)
    names = [z.name for z in zones]
    if len(set(names)) != len(names):
        problems.append(f"zone names must be unique, got {names}")
    if problems:
        raise ValueError("; ".join(problems))
    return tuple(zones)


def polygon_edges(polygon: np.ndarray) -> tuple:
    """Per-edge arrays of ``polygon`` (V, 2) for :func:`points_in_polygon`, computed once per zone."""
    x1, y1 = polygon[:, 0], polygon[:, 1]
    x2, y2 = np.roll(x1, -1), np.roll(y1, -1)
    with np.errstate(divide="ignore", invalid="ignore"):
        slope = (x2 - x1) / (y2 - y1)  # inf on horizontal edges, which no horizontal ray crosses
    return x1, y1, y2, slope


def points_in_polygon(points: np.ndarray, polygon) -> np.ndarray:
    """Boolean mask (..., N) of ``points`` (..., N, 2) inside ``polygon`` ((V, 2) vertices or its
    :func:`polygon_edges`), by ray casting."""
    x1, y1, y2, slope = polygon_edges(polygon) if isinstance(polygon, np.ndarray) else polygon
    x, y = points[..., 0, None], points[..., 1, None]
    crosses = (y1 > y) != (y2 > y)
    with np.errstate(invalid="ignore"):
        x_at = x1 + (y - y1) * slope
    return np.count_nonzero(crosses & (x < x_at), axis=-1) % 2 == 1


def collision_time(points: np.ndarray, v: np.ndarray, zone: Zone) -> float | None:
    """First simulated time (s) at which ``min_points`` points enter the footprint moving at twist ``v``."""
    steps = int(np.floor(zone.time_before_collision / zone.time_step + 1e-9))
    if steps < 1 or len(points) == 0:
        return None
    t = np.arange(1, steps + 1) * zone.time_step
    vx, vy, wz = v[0], v[1], v[5]
    # Only points within reach can be hit: the footprint's radius plus the distance travelled.
    reach = float(np.max(np.hypot(zone.polygon[:, 0], zone.polygon[:, 1]))) + math.hypot(vx, vy) * t[-1]
    points = points[np.hypot(points[:, 0], points[:, 1]) <= reach]
    if len(points) < zone.min_points:
        return None
    theta = wz * t
    if abs(wz) > 1e-9:  # exact pose of a constant twist
        s, c = np.sin(theta), np.cos(theta)
        x = (vx * s - vy * (1 - c)) / wz
        y = (vx * (1 - c) + vy * s) / wz
    else:
        x, y = vx * t, vy * t
    # Points in the robot frame at each time: R(-theta) (p - (x, y)).
    dx = points[None, :, 0] - x[:, None]
    dy = points[None, :, 1] - y[:, None]
    c, s = np.cos(theta)[:, None], np.sin(theta)[:, None]
    local = np.stack([c * dx + s * dy, -s * dx + c * dy], axis=-1)  # (K, N, 2)
    counts = points_in_polygon(local, zone.edges).sum(axis=-1)
    hits = np.nonzero(counts >= zone.min_points)[0]
    return float(t[hits[0]]) if len(hits) else None


def apply_zones(v: np.ndarray, points: np.ndarray, zones: tuple[Zone, ...]) -> tuple[np.ndarray, str, float]:
    """The command after the most restrictive acting zone: (command, zone rule or '', amount).

    ``v`` is a Twist as 6 values, ``points`` (N, 2) obstacle points in base_link.
    """
    best, best_ratio, best_rule = v, 1.0, ""
    speed = float(np.linalg.norm(v))
    for zone in zones:
        if zone.kind == "approach":
            if speed == 0.0:
                continue
            hit = collision_time(points, v, zone)
            if hit is None:
                continue
            ratio = hit / zone.time_before_collision
            # A collision at the first simulated step: the robot must not move this way at all.
            ratio = 0.0 if hit <= zone.time_step + 1e-9 else ratio
            out = v * ratio
        else:
            if zone.count_inside(points) < zone.min_points:
                continue
            if zone.kind == "stop":
                out, ratio = np.zeros_like(v), 0.0
            elif zone.kind == "slowdown":
                out, ratio = v * zone.slowdown_ratio, zone.slowdown_ratio
            else:
                lin, ang = np.linalg.norm(v[:3]), np.linalg.norm(v[3:])
                ratio = min(1.0, zone.linear_limit / lin if lin > 0 else 1.0,
                            zone.angular_limit / ang if ang > 0 else 1.0)
                out = v * ratio
        rule = f"zone.{zone.kind}:{zone.name}"
        if ratio < best_ratio or (ratio == 0.0 and not best_rule):
            best, best_ratio, best_rule = out, ratio, rule
    return best, best_rule, float(np.linalg.norm(v - best))


# ---- sensor messages -> points (duck-typed sensor_msgs; no rclpy, no sensor_msgs_py) ----------------------
_PF_DTYPES = {1: "i1", 2: "u1", 3: "i2", 4: "u2", 5: "i4", 6: "u4", 7: "f4", 8: "f8"}


def scan_points(ranges, angle_min: float, angle_increment: float, range_min: float, range_max: float,
                pose: tuple[float, float, float] = (0.0, 0.0, 0.0)) -> np.ndarray:
    """LaserScan ranges -> (N, 2) points in base_link, given the sensor's pose (x, y, yaw) there.
    Ranges outside [range_min, range_max] and non-finite ones are no return (dropped)."""
    r = np.asarray(ranges, dtype=np.float64)
    a = angle_min + angle_increment * np.arange(len(r))
    ok = np.isfinite(r) & (r >= range_min) & (r <= range_max)
    r, a = r[ok], a[ok] + pose[2]
    return np.stack([pose[0] + r * np.cos(a), pose[1] + r * np.sin(a)], axis=-1)


def cloud_xyz(msg) -> np.ndarray:
    """PointCloud2 -> (N, 3) float64 x, y, z read from the byte buffer with numpy; non-finite points dropped.
    Raises ValueError when x, y or z is missing or the layout is inconsistent."""
    fields = {f.name: f for f in msg.fields}
    missing = [k for k in "xyz" if k not in fields]
    if missing:
        raise ValueError(f"PointCloud2 has no field(s) {missing}; fields: {sorted(fields)}")
    n = msg.width * msg.height
    if msg.point_step <= 0 or len(msg.data) < n * msg.point_step or msg.row_step < msg.width * msg.point_step:
        raise ValueError(f"PointCloud2 layout inconsistent: {n} points x point_step {msg.point_step} "
                         f"(row_step {msg.row_step}) vs {len(msg.data)} bytes")
    order = ">" if msg.is_bigendian else "<"
    names, formats, offsets = [], [], []
    for k in "xyz":
        f = fields[k]
        if f.datatype not in _PF_DTYPES:
            raise ValueError(f"PointCloud2 field {k} has unknown datatype {f.datatype}")
        names.append(k)
        formats.append(order + _PF_DTYPES[f.datatype])
        offsets.append(f.offset)
    dtype = np.dtype({"names": names, "formats": formats, "offsets": offsets, "itemsize": msg.point_step})
    buf = np.frombuffer(bytes(msg.data), dtype=np.uint8)
    rows = buf[: msg.height * msg.row_step].reshape(msg.height, msg.row_step)[:, : msg.width * msg.point_step]
    pts = np.ascontiguousarray(rows).view(dtype).reshape(-1)
    xyz = np.stack([pts["x"], pts["y"], pts["z"]], axis=-1).astype(np.float64)
    return xyz[np.all(np.isfinite(xyz), axis=1)]


def cloud_points(xyz: np.ndarray, min_height: float, max_height: float,
                 pose: tuple[float, float, float] = (0.0, 0.0, 0.0)) -> np.ndarray:
    """(N, 3) points in the sensor frame -> (M, 2) base_link points whose z (sensor frame, m) lies in
    [min_height, max_height], given the sensor's planar pose (x, y, yaw) in base_link (mounted level)."""
    z = xyz[:, 2]
    keep = xyz[(z >= min_height) & (z <= max_height)]
    c, s = np.cos(pose[2]), np.sin(pose[2])
    return np.stack([pose[0] + c * keep[:, 0] - s * keep[:, 1], pose[1] + s * keep[:, 0] + c * keep[:, 1]],
                    axis=-1)
