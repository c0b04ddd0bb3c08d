import pytest

from vla_bringup.manager_core import (Command, HeartbeatMonitor, State, Step, Transition, plan,
                                      safe_stop_plan)

ORDER = ["robot", "perception", "policy", "teleop"]
U, I, A = State.UNCONFIGURED, State.INACTIVE, State.ACTIVE


def steps(command, states):
    return [(s.node, s.transition) for s in plan(command, ORDER, states)]


def test_startup_configures_all_in_order_then_activates_all_in_order():
    got = steps(Command.STARTUP, {n: U for n in ORDER})
    assert got == [(n, Transition.CONFIGURE) for n in ORDER] + [(n, Transition.ACTIVATE) for n in ORDER]


def test_shutdown_walks_reverse_order_deactivate_cleanup_shutdown():
    got = steps(Command.SHUTDOWN, {n: A for n in ORDER})
    rev = list(reversed(ORDER))
    assert got == ([(n, Transition.DEACTIVATE) for n in rev] + [(n, Transition.CLEANUP) for n in rev]
                   + [(n, Transition.UNCONFIGURED_SHUTDOWN) for n in rev])


@pytest.mark.parametrize("command,expected", [
    (Command.PAUSE, [("teleop", Transition.DEACTIVATE), ("robot", Transition.DEACTIVATE)]),
    (Command.RESUME, [("perception", Transition.ACTIVATE), ("policy", Transition.ACTIVATE)]),
    (Command.CONFIGURE, []),
    (Command.RESET, [("teleop", Transition.DEACTIVATE), ("robot", Transition.DEACTIVATE),
                     ("teleop", Transition.CLEANUP), ("policy", Transition.CLEANUP),
                     ("perception", Transition.CLEANUP), ("robot", Transition.CLEANUP)]),
])
def test_commands_skip_nodes_already_there(command, expected):
    states = {"robot": A, "perception": I, "policy": I, "teleop": A}
    assert steps(command, states) == expected


def test_startup_from_mixed_states_is_idempotent():
    states = {"robot": A, "perception": I, "policy": U, "teleop": U}
    got = steps(Command.STARTUP, states)
    assert got == [("policy", Transition.CONFIGURE), ("teleop", Transition.CONFIGURE),
                   ("perception", Transition.ACTIVATE), ("policy", Transition.ACTIVATE),
                   ("teleop", Transition.ACTIVATE)]
    assert steps(Command.STARTUP, {n: A for n in ORDER}) == []


def test_safe_stop_deactivates_survivors_in_reverse_and_skips_lost():
    got = safe_stop_plan(ORDER, {n: A for n in ORDER}, lost=["perception"])
    assert got == [Step("teleop", Transition.DEACTIVATE), Step("policy", Transition.DEACTIVATE),
                   Step("robot", Transition.DEACTIVATE)]


def test_heartbeat_monitor_judges_only_when_armed():
    mon = HeartbeatMonitor(nodes=["a", "b"], timeout=1.0)
    mon.beat("a", 0.0, 3)
    assert mon.lost(now=100.0) == []
    mon.arm(now=10.0)
    mon.beat("a", 10.5, 3)
    assert mon.lost(now=10.9) == []
    assert mon.lost(now=11.2) == ["b"]          # never heard from since arming
    assert mon.lost(now=11.6) == ["a", "b"]
    mon.beat("b", 11.6, 3, "boom")
    assert mon.lost(now=11.7) == ["a"] and mon.error["b"] == "boom"
    assert mon.state["b"] == State.ACTIVE
    mon.beat("stranger", 11.7, 3)
    assert "stranger" not in mon.last
