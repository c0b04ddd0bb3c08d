"""Checks that hold for every test of the workspace."""
from __future__ import annotations

import os
import warnings

import pytest


@pytest.fixture(autouse=True)
def _scheduling_left_alone():
    """A test must not leave any thread of this process real-time scheduled: every thread and process started from
    it afterwards inherits the policy (the DDS threads of a ROS context created later, say), and a busy real-time
    thread starves everything else of its core (ROS graphs then spin and never answer). SVT-AV1 run as root does
    this; guard such code with ``vla_core.sched.no_realtime_escalation``. A thread found real-time after a test is
    put back to normal scheduling at once (so no later test inherits it) and named in a warning; a test whose own
    process was made real-time fails."""
    try:
        from vla_core import sched
    except ImportError:  # the workspace is not built: nothing here can escalate
        yield
        return
    before, policy = sched.realtime_threads(), os.sched_getscheduler(0)
    yield
    escalated = sched.realtime_threads() - before
    if escalated:
        names = sorted({_thread_name(t) for t in escalated})
        sched.demote(before)
        warnings.warn(f"{len(escalated)} thread(s) of the test process were left real-time ({', '.join(names)}) and "
                      "were put back to normal scheduling; wrap the code that changes scheduling in "
                      "vla_core.sched.no_realtime_escalation()", RuntimeWarning, stacklevel=1)
    if os.sched_getscheduler(0) != policy:
        os.sched_setscheduler(0, policy, os.sched_param(0))
        pytest.fail("this test left the test process real-time scheduled; wrap the code that changes it in "
                    "vla_core.sched.no_realtime_escalation()")


def _thread_name(tid: int) -> str:
    try:
        with open(f"/proc/self/task/{tid}/comm") as f:
            return f.read().strip()
    except OSError:
        return str(tid)
