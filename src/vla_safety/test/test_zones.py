"""Collision zones and sensor parsing: polygons, approach, limit, LaserScan and PointCloud2 in numpy."""
import math

import numpy as np
import pytest
from sensor_msgs.msg import PointCloud2, PointField

from vla_safety.zones import (apply_zones, cloud_points, cloud_xyz, collision_time, parse_zones,
                              points_in_polygon, scan_points)

SQUARE = np.array([[-0.1, -0.1], [0.1, -0.1], [0.1, 0.1], [-0.1, 0.1]])


def test_points_in_polygon_convex_and_concave():
    pts = np.array([[0.0, 0.0], [0.2, 0.0], [0.09, 0.09], [-0.11, 0.0]])
    assert points_in_polygon(pts, SQUARE).tolist() == [True, False, True, False]
    l_shape = np.array([[0, 0], [2, 0], [2, 1], [1, 1], [1, 2], [0, 2]], dtype=float)
    assert points_in_polygon(np.array([[1.5, 1.5], [0.5, 1.5], [1.5, 0.5]]), l_shape).tolist() == [False, True, True]


def test_approach_scales_to_keep_time_before_collision():
    (zone,) = parse_zones("[{name: fp, type: approach, points: [[-0.1, -0.1], [0.1, -0.1], [0.1, 0.1], [-0.1, 0.1]],"
                          " time_before_collision: 2.0, time_step: 0.1}]")
    obstacle = np.array([[0.62, 0.0]])
    v = np.array([0.5, 0, 0, 0, 0, 0])
    # The footprint's front (x = 0.1) reaches 0.62 after 1.04 s (first simulated step past it: 1.1 s).
    hit = collision_time(obstacle, v, zone)
    assert hit == pytest.approx(1.1)
    out, rule, amount = apply_zones(v, obstacle, (zone,))
    assert rule == "zone.approach:fp" and out[0] == pytest.approx(0.5 * 1.1 / 2.0)
    # Moving away: no collision, no change.
    out, rule, _ = apply_zones(-v, obstacle, (zone,))
    assert rule == "" and out[0] == -0.5


def test_approach_follows_rotation():
    (zone,) = parse_zones("[{name: fp, type: approach, points: [[-0.1, -0.1], [0.1, -0.1], [0.1, 0.1], [-0.1, 0.1]],"
                          " time_before_collision: 1.0, time_step: 0.05}]")
    # Driving forward while turning left at 1 rad/s on a 0.5 m radius: reaches (0.5, 0.5) after pi/2 s,
    # passes near (0.354, 0.146) at pi/4 s; a straight line never would.
    v = np.array([0.5, 0, 0, 0, 0, 1.0])
    p = np.array([[0.5 * math.sin(0.8), 0.5 * (1 - math.cos(0.8))]])
    assert collision_time(p, v, zone) is not None
    assert collision_time(p, np.array([0.5, 0, 0, 0, 0, 0.0]), zone) is None


def test_limit_zone_keeps_direction():
    (zone,) = parse_zones("[{name: l, type: limit, linear_limit: 0.1, angular_limit: 0.2,"
                          " points: [[-1, -1], [1, -1], [1, 1], [-1, 1]]}]")
    out, rule, _ = apply_zones(np.array([0.3, 0.4, 0, 0, 0, 0.1]), np.array([[0.0, 0.0]]), (zone,))
    assert np.linalg.norm(out[:3]) == pytest.approx(0.1) and out[0] / out[1] == pytest.approx(0.75)
    assert rule == "zone.limit:l"


def test_scan_points_skip_invalid_ranges_and_apply_pose():
    pts = scan_points([1.0, float("inf"), 0.01, 2.0], angle_min=0.0, angle_increment=math.pi / 2,
                      range_min=0.05, range_max=10.0, pose=(0.1, 0.0, math.pi / 2))
    # Two valid returns: 1 m at 0 rad and 2 m at 3pi/2 rad, rotated by the scanner's yaw of pi/2.
    assert pts == pytest.approx(np.array([[0.1, 1.0], [2.1, 0.0]]), abs=1e-9)


def _cloud(xyz: np.ndarray, padding: int = 4) -> PointCloud2:
    step = 12 + padding
    buf = np.zeros((len(xyz), step), dtype=np.uint8)
    buf[:, :12] = xyz.astype("<f4").view(np.uint8).reshape(len(xyz), 12)
    fields = [PointField(name=n, offset=4 * i, datatype=PointField.FLOAT32, count=1) for i, n in enumerate("xyz")]
    return PointCloud2(height=1, width=len(xyz), fields=fields, is_bigendian=False, point_step=step,
                       row_step=step * len(xyz), data=buf.tobytes(), is_dense=False)


def test_pointcloud_fields_read_from_bytes_and_height_filter():
    xyz = np.array([[1.0, 0.0, 0.5], [2.0, 1.0, 0.01], [np.nan, 0, 0], [0.5, -0.5, 3.0]], dtype=np.float32)
    read = cloud_xyz(_cloud(xyz))
    assert read.shape == (3, 3) and read[0] == pytest.approx([1.0, 0.0, 0.5])
    pts = cloud_points(read, 0.05, 2.0, pose=(0.0, 0.0, 0.0))
    assert pts == pytest.approx(np.array([[1.0, 0.0]]))


def test_pointcloud_without_xyz_or_truncated_is_refused():
    msg = _cloud(np.zeros((2, 3), dtype=np.float32))
    msg.fields = msg.fields[:2]
    with pytest.raises(ValueError, match="no field"):
        cloud_xyz(msg)
    msg = _cloud(np.zeros((2, 3), dtype=np.float32))
    msg.data = msg.data[:10]
    with pytest.raises(ValueError, match="inconsistent"):
        cloud_xyz(msg)
