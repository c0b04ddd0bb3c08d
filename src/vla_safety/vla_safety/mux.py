"""Input multiplexer with twist_mux semantics: priorities, a timeout per source, lock topics.

Pure Python: the shield node feeds it commands and lock states with their receipt time, an
:class:`~vla_safety.clock.Instant` (steady and ROS clock). A source is *fresh* while its newest message is at
most ``timeout`` old on both clocks (:func:`vla_safety.clock.fresh`: /clock cannot stretch it). A lock of priority P blocks every
source of priority <= P while it is locked, and also when it has a timeout and its last message is older
than that (a lock publisher that dies locks, as in twist_mux). Among the fresh, unblocked sources the one
with the highest priority wins. A source whose newest message was rejected is fresh but carries no command:
selecting it stops the robot (a broken operator never falls through to the policy).
"""
from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from vla_safety.clock import NEVER, Instant, fresh


@dataclass
class Source:
    """One command input (teleop, policy) with its priority and timeout (s)."""

    name: str
    priority: int
    timeout: float
    command: np.ndarray | None = field(default=None, repr=False)
    stamp: Instant = NEVER

    def fresh(self, now: Instant) -> bool:
        return fresh(self.stamp, now, self.timeout)


@dataclass
class Lock:
    """A lock topic: while locked (or silent for longer than a non-zero ``timeout``), blocks priorities <= ``priority``."""

    name: str
    priority: int
    timeout: float = 0.0
    locked: bool = False
    stamp: Instant = NEVER

    def engaged(self, now: Instant) -> bool:
        expired = self.timeout > 0.0 and not fresh(self.stamp, now, self.timeout)
        return self.locked or expired


class Mux:
    def __init__(self, sources: list[Source], locks: list[Lock]):
        names = [s.name for s in sources] + [lk.name for lk in locks]
        if len(set(names)) != len(names):
            raise ValueError(f"source and lock names must be unique, got {names}")
        priorities = [s.priority for s in sources]
        if len(set(priorities)) != len(priorities):
            raise ValueError(f"source priorities must differ (twist_mux semantics), got {priorities}")
        self.sources = {s.name: s for s in sources}
        self.locks = {lk.name: lk for lk in locks}

    def offer(self, name: str, command: np.ndarray | None, now: Instant) -> None:
        """Newest message of source ``name`` at ``now``; None marks a rejected message (stop while fresh)."""
        source = self.sources[name]
        source.command, source.stamp = command, now

    def set_lock(self, name: str, locked: bool, now: Instant) -> None:
        lock = self.locks[name]
        lock.locked, lock.stamp = bool(locked), now

    def lock_priority(self, now: Instant) -> tuple[int, str]:
        """Highest priority of the engaged locks (-1 when none) and that lock's name."""
        best, name = -1, ""
        for lock in self.locks.values():
            if lock.engaged(now) and lock.priority > best:
                best, name = lock.priority, lock.name
        return best, name

    def select(self, now: Instant) -> tuple[Source | None, list[str]]:
        """The winning source (None: nothing fresh and unblocked) and the names of the fresh sources."""
        floor, _ = self.lock_priority(now)
        fresh = [s for s in self.sources.values() if s.fresh(now)]
        allowed = [s for s in fresh if s.priority > floor]
        winner = max(allowed, key=lambda s: s.priority) if allowed else None
        return winner, [s.name for s in fresh]

    def clear(self) -> None:
        """Forget every held command (on activation and e-stop reset: nothing old is executed)."""
        for source in self.sources.values():
            source.command, source.stamp = None, NEVER
