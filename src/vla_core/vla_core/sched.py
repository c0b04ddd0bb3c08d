"""Keep third-party code from making this process's threads real-time behind its back.

SVT-AV1, the AV1 encoder inside PyAV, switches the thread that opens an encoder to SCHED_FIFO priority 99 when it
runs as root (as it does in Docker), and every thread it starts inherits that policy. A real-time thread that
busy-waits then owns its core: the DDS threads that would deliver what it waits for never run, and every process
started from it inherits the policy too. On a robot that means a video encoder that can starve the control loop;
in a test run it meant ROS graphs that spun at 100% CPU and never answered.

``no_realtime_escalation`` puts back to normal scheduling every thread that became real-time inside it. Threads
that were real-time before (a control loop started with ``chrt`` on purpose) keep their policy.
"""
from __future__ import annotations

import os
from contextlib import contextmanager
from pathlib import Path

_REALTIME = {getattr(os, "SCHED_FIFO", -1), getattr(os, "SCHED_RR", -1)}
_SUPPORTED = hasattr(os, "sched_getscheduler") and Path("/proc/self/task").is_dir()


def realtime_threads() -> set[int]:
    """Thread ids of this process that run under a real-time policy (SCHED_FIFO or SCHED_RR)."""
    if not _SUPPORTED:
        return set()
    found = set()
    for entry in os.listdir("/proc/self/task"):
        try:
            if os.sched_getscheduler(int(entry)) in _REALTIME:
                found.add(int(entry))
        except OSError:  # the thread ended while we looked
            continue
    return found


def demote(keep: set[int] = frozenset()) -> int:
    """Put every real-time thread of this process that is not in ``keep`` back to SCHED_OTHER; return how many."""
    count = 0
    for tid in realtime_threads() - set(keep):
        try:
            os.sched_setscheduler(tid, os.SCHED_OTHER, os.sched_param(0))
            count += 1
        except OSError:  # ended meanwhile
            continue
    return count


def this_thread_escalated(was_realtime: bool) -> bool:
    """Whether the calling thread is real-time now although it was not (one system call: cheap per frame)."""
    return _SUPPORTED and not was_realtime and os.sched_getscheduler(0) in _REALTIME


@contextmanager
def no_realtime_escalation():
    """Threads of this process that turn real-time inside the block are put back to normal scheduling after it."""
    before = realtime_threads()
    try:
        yield before
    finally:
        demote(before)
