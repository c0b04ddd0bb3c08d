"""Fuzzing a running graph: every subscribed topic, service and action of every node of the record profile (the
policy serving a real artifact) gets its edge cases and hypothesis-drawn messages; afterwards every node must be
alive and ACTIVE, every bad input counted, and every command on /cmd_vel finite and within the shield's limits.

The run is done once for the module and each property is its own test, so a report names every broken one.
VLA_FUZZ_EXAMPLES sets the generated messages per target (default 20; a nightly run uses e.g. 2000);
VLA_FUZZ_PROFILE picks the profile (record; continual adds the trainer).
"""
from __future__ import annotations

import os

import pytest

from vla_tools.fuzz_artifacts import load_policy_cases
from vla_tools.fuzz_graph import Fuzzer, Graph
from vla_interfaces.srv import LoadPolicy
from vla_policy.fixtures import make_artifact

pytestmark = pytest.mark.ros

ENCODER = "sentence-transformers/all-MiniLM-L6-v2"


def good_artifact(models, version, bias):
    return make_artifact(models, version, bias=bias, encoder=ENCODER)


def fuzz_sets(tmp) -> list[str]:
    """A graph that records into ``tmp`` and serves a small real policy from ``tmp``/models."""
    return [f"recorder.root={tmp / 'data'}", f"policy.models_dir={tmp / 'models'}", "policy.artifact=tiny/good",
            "policy.engines=[onnxruntime-cpu]"]


@pytest.fixture(scope="module")
def fuzzed(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("fuzz")
    cases = load_policy_cases(tmp / "models", good_artifact, LoadPolicy.Request)
    graph = Graph(os.environ.get("VLA_FUZZ_PROFILE", "record"), fuzz_sets(tmp), log_dir=tmp)
    graph.start()
    try:
        fuzzer = Fuzzer(graph, say=print,
                        extra_cases=lambda t: cases if t.name == "/policy/load_policy" else [])
        report = fuzzer.run()
        active, why = graph.all_active()
        print("bad inputs sent / rejects counted per node:",
              {n: (s, report.rejects_counted[n]) for n, s in report.bad_sent.items()})
        yield report, active, why
    finally:
        graph.stop()


def test_no_input_crashes_a_node(fuzzed):
    report = fuzzed[0]
    assert not report.crashes(), "\n".join(f.text() for f in report.crashes())


def test_every_node_stays_active(fuzzed):
    report, active, why = fuzzed
    left = [f for f in report.findings if f.kind == "not_active"]
    assert not left, "\n".join(f.text() for f in left)
    assert active, why


def test_every_service_and_action_answers(fuzzed):
    hung = [f for f in fuzzed[0].findings if f.kind == "no_answer"]
    assert not hung, "\n".join(f.text() for f in hung)


def test_no_unsafe_command_reaches_the_robot(fuzzed):
    unsafe = [f for f in fuzzed[0].findings if f.kind == "unsafe_command"]
    assert not unsafe, "\n".join(f.text() for f in unsafe[:20])


def test_bad_requests_and_artifacts_are_refused(fuzzed):
    accepted = [f for f in fuzzed[0].findings if f.kind == "accepted_bad_input"]
    assert not accepted, "\n".join(f.text() for f in accepted)


def test_rejects_are_counted_where_anyone_can_see_them(fuzzed):
    report = fuzzed[0]
    uncounted = {node: (sent, report.rejects_counted[node]) for node, sent in report.bad_sent.items()
                 if report.rejects_counted[node] < sent}
    assert not uncounted, ("bad inputs sent vs rejects counted on /diagnostics, per node: "
                           + ", ".join(f"{n}: {s} sent, {c} counted" for n, (s, c) in uncounted.items()))


def test_every_target_was_tried(fuzzed):
    report = fuzzed[0]
    tried = {label: s.sent for label, s in report.stats.items()}
    assert any("/policy/load_policy" in label for label in tried), tried
    assert any("/safety_shield" in label or "teleop/cmd_vel" in label for label in tried), tried
    assert all(sent > 0 for sent in tried.values()), tried
