"""Checks that hold for every test of the workspace."""
from __future__ import annotations

import os

import pytest


@pytest.fixture(autouse=True)
def _scheduling_left_alone():
    """A test must not leave this process real-time scheduled: every process it starts afterwards inherits the
    policy, and a busy real-time thread starves the DDS threads of its core (ROS graphs then spin and never
    answer). SVT-AV1 run as root does this; guard such code with ``vla_core.sched.no_realtime_escalation``."""
    if not hasattr(os, "sched_getscheduler"):
        yield
        return
    before = os.sched_getscheduler(0)
    yield
    after = os.sched_getscheduler(0)
    if after != before:
        os.sched_setscheduler(0, before, os.sched_param(0))
        pytest.fail(f"this test left the test process on scheduling policy {after} (was {before}); "
                    "wrap the code that changes it in vla_core.sched.no_realtime_escalation()")
