"""Following a multi-point JointTrajectory point by point (vla_safety.trajectory)."""
import numpy as np
import pytest

from vla_safety.trajectory import TrajectoryFollower

POINTS = np.arange(12, dtype=float).reshape(4, 3)  # 4 points of 3 joints
TIMES = np.array([0.1, 0.2, 0.3, 0.4])


def test_each_point_is_offered_once_when_due_and_the_trajectory_ends_after_its_last():
    f = TrajectoryFollower()
    assert np.array_equal(f.start("policy", POINTS, TIMES, 10.0), POINTS[0])  # the first point on receipt
    assert f.due("policy", 10.05) is None                 # point 0 (t = 0.1) still ahead: nothing new
    assert np.array_equal(f.due("policy", 10.1), POINTS[1])   # point 0's time has come: point 1 is the target
    assert f.due("policy", 10.15) is None                 # offered once
    assert np.array_equal(f.due("policy", 10.35), POINTS[3])  # a late tick skips to the point due
    assert f.due("policy", 10.3) is None                  # never back
    assert f.due("policy", 10.4) is None and f.sources() == []  # over: dropped


def test_a_new_trajectory_replaces_the_old_and_a_clock_going_back_drops_it():
    f = TrajectoryFollower()
    f.start("policy", POINTS, TIMES, 10.0)
    assert np.array_equal(f.start("policy", POINTS[::-1], TIMES, 10.15), POINTS[3])
    assert np.array_equal(f.due("policy", 10.25), POINTS[2])
    assert f.due("policy", 9.0) is None and f.sources() == []
    f.start("teleop", POINTS, TIMES, 1.0)
    f.clear()
    assert f.due("teleop", 1.2) is None


def test_points_and_times_must_match():
    with pytest.raises(ValueError, match="one time per point"):
        TrajectoryFollower().start("policy", POINTS, TIMES[:2], 0.0)
