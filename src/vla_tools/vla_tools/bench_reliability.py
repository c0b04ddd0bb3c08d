"""`vla bench reliability`: the fuzz harness and the fault scenarios of test/test_fuzz_*.py, as figures.

Figures: messages tried per topic, service and action; crashes (each with the input that caused it); bad inputs
sent vs rejects counted on /diagnostics, per node; unsafe commands on /cmd_vel; per node (the lifecycle manager
included) the time from SIGKILL to a safe command path and the non-zero commands after the loss was detected;
how long a silent command survives a stray /clock; RSS growth under a flood; whether a second graph on the
domain is refused. VLA_FUZZ_EXAMPLES sets the generated messages per target (default 20; --quick: 5).
"""
from __future__ import annotations

import collections
import os
import tempfile
from pathlib import Path

from vla_tools.fuzz_artifacts import load_policy_cases
from vla_tools.fuzz_faults import clock_attack, flood, kill_node, second_graph, shield_only_profile
from vla_tools.fuzz_graph import Fuzzer, Graph, examples_per_target

HEARTBEAT_TIMEOUT = 1.0
CONTROL_PERIOD = 0.1
ENCODER = "sentence-transformers/all-MiniLM-L6-v2"
KILLED = ["sim_robot", "safety_shield", "perception", "language", "policy", "teleop", "lifecycle_manager"]


def bench_reliability(args, say) -> dict:
    examples = 5 if args.quick and "VLA_FUZZ_EXAMPLES" not in os.environ else examples_per_target()
    result: dict = {"bench": "reliability", "examples_per_target": examples}
    with tempfile.TemporaryDirectory(prefix="vla-reliability-") as tmp:
        tmp = Path(tmp)
        result.update(_fuzz(tmp, examples, say))
        result.update(_kills(tmp, say))
        result.update(_clock(tmp, say))
        result.update(_flood(tmp, 5.0 if args.quick else 20.0, say))
        result.update(_duplicate(tmp, say))
    return result


def _fuzz(tmp: Path, examples: int, say) -> dict:
    from vla_interfaces.srv import LoadPolicy
    from vla_policy.fixtures import make_artifact
    cases = load_policy_cases(tmp / "models", lambda m, v, b: make_artifact(m, v, bias=b, encoder=ENCODER),
                              LoadPolicy.Request)
    sets = [f"recorder.root={tmp / 'data'}", f"policy.models_dir={tmp / 'models'}", "policy.artifact=tiny/good",
            "policy.engines=[onnxruntime-cpu]"]
    graph = Graph(os.environ.get("VLA_FUZZ_PROFILE", "record"), sets, log_dir=tmp)
    graph.start()
    try:
        fuzzer = Fuzzer(graph, examples, say=say,
                        extra_cases=lambda t: cases if t.name == "/policy/load_policy" else [])
        report = fuzzer.run()
        active, why = graph.all_active()
    finally:
        graph.stop()
    kinds = {k: [f for f in report.findings if f.kind == k]
             for k in ("crash", "not_active", "no_answer", "accepted_bad_input", "unsafe_command")}
    for finding in report.findings:
        say(finding.text())
    # Per node: the bad inputs sent on its topics, every input sent on them (generated ones are often bad too),
    # and the rejects it counted on /diagnostics meanwhile.
    topic_sent = collections.Counter()
    for label, stats in report.stats.items():
        node, kind = label.split(" ")[:2]
        if kind == "topic":
            topic_sent[node] += stats.sent
    rejects = {n: {"sent": s, "all_sent": topic_sent[n], "counted": report.rejects_counted[n]}
               for n, s in sorted(report.bad_sent.items())}
    tried = {label: s.sent for label, s in sorted(report.stats.items())}
    say(f"messages tried: {sum(tried.values())} over {len(tried)} targets; crashes: {len(kinds['crash'])}; "
        f"graph restarts: {report.restarts}; unsafe commands: {len(kinds['unsafe_command'])}")
    for node, r in rejects.items():
        say(f"  {node}: {r['sent']} known-bad inputs sent ({r['all_sent']} inputs in all), "
            f"{r['counted']} rejects counted")
    say(f"after fuzzing: {why}")
    return {"messages_tried": tried, "messages_total": sum(tried.values()), "crashes": len(kinds["crash"]),
            "crash_inputs": [f"{f.node} via {f.target}: {f.message}" for f in kinds["crash"]],
            "left_active": len(kinds["not_active"]), "unanswered": len(kinds["no_answer"]),
            "bad_inputs_accepted": len(kinds["accepted_bad_input"]), "rejects": rejects,
            "rejects_all_counted": all(r["counted"] >= r["sent"] for r in rejects.values()),
            "unsafe_commands": len(kinds["unsafe_command"]), "all_active_after": active, "graph_restarts":
            report.restarts}


def _kills(tmp: Path, say) -> dict:
    goal = HEARTBEAT_TIMEOUT + CONTROL_PERIOD
    out = {}
    for node in KILLED:
        with Graph("sim", [f"lifecycle_manager.heartbeat_timeout={HEARTBEAT_TIMEOUT}"], log_dir=tmp) as graph:
            r = kill_node(graph, node, HEARTBEAT_TIMEOUT)
        out[node] = r.as_dict()
        safe = "never" if r.safe_after_s is None else f"{r.safe_after_s:.2f} s"
        say(f"SIGKILL {node}: safe command path after {safe} (goal < {goal:.1f} s), "
            f"{r.nonzero_after_detection} non-zero commands after detection, robot stopped: {r.robot_stopped}")
    return {"sigkill_goal_s": goal, "sigkill": out,
            "nonzero_after_detection": sum(r["nonzero_after_detection"] for r in out.values())}


def _clock(tmp: Path, say) -> dict:
    with Graph(shield_only_profile(tmp), log_dir=tmp) as graph:
        r = clock_attack(graph)
    stop = "never" if r.stop_after_s is None else f"{r.stop_after_s:.2f} s"
    say(f"/clock = 1e6 s at 50 Hz, then the only command source silent: commands stopped after {stop}; "
        f"{r.nonzero_after_silence} non-zero commands after the silence")
    return {"clock_attack": r.as_dict()}


def _flood(tmp: Path, seconds: float, say) -> dict:
    with Graph("record", [f"recorder.root={tmp / 'flood-data'}"], log_dir=tmp) as graph:
        rss = flood(graph, seconds)
        active, why = graph.all_active()
    messages = rss.pop("_messages")
    growth = {n: r["growth_pct"] for n, r in rss.items()}
    worst = max(growth, key=lambda n: growth[n])
    say(f"flood of {messages} messages in {seconds:g} s: largest RSS growth {growth[worst]:.1f} % ({worst}); {why}")
    return {"flood_messages": messages, "flood_rss_growth_pct": growth, "flood_rss_growth_max_pct": growth[worst],
            "flood_all_active_after": active}


def _duplicate(tmp: Path, say) -> dict:
    with Graph("sim", log_dir=tmp) as graph:
        code, output = second_graph("sim", timeout=90)
        active, _ = graph.all_active()
    refused = code not in (None, 0)
    last = output.strip().splitlines()[-1] if output.strip() else ""
    say(f"second 'vla up sim' on the same domain: {'refused' if refused else 'NOT refused'} ({last[:160]}); "
        f"first graph still active: {active}")
    return {"duplicate_graph_refused": refused, "duplicate_first_graph_active": active}
