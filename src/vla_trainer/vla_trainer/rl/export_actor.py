"""Export a saved SAC agent's actor as a policy artifact, in a process of its own (no ROS).

``python -m vla_trainer.rl.export_actor WEIGHTS MODELS_DIR NAME VERSION --fps F --state-names ... --action-names ...
--encoder-id ID`` loads weights written by SACAgent.save and writes models_dir/name/version through
vla_trainer.export (ONNX checked against torch, golden pair, checksums). ``--serve`` keeps one process for many
exports: each line on its stdin is one export's arguments as JSON, each line on its stdout its result.

The learner node exports in a child process because the ONNX export holds Python's global lock for a while, which
would silence the node's heartbeat. It keeps one :class:`ExportWorker` for its whole run: a new process per export
spent most of its time starting Python and importing torch (19 s an export at load 6-7 on 2 cores, against 0.15 s
for an export in a process that has exported before, 0.9 s for its first).
"""
from __future__ import annotations

import argparse
import collections
import json
import os
import queue
import subprocess
import sys
import threading
import time
from pathlib import Path


def load_agent(path: str | Path):
    """A SACAgent with the configs and weights SACAgent.save wrote to ``path``."""
    from safetensors import safe_open

    from vla_trainer.rl.networks import SACNetConfig
    from vla_trainer.rl.sac import SACAgent, SACConfig
    with safe_open(str(path), "pt") as f:
        meta = f.metadata()
    net = SACNetConfig(**json.loads(meta["net"]))
    agent = SACAgent(net, SACConfig(**json.loads(meta["sac"])))
    agent.load_weights(path)
    return agent


class ExportWorker:
    """One long-lived export process (``--serve``) for many exports, one at a time: :meth:`submit` returns a job
    with the same ``poll``/``wait``/``kill`` as :class:`ExportJob`. A worker that dies fails the job in flight with
    its last lines of output, and the next :meth:`submit` starts a new process."""

    def __init__(self):
        self.proc: subprocess.Popen | None = None
        self.results: queue.Queue = queue.Queue()
        self.log = collections.deque(maxlen=20)  # the worker's last lines of stderr
        self.started_processes = 0

    def _start(self) -> None:
        self.proc = subprocess.Popen([sys.executable, "-m", "vla_trainer.rl.export_actor", "--serve"],
                                     stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                                     text=True, bufsize=1)
        self.started_processes += 1
        results = self.results = queue.Queue()
        proc = self.proc

        def read_results() -> None:
            for line in proc.stdout:
                try:
                    results.put(json.loads(line))
                except json.JSONDecodeError:
                    self.log.append(line.rstrip())
            results.put(None)  # the process ended

        def read_log() -> None:
            for line in proc.stderr:
                self.log.append(line.rstrip())

        threading.Thread(target=read_results, name="export-results", daemon=True).start()
        threading.Thread(target=read_log, name="export-log", daemon=True).start()

    def submit(self, weights: Path, models_dir: Path, name: str, version: str, **kwargs) -> "WorkerJob":
        if self.proc is None or self.proc.poll() is not None:
            self._start()
        request = {"weights": str(weights), "models_dir": str(models_dir), "name": name, "version": version,
                   **{k: list(v) if isinstance(v, tuple) else v for k, v in kwargs.items()}}
        job = WorkerJob(self, Path(weights), f"{name}/{version}", self.results)
        try:
            self.proc.stdin.write(json.dumps(request) + "\n")
            self.proc.stdin.flush()
        except (BrokenPipeError, OSError):
            self.results.put(None)
        return job

    def close(self, timeout: float = 10.0) -> None:
        """End the worker (after the export in flight, within ``timeout``)."""
        if self.proc is None:
            return
        try:
            self.proc.stdin.close()
            self.proc.wait(timeout)
        except (OSError, subprocess.TimeoutExpired):
            self.proc.kill()
            self.proc.wait()
        self.proc = None


class WorkerJob:
    """One export handed to an :class:`ExportWorker`."""

    def __init__(self, worker: ExportWorker, weights: Path, spec: str, results: queue.Queue):
        self.worker, self.weights, self.spec, self.results = worker, weights, spec, results
        self.started = time.perf_counter()
        self.result: dict | None = None

    def poll(self) -> bool:
        if self.result is None:
            try:
                answer = self.results.get_nowait()
            except queue.Empty:
                return False
            self.weights.unlink(missing_ok=True)
            self.result = answer or {"ok": False, "error": "the export process ended: " +
                                     " | ".join(list(self.worker.log)[-5:])}
        if not self.result.get("ok"):
            raise RuntimeError(f"exporting {self.spec} failed: {self.result.get('error')}")
        return True

    def wait(self, timeout: float = 600.0) -> None:
        deadline = time.monotonic() + timeout
        while not self.poll():
            if time.monotonic() > deadline:
                raise TimeoutError(f"exporting {self.spec} took more than {timeout:g} s")
            time.sleep(0.02)

    def kill(self) -> None:
        """Stop the worker (the export in flight with it); the next submit starts a new one."""
        if self.worker.proc is not None and self.worker.proc.poll() is None:
            self.worker.proc.kill()
            self.worker.proc.wait()
        self.weights.unlink(missing_ok=True)


def export_one(weights: str, models_dir: str, name: str, version: str, *, fps: float, state_names: list[str],
               action_names: list[str], encoder_id: str, training: dict | None = None) -> tuple[Path, float]:
    agent = load_agent(weights)
    artifact, diff = agent.export_actor(Path(models_dir), name, version, fps=fps, state_names=state_names,
                                        action_names=action_names, encoder_id=encoder_id, training=training or {})
    return artifact.path, diff


def serve() -> int:
    """Export every request read from stdin (one JSON object a line) and answer each on stdout; ends at EOF."""
    import torch
    torch.set_num_threads(1)
    out = os.fdopen(os.dup(sys.stdout.fileno()), "w", buffering=1)
    sys.stdout = sys.stderr  # anything the export prints must not be taken for an answer
    for line in sys.stdin:
        if not line.strip():
            continue
        t0 = time.perf_counter()
        try:
            request = json.loads(line)
            path, diff = export_one(**request)
            answer = {"ok": True, "path": str(path), "diff": diff, "seconds": round(time.perf_counter() - t0, 3)}
        except Exception as exc:  # noqa: BLE001 - one bad export must not end the worker: the learner is told
            answer = {"ok": False, "error": f"{type(exc).__name__}: {exc}"[:2000]}
        out.write(json.dumps(answer) + "\n")
    return 0


def main(argv: list[str] | None = None) -> int:
    if argv is None:
        argv = sys.argv[1:]
    if argv == ["--serve"]:
        return serve()
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("weights")
    ap.add_argument("models_dir")
    ap.add_argument("name")
    ap.add_argument("version")
    ap.add_argument("--fps", type=float, required=True)
    ap.add_argument("--state-names", nargs="+", required=True)
    ap.add_argument("--action-names", nargs="+", required=True)
    ap.add_argument("--encoder-id", required=True)
    ap.add_argument("--training", default="{}")
    a = ap.parse_args(argv)
    import torch
    torch.set_num_threads(1)
    path, diff = export_one(a.weights, a.models_dir, a.name, a.version, fps=a.fps, state_names=a.state_names,
                            action_names=a.action_names, encoder_id=a.encoder_id, training=json.loads(a.training))
    print(f"exported {path} (ONNX vs torch {diff:.2g})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
