"""A control tick that first waits, a bounded time, for the inputs of its own instant (lockstep; ARCHITECTURE.md, Time).

A lockstep simulator publishes a frame before the /clock tick of its instant, but the frame reaches a controller a
hop or two later than the tick (through perception, say): a tick that acted at once would act on the previous frame.
:class:`InputWait` makes the tick wait until ``fresh()`` holds, at most ``limit()`` seconds of steady time:

- ``tick()`` (from the control timer) acts at once when waiting is off (``limit() <= 0``) or the inputs are fresh,
  and otherwise starts a wait; a tick that comes while one waits merges into it (the caller counts it as missed);
- ``arrived()`` (from an input's callback) ends the wait as soon as ``fresh()`` holds;
- a 5 ms steady-clock poll ends a wait that ran out, and the tick acts on the inputs there are (``expired`` counts
  these: a stale input then proposes nothing, as it would without the wait).
"""
from __future__ import annotations

import time
from typing import Callable

from rclpy.clock import Clock, ClockType

#: How often a waiting tick checks whether its wait ran out (steady time).
POLL_S = 0.005


class InputWait:
    def __init__(self, node, act: Callable[[], None], fresh: Callable[[], bool], limit: Callable[[], float],
                 callback_group=None, on_expired: Callable[[], None] | None = None):
        self._node, self._act, self._fresh, self._limit, self._on_expired = node, act, fresh, limit, on_expired
        self._since: float | None = None
        self.expired = 0
        self._timer = node.create_timer(POLL_S, self._poll, callback_group=callback_group,
                                        clock=Clock(clock_type=ClockType.STEADY_TIME))
        self._timer.cancel()

    @property
    def waiting(self) -> bool:
        return self._since is not None

    def tick(self) -> None:
        if self._since is not None:
            return
        if self._limit() > 0.0 and not self._fresh():
            self._since = time.monotonic()
            self._timer.reset()
            return
        self._act()

    def arrived(self) -> None:
        if self._since is not None and self._fresh():
            self._end()

    def _poll(self) -> None:
        if self._since is None:
            self._timer.cancel()
            return
        if time.monotonic() - self._since < self._limit():
            return
        self.expired += 1
        if self._on_expired is not None:
            self._on_expired()
        self._end()

    def _end(self) -> None:
        self._since = None
        self._timer.cancel()
        self._act()

    def destroy(self) -> None:
        """Forget a waiting tick (it never acts) and release the poll timer."""
        self._since = None
        self._node.destroy_timer(self._timer)
