"""Following a multi-point JointTrajectory through the shield, one point per control period (no ROS).

A source (a policy sending its action chunk) may send a trajectory of T points at ``time_from_start`` t_1 < ... <
t_T. Every point was checked on arrival (joint names, sizes, finite values, increasing times); each point then
becomes the source's command when it is due and passes every limit of the shield like any single command. The
point due at ``elapsed`` s after receipt is the first one with t_i > elapsed: sent then, it is reached one control
period later, at about t_i, as a JointTrajectoryController would reach it; the first point goes out on receipt. After the last point nothing more is
offered: the source ages out (its timeout) and the watchdog holds the measured position. A new trajectory from the
same source replaces the old one (as JointTrajectoryController replaces a trajectory).
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np


@dataclass
class _Trajectory:
    points: np.ndarray  # (T, n)
    times: np.ndarray   # (T,) time_from_start, s
    start: float        # receipt, s (ROS clock: simulated seconds under use_sim_time)
    offered: int = -1   # index of the point last offered


class TrajectoryFollower:
    """Multi-point trajectories per source and the point each one has due."""

    def __init__(self):
        self._active: dict[str, _Trajectory] = {}

    def start(self, source: str, points: np.ndarray, times: np.ndarray, now: float) -> np.ndarray:
        """Follow ``points`` (T, n) at ``times`` (T,) s from ``now``; returns the point to offer at once."""
        points = np.asarray(points, dtype=np.float64)
        times = np.asarray(times, dtype=np.float64).reshape(-1)
        if points.ndim != 2 or len(points) != len(times) or len(points) == 0:
            raise ValueError(f"a trajectory needs one time per point: got points {points.shape} and {times.shape} "
                             "times")
        self._active[source] = _Trajectory(points, times, float(now), offered=0)
        return points[0].copy()

    def due(self, source: str, now: float) -> np.ndarray | None:
        """The point of ``source``'s trajectory due at ``now`` if it was not offered yet, else None (also when
        the trajectory is over, or when the clock went back before its start: then it is dropped)."""
        traj = self._active.get(source)
        if traj is None:
            return None
        elapsed = now - traj.start
        if elapsed < 0:  # the clock went back: nothing of this trajectory is due any more
            self.drop(source)
            return None
        later = np.flatnonzero(traj.times > elapsed + 1e-9)
        if not later.size:
            self.drop(source)
            return None
        i = int(later[0])
        if i <= traj.offered:  # never back: the first point went out on receipt
            return None
        traj.offered = i
        return traj.points[i].copy()

    def sources(self) -> list[str]:
        return list(self._active)

    def drop(self, source: str) -> None:
        self._active.pop(source, None)

    def clear(self) -> None:
        self._active.clear()
