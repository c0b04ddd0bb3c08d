"""`vla bench all`: every registered benchmark, one after another, each in its own process.

A bench that crashes, hangs past its timeout or breaks the output contract (its last stdout line is one JSON
object) is recorded as failed and the rest still run. The results and a description of the machine go to
``reports/bench-<UTC timestamp>.json`` and a markdown rendering to ``reports/bench-<UTC timestamp>.md``.

The runner is a parameter, ``run(name, timeout_s) -> (returncode, stdout)``, raising
``subprocess.TimeoutExpired`` (with what was printed so far as ``output``) when the bench overran; the real one
is ``subprocess_runner``. No rclpy here.
"""
from __future__ import annotations

import json
import os
import platform
import re
import signal
import subprocess
import sys
import threading
import time
from datetime import datetime, timezone
from pathlib import Path
from typing import Callable

from vla_core.errors import ConfigError

Runner = Callable[[str, float], "tuple[int, str]"]

TAIL_LINES = 30
_KILL_GRACE_S = 5.0


# ---- selection -----------------------------------------------------------------------------------------------

def _names(text: str | None) -> list[str]:
    return [n.strip() for n in (text or "").split(",") if n.strip()]


def select(available: list[str], only: str | None = None, skip: str | None = None) -> list[str]:
    """The benches to run, in sorted order: ``only`` and ``skip`` are comma-separated names.

    Raises ConfigError naming every unknown name and the available ones (a typo must not silently skip a bench).
    """
    only_names, skip_names = _names(only), _names(skip)
    unknown = [n for n in only_names + skip_names if n not in available]
    if unknown:
        raise ConfigError(f"unknown benchmark(s) {', '.join(unknown)} in --only/--skip; "
                          f"available: {', '.join(sorted(available))}")
    chosen = [n for n in sorted(available) if (not only_names or n in only_names) and n not in skip_names]
    if not chosen:
        raise ConfigError("--only/--skip leave no benchmark to run")
    return chosen


# ---- running -------------------------------------------------------------------------------------------------

_ANSI = re.compile(r"\x1b\[[0-9;?]*[A-Za-z]")


def _tail(text: str, lines: int = TAIL_LINES) -> str:
    """The last ``lines`` lines, without terminal colour codes (the report is read in files, not terminals)."""
    return "\n".join(_ANSI.sub("", text).rstrip().splitlines()[-lines:])


def run_one(name: str, run: Runner, timeout_s: float) -> dict:
    """One bench through ``run``: {"name", "status": "ok" | "failed", "seconds", and "result" (the bench's dict)
    or "reason" and "output_tail"}."""
    t0 = time.monotonic()
    try:
        code, out = run(name, timeout_s)
    except subprocess.TimeoutExpired as exc:
        out = exc.output.decode(errors="replace") if isinstance(exc.output, bytes) else (exc.output or "")
        return _failed(name, t0, f"timed out after {timeout_s:g} s", out)
    except OSError as exc:
        return _failed(name, t0, f"could not start: {exc}", "")
    if code != 0:
        return _failed(name, t0, f"exit code {code}", out)
    lines = [line for line in out.splitlines() if line.strip()]
    last = lines[-1].strip() if lines else ""
    try:
        result = json.loads(last)
    except ValueError:
        result = None
    if not isinstance(result, dict):
        shown = last if len(last) <= 80 else last[:77] + "..."
        return _failed(name, t0, f"last line is not a JSON object: {shown!r}", out)
    return {"name": name, "status": "ok", "seconds": round(time.monotonic() - t0, 2), "result": result}


def _failed(name: str, t0: float, reason: str, output: str) -> dict:
    return {"name": name, "status": "failed", "seconds": round(time.monotonic() - t0, 2), "reason": reason,
            "output_tail": _tail(output)}


def status_text(entry: dict) -> str:
    return "ok" if entry["status"] == "ok" else f"failed: {entry['reason']}"


def bench_command(name: str, extra_args: list[str] | None = None) -> list[str]:
    """The command line of one bench: this interpreter running the `vla` CLI."""
    return [sys.executable, "-m", "vla_tools.cli", "bench", name, *(extra_args or [])]


def subprocess_runner(extra_args: list[str] | None = None, echo: Callable[[str], None] | None = None,
                      command: Callable[[str, list[str]], list[str]] = bench_command) -> Runner:
    """A runner that starts ``command(name, extra_args)`` (by default ``python -m vla_tools.cli bench NAME
    [extra_args]``) in its own session.

    Each output line is passed to ``echo`` as it arrives (stderr lines too), prefixed with the bench's name
    and the seconds since it started. Returns stdout alone when the
    bench exits 0 (so its last line is the bench's own), stdout then stderr otherwise (the traceback belongs in
    the failure's tail). On timeout the whole process group (the bench and whatever it started) gets SIGTERM,
    then SIGKILL after a grace period, and ``subprocess.TimeoutExpired`` is raised.
    """
    def run(name: str, timeout_s: float) -> tuple[int, str]:
        cmd = command(name, list(extra_args or []))
        proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, bufsize=1,
                                start_new_session=True, env={**os.environ, "PYTHONUNBUFFERED": "1"})
        streams: dict[str, list[str]] = {"out": [], "err": []}
        t0 = time.monotonic()

        def pump(pipe, key: str) -> None:
            for line in pipe:
                streams[key].append(line)
                if echo is not None:
                    echo(f"{name} {time.monotonic() - t0:6.1f} s | {line.rstrip()}")
        readers = [threading.Thread(target=pump, args=(proc.stdout, "out"), daemon=True),
                   threading.Thread(target=pump, args=(proc.stderr, "err"), daemon=True)]
        for reader in readers:
            reader.start()
        try:
            code = proc.wait(timeout_s)
        except subprocess.TimeoutExpired:
            _stop_group(proc)
            for reader in readers:
                reader.join(2.0)
            raise subprocess.TimeoutExpired(cmd, timeout_s, output="".join(streams["out"] + streams["err"]))
        for reader in readers:
            reader.join(10.0)
        out = "".join(streams["out"])
        return code, out if code == 0 else out + "".join(streams["err"])
    return run


def _stop_group(proc: subprocess.Popen) -> None:
    for sig, wait_s in ((signal.SIGTERM, _KILL_GRACE_S), (signal.SIGKILL, 10.0)):
        try:
            os.killpg(proc.pid, sig)
        except ProcessLookupError:
            return
        try:
            proc.wait(wait_s)
            return
        except subprocess.TimeoutExpired:
            continue


# ---- machine -------------------------------------------------------------------------------------------------

def _cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.lower().startswith(("model name", "hardware", "cpu model")):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def _ram_gib() -> float | None:
    try:
        return round(os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") / 2**30, 1)
    except (ValueError, OSError, AttributeError):
        return None


def _version(dist: str) -> str | None:
    from importlib.metadata import PackageNotFoundError, version
    try:
        return version(dist)
    except PackageNotFoundError:
        return None


def machine_info() -> dict:
    """CPU model, cores (total and usable by this process), RAM (GiB), Python, torch, onnxruntime, GPU."""
    info = {"cpu": _cpu_model(), "cpu_cores": os.cpu_count(),
            "cpu_cores_usable": len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else None,
            "ram_gib": _ram_gib(), "platform": platform.platform(), "python": platform.python_version(),
            "torch": _version("torch"),
            "onnxruntime": _version("onnxruntime") or _version("onnxruntime-gpu"), "gpu": None}
    if info["torch"]:
        try:
            import torch
            if torch.cuda.is_available():
                info["gpu"] = [torch.cuda.get_device_name(i) for i in range(torch.cuda.device_count())]
                info["cuda"] = torch.version.cuda
        except Exception as exc:  # a broken CUDA install must not lose the benchmark report
            info["gpu"] = f"unknown ({type(exc).__name__}: {exc})"
    return info


# ---- report --------------------------------------------------------------------------------------------------

def flatten(result: dict, prefix: str = "") -> list[tuple[str, object]]:
    """Nested dicts as dotted keys: {"a": {"b": 1}} -> [("a.b", 1)]."""
    rows: list[tuple[str, object]] = []
    for key, value in result.items():
        if isinstance(value, dict) and value:
            rows.extend(flatten(value, f"{prefix}{key}."))
        else:
            rows.append((f"{prefix}{key}", value))
    return rows


def _md(value) -> str:
    text = json.dumps(value) if isinstance(value, (list, dict)) else str(value)
    return text.replace("|", "\\|").replace("\n", " ")


def markdown(report: dict) -> str:
    lines = [f"# Benchmarks, {report['created']}", "", "| machine | |", "|---|---|"]
    lines += [f"| {_md(k)} | {_md(v)} |" for k, v in report["machine"].items()]
    lines += ["", "| bench | status | seconds |", "|---|---|---:|"]
    lines += [f"| {_md(e['name'])} | {_md(status_text(e))} | {e['seconds']:.1f} |" for e in report["results"]]
    for entry in report["results"]:
        lines += ["", f"## {entry['name']}", ""]
        if entry["status"] == "ok":
            lines += ["| figure | value |", "|---|---:|"]
            lines += [f"| {_md(k)} | {_md(v)} |" for k, v in flatten(entry["result"])]
        else:
            lines += [f"**failed**: {_md(entry['reason'])}", "", "```", entry["output_tail"] or "(no output)", "```"]
    return "\n".join(lines) + "\n"


def write_report(report: dict, reports_dir: Path, stamp: str) -> tuple[Path, Path]:
    reports_dir = Path(reports_dir)
    reports_dir.mkdir(parents=True, exist_ok=True)
    json_path = reports_dir / f"bench-{stamp}.json"
    md_path = reports_dir / f"bench-{stamp}.md"
    json_path.write_text(json.dumps(report, indent=2, default=str) + "\n")
    md_path.write_text(markdown(report))
    return json_path, md_path


def run_all(names: list[str], run: Runner, reports_dir: Path, timeout_s: float = 900.0, say=print,
            machine: dict | None = None, now: datetime | None = None) -> tuple[int, dict]:
    """Run ``names`` in order through ``run`` and write the report.

    Returns (exit code: 0 when every bench is ok, else 1; the final line's object
    {"report": json path, "markdown": md path, "benches": {name: "ok" | "failed: reason"}}).
    """
    now = now or datetime.now(timezone.utc)
    stamp = now.strftime("%Y%m%dT%H%M%SZ")
    results = []
    t_all = time.monotonic()
    for i, name in enumerate(names, 1):
        say(f"[{i}/{len(names)}] bench {name}: running (timeout {timeout_s:g} s, "
            f"{time.monotonic() - t_all:.0f} s elapsed in all)")
        entry = run_one(name, run, timeout_s)
        results.append(entry)
        say(f"[{i}/{len(names)}] bench {name}: {status_text(entry)} in {entry['seconds']:.1f} s")
        if entry["status"] != "ok" and entry["output_tail"]:
            say("  last output:\n" + "\n".join("    " + line for line in entry["output_tail"].splitlines()[-8:]))
    report = {"created": now.isoformat(timespec="seconds"), "timeout_s": timeout_s,
              "seconds": round(time.monotonic() - t_all, 2),
              "machine": machine if machine is not None else machine_info(), "results": results}
    json_path, md_path = write_report(report, reports_dir, stamp)
    failed = [e["name"] for e in results if e["status"] != "ok"]
    say(f"{len(results) - len(failed)}/{len(results)} benches ok"
        + (f" (failed: {', '.join(failed)})" if failed else "") + f"; report: {md_path}")
    return (1 if failed else 0), {"report": str(json_path), "markdown": str(md_path),
                                  "benches": {e["name"]: status_text(e) for e in results}}


def run_from_args(args, available: list[str], say=print) -> int:
    """`vla bench all` from parsed arguments: args.timeout, args.only, args.skip, args.quick."""
    from vla_core.paths import workspace_path
    if not args.timeout > 0:
        raise ConfigError(f"--timeout {args.timeout:g}: give the seconds each bench may take, more than 0")
    names = select(available, args.only, args.skip)
    runner = subprocess_runner(["--quick"] if args.quick else [], echo=lambda line: print(f"  {line}", flush=True))
    code, final = run_all(names, runner, workspace_path("reports").resolve(), timeout_s=args.timeout, say=say)
    print(json.dumps(final), flush=True)
    return code
