"""Time the shield can trust: every freshness check reads two clocks, and a jumping ROS clock stops the robot.

Pure. The node stamps every input with an :class:`Instant`: the steady clock (monotonic, per process,
nothing on the network can move it) and the ROS clock (the system clock, or /clock under use_sim_time,
which any publisher on the domain can move: a replayed bag, a second simulator, an attacker).

- An input is fresh only if it is fresh on both (:func:`fresh`): at most ``timeout`` old on the steady
  clock, and between 0 and ``timeout`` old on the ROS clock. The steady check bounds how long anything can
  be trusted whatever /clock says; the ROS check keeps the timeouts in simulated seconds when the sim runs
  faster than real time, and a ROS clock that went back (an input "from the future") counts as stale.
- :class:`ClockWatch` flags a jump between two steps: the ROS clock going back, or forward by more than
  ``max_jump`` seconds beyond the steady time that passed.

A plain float passed as a time means both clocks read the same (a robot without sim time; unit tests).
"""
from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Instant:
    """One reading of both clocks (s): ``steady`` (monotonic) and ``ros`` (the node clock)."""

    steady: float
    ros: float


NEVER = Instant(float("-inf"), float("-inf"))


def instant(t: Instant | float) -> Instant:
    """``t`` as an Instant; a float reads the same on both clocks."""
    return t if isinstance(t, Instant) else Instant(float(t), float(t))


def fresh(then: Instant, now: Instant, timeout: float, skew: float = 0.0) -> bool:
    """True when ``then`` is at most ``timeout`` old on both clocks and not in the future on the ROS clock
    (beyond ``skew`` s, for header stamps from another machine's clock)."""
    ros_age = now.ros - then.ros
    return now.steady - then.steady <= timeout and -skew <= ros_age <= timeout


@dataclass
class ClockWatch:
    """Detects ROS clock jumps between consecutive readings."""

    max_jump: float
    last: Instant | None = None

    def jumped(self, now: Instant) -> str | None:
        """Why ``now`` is a jump from the previous reading (None: no jump); remembers ``now``."""
        last, self.last = self.last, now
        if last is None:
            return None
        ros, steady = now.ros - last.ros, now.steady - last.steady
        if ros < 0:
            return f"the ROS clock went back {-ros:.3f} s"
        if ros - max(steady, 0.0) > self.max_jump:
            return f"the ROS clock jumped {ros:.3f} s ahead in {steady:.3f} s of steady time"
        return None
