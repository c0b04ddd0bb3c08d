"""Faults against running graphs in real processes: SIGKILL of every node (the lifecycle manager included), a
stray /clock publisher while the only command source goes silent, a flood on every input, and a second graph on
the same ROS domain. The robot must end up with a safe command path every time.

"Safe command path": /cmd_vel carries zeros or nothing, and the robot stands still. The bound on the time to it
is the heartbeat timeout plus one control period, plus SCHEDULING_MARGIN_S for this shared CI machine.
VLA_FUZZ_FLOOD_S sets the flood's length (default 10 s).
"""
from __future__ import annotations

import os
import re
import time

import pytest

from vla_tools.fuzz_faults import clock_attack, flood, forged_heartbeats, kill_node, second_graph, shield_only_profile
from vla_tools.fuzz_graph import Graph

pytestmark = pytest.mark.ros

HEARTBEAT_TIMEOUT = 1.0
CONTROL_PERIOD = 0.1   # the shield's rate (params/safety_shield.yaml: 10 Hz)
SCHEDULING_MARGIN_S = 0.3
SIM_NODES = ["sim_robot", "safety_shield", "perception", "language", "policy", "teleop", "lifecycle_manager"]


@pytest.fixture
def sim_graph(tmp_path):
    graph = Graph("sim", [f"lifecycle_manager.heartbeat_timeout={HEARTBEAT_TIMEOUT}"], log_dir=tmp_path)
    graph.start()
    yield graph
    graph.stop()


@pytest.mark.parametrize("node", SIM_NODES)
def test_sigkill_leaves_a_safe_command_path(sim_graph, node):
    result = kill_node(sim_graph, node, HEARTBEAT_TIMEOUT)
    assert result.commands_before > 0, "the expert never drove: nothing to stop"
    figures = result.as_dict()
    assert result.safe_after_s is not None, f"still commanding motion {HEARTBEAT_TIMEOUT + 4:g} s after " \
                                            f"SIGKILL of {node}: {figures}"
    assert result.safe_after_s < HEARTBEAT_TIMEOUT + CONTROL_PERIOD + SCHEDULING_MARGIN_S, figures
    assert result.nonzero_after_detection == 0, figures
    assert result.robot_stopped, figures


def test_stray_clock_cannot_keep_a_silent_command_alive(tmp_path):
    with Graph(shield_only_profile(tmp_path), log_dir=tmp_path) as graph:
        result = clock_attack(graph)
    figures = result.as_dict()
    # The attack really ran: stray /clock messages went out over its last second (50 Hz asked; one is enough to
    # throw the clock forward, and a busy machine delays the attacker's thread).
    assert result.attack_messages >= 10, figures
    # The shield's command timeout (teleop_timeout 0.5 s) plus one control period, plus the margin.
    assert result.stop_after_s is not None, f"the shield kept forwarding the silent source's command: {figures}"
    assert result.stop_after_s < 0.5 + CONTROL_PERIOD + SCHEDULING_MARGIN_S, figures


def test_flood_keeps_every_node_up_with_flat_memory(tmp_path):
    seconds = float(os.environ.get("VLA_FUZZ_FLOOD_S", 10))
    with Graph("record", [f"recorder.root={tmp_path / 'data'}"], log_dir=tmp_path) as graph:
        rss = flood(graph, seconds)
        active, why = graph.all_active()
        unsafe = graph.commands.unsafe_commands()
    assert active, why
    assert not unsafe, unsafe[:5]
    grew = {n: r for n, r in rss.items() if not n.startswith("_") and not r["growth_pct"] < 10.0}
    assert not grew, f"RSS grew by 10 % or more under a {seconds:g} s flood ({rss['_messages']} messages): {grew}"


def test_second_graph_on_the_same_domain_is_refused(sim_graph):
    code, output = second_graph("sim", timeout=90)
    active, why = sim_graph.all_active()
    assert code not in (None, 0), f"a second 'vla up sim' on the same domain was not refused:\n{output[-2000:]}"
    assert re.search(r"already|duplicate|another", output, re.IGNORECASE), output[-2000:]
    assert active, f"the first graph was disturbed: {why}"


def test_forged_heartbeats_crash_nothing_and_fool_nobody(sim_graph):
    before = time.monotonic()
    result = forged_heartbeats(sim_graph, "teleop")
    assert not result["dead"], result
    # Either the forgeries are ignored (the graph stays active) or they are named as such and the graph stops.
    if result["phase"] != "active":
        assert re.search(r"forged|another publisher|second node", result["reason"]), result
        stopped_at = next(t for t, m, _ in sim_graph.status_history if t > before and m.phase != "active")
        late = [t for t, v in sim_graph.commands.after(stopped_at + HEARTBEAT_TIMEOUT + CONTROL_PERIOD)
                if any(abs(x) > 1e-9 for x in v)]
        assert not late, f"{len(late)} non-zero commands after the manager stopped the graph"
    assert not sim_graph.commands.unsafe_commands()
