"""Per-camera health: arrival rate, silence, stamp lag, missed and dropped frames (no rclpy).

Two clocks: ``wall`` is the steady (monotonic) clock of this process, ``now`` and ``stamp`` are on the node clock
(simulated time under use_sim_time). Whether a camera is alive is judged on arrivals, on the steady clock: a
frame's stamp is the sender's claim and cannot keep the alarm quiet. A frame stamped further in the future than
``max_future`` is refused (counted as dropped 'future_stamp'); a frame that arrives older than ``stale_after``
(its stamp far behind the node clock) reports the camera stale as well.
"""
from __future__ import annotations

from collections import Counter, deque


class CameraHealth:
    """Counts what one camera delivers; see the module docstring for the clocks."""

    def __init__(self, name: str, fps: float, stale_after: float, window: float = 2.0, max_future: float = 5.0):
        self.name, self.fps, self.stale_after, self.window = name, fps, stale_after, window
        self.max_future = max_future
        self.arrivals: deque[float] = deque()
        self.frames = self.missed = 0
        self.dropped: Counter[str] = Counter()
        self.last_stamp: float | None = None
        self.last_arrival: float | None = None  # wall time of the newest accepted frame
        self.last_lag: float | None = None  # node clock minus stamp when the newest frame arrived, s
        self.last_problem = ""

    def admit(self, stamp: float, now: float) -> str | None:
        """Refuse a frame stamped more than ``max_future`` s after ``now`` (counted); None if it may pass.

        A node clock at zero (use_sim_time before the first /clock) cannot judge, and admits."""
        if now > 0 and stamp - now > self.max_future:
            problem = (f"frame stamped {stamp - now:.3f} s in the future (stamp {stamp:.3f} s, clock {now:.3f} s; "
                       f"limit {self.max_future:g} s): fix the camera's clock or its use_sim_time")
            self.drop("future_stamp", problem)
            return problem
        return None

    def frame(self, stamp: float, wall: float, now: float | None = None) -> None:
        """A frame was converted and published. A stamp gap of more than 1.5 periods counts missed frames.
        ``now`` (node clock at arrival) gives the frame's lag; None: not known."""
        if self.last_stamp is not None and stamp > self.last_stamp:
            periods = (stamp - self.last_stamp) * self.fps
            if periods > 1.5:
                self.missed += int(round(periods)) - 1
        self.last_stamp = stamp if self.last_stamp is None else max(stamp, self.last_stamp)
        self.last_arrival = wall
        self.last_lag = None if now is None or now <= 0 else now - stamp
        self.frames += 1
        self.arrivals.append(wall)
        self._trim(wall)

    def drop(self, reason: str, problem: str) -> None:
        """A frame was refused; ``reason`` is the counter key, ``problem`` the message naming the fix."""
        self.dropped[reason] += 1
        self.last_problem = problem

    def rate(self, wall: float) -> float:
        self._trim(wall)
        return len(self.arrivals) / self.window

    def silence(self, wall: float) -> float | None:
        """Seconds (steady clock) since the newest accepted frame arrived; None before the first."""
        return None if self.last_arrival is None else wall - self.last_arrival

    def level(self, wall: float) -> tuple[int, str]:
        """(0 OK / 1 WARN / 2 ERROR, message): ERROR when no frame yet, no frame for ``stale_after`` s, or the
        newest frame arrived older than ``stale_after``; WARN after drops."""
        silence = self.silence(wall)
        if silence is None:
            return 2, "no frame received yet"
        if silence > self.stale_after:
            return 2, f"stale: no frame for {silence:.2f} s (limit {self.stale_after:g} s)"
        if self.last_lag is not None and self.last_lag > self.stale_after:
            return 2, (f"stale: the newest frame was {self.last_lag:.2f} s old when it arrived (limit "
                       f"{self.stale_after:g} s); check the camera's clock or the transport")
        if self.dropped:
            return 1, f"{sum(self.dropped.values())} frames dropped; last: {self.last_problem}"
        return 0, "ok"

    def values(self, wall: float) -> dict[str, str]:
        silence = self.silence(wall)
        out = {"frames": str(self.frames), "rate_hz": f"{self.rate(wall):.1f}", "expected_hz": f"{self.fps:g}",
               "age_s": "none" if silence is None else f"{silence:.3f}",
               "lag_s": "none" if self.last_lag is None else f"{self.last_lag:.3f}", "missed": str(self.missed),
               "dropped": str(sum(self.dropped.values()))}
        out.update({f"dropped_{k}": str(v) for k, v in sorted(self.dropped.items())})
        return out

    def _trim(self, wall: float) -> None:
        while self.arrivals and self.arrivals[0] < wall - self.window:
            self.arrivals.popleft()
