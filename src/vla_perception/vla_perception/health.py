"""Per-camera health: arrival rate, age of the newest frame, missed and dropped frames (no rclpy)."""
from __future__ import annotations

from collections import Counter, deque


class CameraHealth:
    """Counts what one camera delivers. Times in seconds: ``wall`` monotonic, ``stamp``/``now`` on the node
    clock (simulated time under use_sim_time)."""

    def __init__(self, name: str, fps: float, stale_after: float, window: float = 2.0):
        self.name, self.fps, self.stale_after, self.window = name, fps, stale_after, window
        self.arrivals: deque[float] = deque()
        self.frames = self.missed = 0
        self.dropped: Counter[str] = Counter()
        self.last_stamp: float | None = None
        self.last_problem = ""

    def frame(self, stamp: float, wall: float) -> None:
        """A frame was converted and published. A stamp gap of more than 1.5 periods counts missed frames."""
        if self.last_stamp is not None and stamp > self.last_stamp:
            periods = (stamp - self.last_stamp) * self.fps
            if periods > 1.5:
                self.missed += int(round(periods)) - 1
        self.last_stamp = stamp if self.last_stamp is None else max(stamp, self.last_stamp)
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

    def age(self, now: float) -> float | None:
        return None if self.last_stamp is None else now - self.last_stamp

    def level(self, now: float) -> tuple[int, str]:
        """(0 OK / 1 WARN / 2 ERROR, message): ERROR when no frame yet or stale, WARN after drops."""
        age = self.age(now)
        if age is None:
            return 2, "no frame received yet"
        if age > self.stale_after:
            return 2, f"stale: newest frame is {age:.2f} s old (limit {self.stale_after:g} s)"
        if self.dropped:
            return 1, f"{sum(self.dropped.values())} frames dropped; last: {self.last_problem}"
        return 0, "ok"

    def values(self, now: float, wall: float) -> dict[str, str]:
        age = self.age(now)
        out = {"frames": str(self.frames), "rate_hz": f"{self.rate(wall):.1f}", "expected_hz": f"{self.fps:g}",
               "age_s": "none" if age is None else f"{age:.3f}", "missed": str(self.missed),
               "dropped": str(sum(self.dropped.values()))}
        out.update({f"dropped_{k}": str(v) for k, v in sorted(self.dropped.items())})
        return out

    def _trim(self, wall: float) -> None:
        while self.arrivals and self.arrivals[0] < wall - self.window:
            self.arrivals.popleft()
