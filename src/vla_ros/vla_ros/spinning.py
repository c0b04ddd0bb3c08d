"""An executor spun on a thread of its own, stopped so that nothing it waits on is destroyed under it.

rclpy's ``Executor.shutdown()`` (Jazzy and Kilted) sets its flag and returns without waiting for a wait in
progress on another thread: its check for outstanding work reads the flag it has just set. A node destroyed right
after it can free the handles that the spinning thread still holds, and under load that crashes the process
(SIGSEGV in ``_wait_for_ready_callbacks``). :class:`SpinThread` ends its loop at the next turn, is joined, and only
then shuts the executor down; the caller destroys nodes after :meth:`SpinThread.stop` returned True.

An entity destroyed on another thread (a subscription a command-line tool no longer needs, a lifecycle cleanup on
a worker thread of a multi-threaded executor) can also be destroyed between the two steps in which rclpy builds a
wait set: rclpy then raises ``InvalidHandle`` ("destruction was requested") out of ``spin_once``, or, for an
action client or server destroyed in that window (``vla record`` destroys its action client while the bring-up's
executor spins), ``RCLError`` "Failed to add ... to wait set: ... pointer is invalid". :func:`spin_once` takes that
turn as empty; the next turn builds the wait set without the destroyed entity.
"""
from __future__ import annotations

import threading

from rclpy.exceptions import InvalidHandle
from rclpy.executors import Executor
from rclpy.impl.implementation_singleton import rclpy_implementation as _rclpy

#: How long one wait may last: the longest a stop request waits for the loop to notice it.
TURN_S = 0.05


def spin_once(executor: Executor, timeout_sec: float) -> None:
    """``executor.spin_once``, where an entity destroyed while the wait set was being built ends the turn
    instead of the spinning loop."""
    try:
        executor.spin_once(timeout_sec=timeout_sec)
    except InvalidHandle:
        pass  # the generator that raised is exhausted: rclpy starts a new one, and a new wait set, next turn
    except _rclpy.RCLError as exc:
        if not is_destroyed_in_wait_set(exc):
            raise


def is_destroyed_in_wait_set(exc: Exception) -> bool:
    """Whether ``exc`` is rcl refusing to add an entity destroyed on another thread to the wait set being built."""
    text = str(exc)
    return "to wait set" in text and "is invalid" in text


class SpinThread:
    """``executor`` spun on a daemon thread until :meth:`stop`."""

    def __init__(self, executor: Executor, name: str = "spin"):
        self.executor = executor
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name=name, daemon=True)

    def start(self) -> "SpinThread":
        self._thread.start()
        return self

    def _run(self) -> None:
        while not self._stop.is_set():
            try:
                spin_once(self.executor, TURN_S)
            except Exception:  # noqa: BLE001 - the context went down underneath the executor
                if not self.executor.context.ok():
                    return
                raise

    @property
    def running(self) -> bool:
        return self._thread.is_alive()

    def stop(self, timeout: float = 10.0) -> bool:
        """Stop spinning and shut the executor down. False if the thread is still inside a callback after
        ``timeout`` s: then the executor is left as it is, and its nodes must not be destroyed."""
        self._stop.set()
        if self._thread.ident is not None:
            self._thread.join(timeout)
            if self._thread.is_alive():
                return False
        self.executor.shutdown(timeout_sec=0)
        return True
