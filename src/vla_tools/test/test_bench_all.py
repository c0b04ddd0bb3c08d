"""`vla bench all`: selection, failure handling and the report.

The real benchmarks take minutes each, so most tests inject a stand-in runner (``run(name, timeout) ->
(returncode, stdout)``) that replays what a bench process would print; this is the one place a stand-in is
used. ``subprocess_runner`` itself is checked against real child processes with a tiny script, and the CLI
parser is the real one.
"""
import json
import subprocess
import sys
from datetime import datetime, timezone

import pytest

from vla_tools import bench_all
from vla_tools.bench_all import bench_command, flatten, run_all, run_one, select, subprocess_runner
from vla_tools.cli import build_parser
from vla_core.errors import ConfigError

NOW = datetime(2025, 3, 4, 5, 6, 7, tzinfo=timezone.utc)
MACHINE = {"cpu": "Test CPU @ 3 GHz", "cpu_cores": 2, "ram_gib": 7.8, "torch": "2.5.0", "onnxruntime": None,
           "gpu": None}

OUTPUTS = {
    "policy": (0, 'warming up\ntick p50 1.2 ms\n{"bench": "policy", "tick_30hz": {"p50_ms": 1.2, "p99_ms": 3.4}, '
                  '"engine": "onnx|cpu"}\n'),
    "recorder": (1, 'writing episodes\nTraceback (most recent call last):\nRuntimeError: disk full\n'),
    "safety": None,  # times out
    "sim": (0, '{"bench": "sim"}\nshutting down cleanly\n'),
}


def fake_run(calls):
    def run(name, timeout):
        calls.append((name, timeout))
        if OUTPUTS[name] is None:
            raise subprocess.TimeoutExpired(["vla", "bench", name], timeout, output="started\nstill going\n")
        return OUTPUTS[name]
    return run


@pytest.fixture
def ran(tmp_path):
    calls, lines = [], []
    code, final = run_all(sorted(OUTPUTS), fake_run(calls), tmp_path / "reports", timeout_s=42.0,
                          say=lines.append, machine=MACHINE, now=NOW)
    return code, final, calls, lines, tmp_path / "reports"


def test_every_bench_runs_in_order_with_the_timeout_and_failures_give_a_nonzero_exit(ran):
    code, final, calls, lines, _ = ran
    assert calls == [("policy", 42.0), ("recorder", 42.0), ("safety", 42.0), ("sim", 42.0)]
    assert code == 1
    assert final["benches"] == {
        "policy": "ok",
        "recorder": "failed: exit code 1",
        "safety": "failed: timed out after 42 s",
        "sim": "failed: last line is not a JSON object: 'shutting down cleanly'",
    }
    assert lines[0].startswith("[1/4] bench policy: running (timeout 42 s")
    assert any(line.startswith("[4/4] bench sim: failed: last line") for line in lines)
    assert "1/4 benches ok (failed: recorder, safety, sim)" in lines[-1]
    json.dumps(final)  # the CLI prints it as the last line


def test_json_report_holds_results_failures_and_machine(ran):
    _, final, _, _, reports = ran
    path = reports / "bench-20250304T050607Z.json"
    assert final["report"] == str(path) and final["markdown"] == str(path.with_suffix(".md"))
    report = json.loads(path.read_text())
    assert report["machine"] == MACHINE and report["timeout_s"] == 42.0
    assert report["created"] == "2025-03-04T05:06:07+00:00"
    by_name = {r["name"]: r for r in report["results"]}
    assert by_name["policy"]["result"]["tick_30hz"] == {"p50_ms": 1.2, "p99_ms": 3.4}
    assert "RuntimeError: disk full" in by_name["recorder"]["output_tail"]
    assert by_name["safety"]["output_tail"] == "started\nstill going"
    assert by_name["sim"]["reason"].startswith("last line is not a JSON object")
    assert all("result" not in by_name[n] for n in ("recorder", "safety", "sim"))


def test_markdown_report_has_a_table_per_bench(ran):
    md = (ran[4] / "bench-20250304T050607Z.md").read_text()
    assert "| cpu | Test CPU @ 3 GHz |" in md
    assert "| policy | ok |" in md and "| recorder | failed: exit code 1 |" in md
    assert "## policy" in md and "| tick_30hz.p99_ms | 3.4 |" in md
    assert "| engine | onnx\\|cpu |" in md  # a pipe in a value does not break the table
    assert "## safety" in md and "**failed**: timed out after 42 s" in md
    assert "RuntimeError: disk full" in md.split("## recorder")[1]


def test_all_ok_exits_zero(tmp_path):
    code, final = run_all(["policy"], fake_run([]), tmp_path, say=lambda m: None, machine=MACHINE, now=NOW)
    assert code == 0 and final["benches"] == {"policy": "ok"}


@pytest.mark.parametrize("out, reason", [
    ("", "last line is not a JSON object: ''"),
    ("[1, 2]\n", "last line is not a JSON object: '[1, 2]'"),
    ('{"a": 1}\n\n  \n', None),  # trailing blank lines are not the last line
])
def test_last_line_contract(out, reason):
    entry = run_one("x", lambda name, timeout: (0, out), 1.0)
    assert (entry.get("reason"), entry["status"]) == (reason, "failed" if reason else "ok")


def test_a_runner_that_cannot_start_is_a_failure_not_a_crash():
    def run(name, timeout):
        raise FileNotFoundError("no such file: python")
    assert run_one("x", run, 1.0)["reason"].startswith("could not start")


def test_only_and_skip():
    available = ["sim", "policy", "train", "safety"]
    assert select(available) == ["policy", "safety", "sim", "train"]
    assert select(available, only="sim, policy") == ["policy", "sim"]
    assert select(available, skip="train") == ["policy", "safety", "sim"]
    assert select(available, only="sim,policy", skip="sim") == ["policy"]
    with pytest.raises(ConfigError, match="unknown benchmark.*polcy.*available: policy, safety, sim, train"):
        select(available, only="polcy")
    with pytest.raises(ConfigError, match="no benchmark"):
        select(available, only="sim", skip="sim")


def test_flatten_nested_figures():
    assert flatten({"a": 1, "b": {"c": 2, "d": {"e": 3}}, "f": {}}) == [("a", 1), ("b.c", 2), ("b.d.e", 3), ("f", {})]


def test_bench_command_runs_the_cli_with_this_interpreter():
    assert bench_command("sim", ["--quick"]) == [sys.executable, "-m", "vla_tools.cli", "bench", "sim", "--quick"]


def test_subprocess_runner_real_processes():
    """The real runner against tiny scripts: stdout alone on success, stderr joins on failure, timeouts kill."""
    scripts = {
        "good": "import sys; print('x', file=sys.stderr); print('{\"ok\": 1}')",
        "bad": "import sys; print('partial'); sys.exit('boom')",
        "slow": "import time; print('started', flush=True); time.sleep(60)",
    }
    echoed = []
    run = subprocess_runner(echo=echoed.append, command=lambda name, extra: [sys.executable, "-c", scripts[name]])
    assert run("good", 30) == (0, '{"ok": 1}\n')
    assert any(line.startswith("good ") and line.endswith("| x") for line in echoed)
    code, out = run("bad", 30)
    assert code == 1 and out == "partial\nboom\n"
    with pytest.raises(subprocess.TimeoutExpired) as exc:
        run("slow", 0.5)
    assert exc.value.output == "started\n"


def test_cli_parser_knows_bench_all_and_its_flags(capsys):
    parser = build_parser()
    args = parser.parse_args(["bench", "all", "--timeout", "60", "--only", "sim,policy", "--skip", "train"])
    assert (args.name, args.timeout, args.only, args.skip) == ("all", 60.0, "sim,policy", "train")
    assert parser.parse_args(["bench", "sim"]).timeout == 900.0
    with pytest.raises(SystemExit):
        parser.parse_args(["bench", "--help"])
    assert "'all' runs every benchmark" in capsys.readouterr().out


def test_bench_all_cli_rejects_an_unknown_name_before_running_anything(capsys):
    from vla_tools.cli import main
    assert main(["bench", "all", "--only", "no_such_bench"]) == 2
    assert "unknown benchmark(s) no_such_bench" in capsys.readouterr().err


def test_machine_info_describes_this_machine():
    info = bench_all.machine_info()
    assert info["cpu"] and info["cpu_cores"] >= 1 and info["ram_gib"] > 0
    assert set(info) >= {"torch", "onnxruntime", "gpu", "python"}
