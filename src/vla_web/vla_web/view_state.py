"""What the operator page shows, shared between the ROS callbacks and the HTTP threads (no ROS).

Times are seconds on the node's clock (simulated time under use_sim_time), as the stamps they are compared with.
"""
from __future__ import annotations

import collections
import threading
from dataclasses import dataclass

import numpy as np

LATENCY_SAMPLES = 2000
EVENT_LINES = 20
RECENT_FRAMES = 64  # stamps kept per camera, to time a frame the page reports drawn after newer ones came


@dataclass
class Frame:
    camera: int
    seq: int
    stamp: float      # the camera's header stamp, s
    jpeg: bytes
    width: int
    height: int


class LatencyLog:
    """Latency samples (ms) of one stage, most recent ``LATENCY_SAMPLES``."""

    def __init__(self):
        self.samples: collections.deque = collections.deque(maxlen=LATENCY_SAMPLES)

    def add(self, ms: float) -> None:
        self.samples.append(ms)

    def summary(self) -> dict:
        if not self.samples:
            return {"n": 0}
        a = np.asarray(self.samples)
        return {"n": int(a.size), "p50_ms": round(float(np.percentile(a, 50)), 2),
                "p99_ms": round(float(np.percentile(a, 99)), 2)}


class ViewState:
    """Latest frames, command history, status of the policy, shield, manager and episodes."""

    def __init__(self, cameras: list[str], history_s: float):
        self.cameras = list(cameras)
        self.history_s = history_s
        self.lock = threading.Lock()
        self.new_frame = threading.Condition(self.lock)
        self.frames: list[Frame | None] = [None] * len(self.cameras)
        self.frame_counts = [0] * len(self.cameras)
        self.recent = [collections.deque(maxlen=RECENT_FRAMES) for _ in self.cameras]  # (seq, stamp)
        self.dropped = collections.Counter()
        self.commands = {"proposed": collections.deque(), "sent": collections.deque()}
        self.shield: dict = {}
        self.policy: dict = {}
        self.manager: dict = {}
        self.episode: dict = {}
        self.events: collections.deque = collections.deque(maxlen=EVENT_LINES)
        self.latency = {"delivered": LatencyLog(), "displayed": LatencyLog()}

    # ---- writers (ROS callbacks) -----------------------------------------------------------------
    def put_frame(self, camera: int, stamp: float, jpeg: bytes, width: int, height: int) -> Frame:
        with self.lock:
            self.frame_counts[camera] += 1
            frame = Frame(camera, self.frame_counts[camera], stamp, jpeg, width, height)
            self.frames[camera] = frame
            self.recent[camera].append((frame.seq, stamp))
            self.new_frame.notify_all()
            return frame

    def put_command(self, kind: str, t: float, values) -> None:
        """``kind`` 'proposed' or 'sent'; ``values`` the command vector (SI units)."""
        with self.lock:
            history = self.commands[kind]
            history.append((t, [float(v) for v in values]))
            while history and history[0][0] < t - self.history_s:
                history.popleft()
            # A clock that went back (a new simulation) starts the plot over.
            if len(history) > 1 and history[-2][0] > t:
                last = history.pop()
                history.clear()
                history.append(last)

    def put(self, section: str, values: dict) -> None:
        with self.lock:
            getattr(self, section).update(values)

    def add_event(self, text: str) -> None:
        with self.lock:
            self.events.append(text)

    def drop(self, reason: str) -> None:
        with self.lock:
            self.dropped[reason] += 1

    # ---- readers (HTTP threads) ------------------------------------------------------------------
    def wait_frame(self, camera: int, after_seq: int, timeout: float) -> Frame | None:
        """The newest frame of ``camera`` newer than ``after_seq``, waiting up to ``timeout`` s; None if none."""
        if not 0 <= camera < len(self.cameras):
            raise IndexError(f"camera {camera} does not exist; cameras 0..{len(self.cameras) - 1}")
        with self.lock:
            self.new_frame.wait_for(lambda: self.frames[camera] is not None and self.frames[camera].seq > after_seq,
                                    timeout)
            frame = self.frames[camera]
            return frame if frame is not None and frame.seq > after_seq else None

    def stamp_of(self, camera: int, seq: int) -> float | None:
        """The stamp of a recent frame ``seq`` of ``camera``; None when unknown or too old."""
        with self.lock:
            if not 0 <= camera < len(self.recent):
                return None
            return next((stamp for s, stamp in self.recent[camera] if s == seq), None)

    def snapshot(self, since: float = float("-inf")) -> dict:
        """Everything the page shows, JSON-ready; commands newer than ``since`` (s) only."""
        with self.lock:
            return {
                "cameras": [{"topic": topic, "frames": self.frame_counts[i],
                             "stamp": self.frames[i].stamp if self.frames[i] else None,
                             "size": [self.frames[i].width, self.frames[i].height] if self.frames[i] else None}
                            for i, topic in enumerate(self.cameras)],
                "commands": {k: [c for c in v if c[0] > since] for k, v in self.commands.items()},
                "shield": dict(self.shield), "policy": dict(self.policy), "manager": dict(self.manager),
                "episode": dict(self.episode), "events": list(self.events), "dropped": dict(self.dropped),
                "latency": {k: v.summary() for k, v in self.latency.items()},
                "history_s": self.history_s,
            }


def status_line(snapshot: dict) -> str:
    """One line that says what the robot is doing, most urgent first."""
    shield, manager, policy, episode = (snapshot[k] for k in ("shield", "manager", "policy", "episode"))
    parts = []
    if shield.get("estop"):
        parts.append("E-STOP latched (press Reset to release)")
    elif shield:
        rules = ", ".join(shield.get("rules", [])) or "no rule acting"
        parts.append(f"shield forwards {shield.get('active_source', '?')} ({rules})")
    else:
        parts.append("no shield state yet")
    if manager:
        parts.append(f"bring-up {manager.get('phase', '?')}" + (f": {manager['reason']}" if manager.get("reason")
                                                                 else ""))
    if policy:
        served = f"{policy['policy']}/{policy['version']}" if policy.get("policy") else "no policy deployed"
        parts.append(served + (" proposing" if policy.get("proposing") else ""))
    if episode:
        parts.append(f"episode {episode.get('index', '?')} {episode.get('event', '')}".rstrip())
    return "; ".join(parts)
