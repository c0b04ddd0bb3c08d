import pytest

from vla_bringup.manager_core import (DUPLICATE_FIX, GRAPH_ONLY, Command, Endpoint, HeartbeatMonitor, State, Step,
                                      Transition, graph_faults, pick_heartbeat_publisher, plan, safe_stop_plan, unmet)

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


def test_gates_go_first_in_every_stop_and_last_is_unchanged_on_the_way_up():
    gates = ["perception"]  # stands for the safety shield: the one node every command passes through
    got = [(s.node, s.transition) for s in plan(Command.SHUTDOWN, ORDER, {n: A for n in ORDER}, gates)]
    assert got[:4] == [("perception", Transition.DEACTIVATE), ("teleop", Transition.DEACTIVATE),
                       ("policy", Transition.DEACTIVATE), ("robot", Transition.DEACTIVATE)]
    assert got[4] == ("perception", Transition.CLEANUP)
    pause = plan(Command.PAUSE, ORDER, {n: A for n in ORDER}, gates)
    assert [s.node for s in pause] == ["perception", "teleop", "policy", "robot"]
    stop = safe_stop_plan(ORDER, {n: A for n in ORDER}, lost=["teleop"], gates=gates)
    assert [s.node for s in stop] == ["perception", "policy", "robot"]
    up = plan(Command.STARTUP, ORDER, {n: U for n in ORDER}, gates)
    assert [s.node for s in up] == ORDER + ORDER


def test_unmet_says_which_node_is_not_where_the_command_promised():
    # A node that never answered get_state must not let startup report "all active".
    states = {"robot": A, "perception": A, "policy": U, "teleop": State.UNKNOWN}
    assert unmet(Command.STARTUP, ORDER, states) == [
        "policy is unconfigured (expected active)", "teleop did not report its state (expected active)"]
    assert unmet(Command.STARTUP, ORDER, {n: A for n in ORDER}) == []
    assert unmet(Command.PAUSE, ORDER, {n: I for n in ORDER}) == []
    assert unmet(Command.PAUSE, ORDER, {**{n: I for n in ORDER}, "teleop": A}) == [
        "teleop is active (expected inactive or unconfigured)"]
    # A node whose process is gone is down: shutdown does not wait on it.
    assert unmet(Command.SHUTDOWN, ORDER, {**{n: State.FINALIZED for n in ORDER}, "robot": State.UNKNOWN}) == []


def test_heartbeat_publisher_is_bound_only_when_exactly_the_node_publishes():
    own = Endpoint("/teleop", b"\x01" * 16)
    forger = Endpoint("/intruder", b"\x02" * 16)
    twin = Endpoint("/teleop", b"\x03" * 16)
    assert pick_heartbeat_publisher("/teleop", []) == (None, "")
    assert pick_heartbeat_publisher("/teleop", [own]) == (own.gid, "")
    # Discovery can show an endpoint before the node that owns it: wait rather than cry forgery.
    unnamed = Endpoint("_NODE_NAMESPACE_UNKNOWN_/_NODE_NAME_UNKNOWN_", own.gid)
    assert pick_heartbeat_publisher("/teleop", [unnamed]) == (None, "")
    gid, why = pick_heartbeat_publisher("/teleop", [forger])
    assert gid is None and "published by /intruder" in why
    gid, why = pick_heartbeat_publisher("/teleop", [own, twin])
    assert gid is None and "2 publishers on /teleop/heartbeat" in why and DUPLICATE_FIX in why


def test_graph_faults_name_a_duplicate_node_and_a_second_heartbeat_publisher():
    own = Endpoint("/teleop", b"\x01" * 16)
    names = ["/robot", "/teleop", "/lifecycle_manager", "/probe"]
    assert graph_faults(["/robot", "/teleop"], names, {"/teleop": [own]}, {"/teleop": own.gid}) == []
    faults = graph_faults(["/robot", "/teleop"], names + ["/robot"], {"/teleop": [own]}, {"/teleop": own.gid})
    assert faults == [f"2 nodes answer to /robot on this ROS domain; {DUPLICATE_FIX}"]
    stranger = Endpoint("/bag_player", b"\x09" * 16)
    faults = graph_faults(["/robot", "/teleop"], names, {"/teleop": [own, stranger]}, {"/teleop": own.gid})
    assert len(faults) == 1 and "a second publisher on /teleop/heartbeat: /bag_player" in faults[0]
    # Before binding, publishers are judged at start-up (pick_heartbeat_publisher), not here.
    assert graph_faults(["/teleop"], names, {"/teleop": [own, stranger]}, {}) == []


def test_forged_heartbeats_keep_no_node_alive():
    own, forged = b"\x01" * 16, b"\x02" * 16
    mon = HeartbeatMonitor(nodes=["a"], timeout=1.0)
    assert not mon.beat("a", 0.0, 3, publisher=own)  # nothing bound yet: nothing counts
    mon.bind("a", own)
    mon.arm(now=0.0)
    assert mon.beat("a", 0.5, 3, publisher=own)
    for t in (1.0, 1.4, 1.8):
        assert not mon.beat("a", t, 3, publisher=forged)
        assert not mon.beat("a", t, 3, publisher=None)
    assert mon.foreign["a"] == 6
    assert mon.lost(now=1.6) == ["a"]  # the last beat that counts was at 0.5 s


def test_without_per_message_gids_a_second_publisher_on_the_topic_ends_all_trust():
    """rclpy before Kilted: beats carry no publisher GID; once the graph shows a stranger, none counts."""
    mon = HeartbeatMonitor(nodes=["a"], timeout=1.0)
    mon.bind("a", b"g")
    mon.arm(now=0.0)
    assert mon.beat("a", 0.5, 3, publisher=GRAPH_ONLY)
    mon.distrust("a")
    assert not mon.beat("a", 1.0, 3, publisher=GRAPH_ONLY)
    assert mon.lost(now=1.6) == ["a"]
    assert mon.beat("a", 1.7, 3, publisher=b"g")  # a GID, where given, still identifies the node's own beats


def test_a_node_in_a_transition_is_judged_again_from_its_release():
    mon = HeartbeatMonitor(nodes=["a"], timeout=1.0)
    mon.bind("a", b"g")
    mon.arm(now=0.0)
    mon.hold("a")
    assert mon.lost(now=5.0) == []
    mon.release("a", now=5.0)
    assert mon.lost(now=5.5) == []
    assert mon.lost(now=6.1) == ["a"]


def test_heartbeat_monitor_judges_only_when_armed():
    mon = HeartbeatMonitor(nodes=["a", "b"], timeout=1.0)
    mon.bind("a", b"a")
    mon.bind("b", b"b")
    mon.beat("a", 0.0, 3, publisher=b"a")
    assert mon.lost(now=100.0) == []
    mon.arm(now=10.0)
    mon.beat("a", 10.5, 3, publisher=b"a")
    assert mon.lost(now=10.9) == []
    assert mon.lost(now=11.2) == ["b"]          # never heard from since arming
    assert mon.lost(now=11.6) == ["a", "b"]
    mon.beat("b", 11.6, 3, "boom", publisher=b"b")
    assert mon.lost(now=11.7) == ["a"] and mon.error["b"] == "boom"
    assert mon.state["b"] == State.ACTIVE
    mon.beat("stranger", 11.7, 3, publisher=b"a")
    assert "stranger" not in mon.last
