"""A training run as a child process (no ROS): start, follow its JSON-lines progress, cancel, and explain a crash.

The trainer node runs every goal through this, so a crash, an out-of-memory kill or a hung CUDA driver in
training never takes a node down. The child gets SIGTERM if its parent dies (PR_SET_PDEATHSIG), runs in its own
session (cancel signals the whole group, torchrun's workers included) and optionally under an address-space limit.
"""
from __future__ import annotations

import ctypes
import json
import os
import resource
import signal
import subprocess
import sys
import threading
import time
from collections import deque
from dataclasses import dataclass, field
from typing import Callable, Sequence


@dataclass
class JobOutcome:
    success: bool
    message: str
    result: dict = field(default_factory=dict)
    returncode: int | None = None
    cancelled: bool = False


def training_argv(datasets: Sequence[str], policy_type: str, overrides: Sequence[str], nproc: int = 1,
                  python: str = sys.executable) -> list[str]:
    """The command line of one run: ``vla_trainer.cli`` with ``--key=value`` overrides, or under torchrun."""
    if not datasets:
        raise ValueError("the goal names no dataset; give at least one dataset directory")
    args = [f"--data.paths={','.join(datasets)}"]
    if policy_type:
        args.append(f"--policy.type={policy_type}")
    for item in overrides:
        key, eq, value = item.partition("=")
        if not eq or not key.strip():
            raise ValueError(f"override {item!r} is not key=value (e.g. train.epochs=20)")
        args.append(f"--{key.strip().lstrip('-')}={value}")
    args.append("--progress=json")
    if nproc > 1:
        return [python, "-m", "torch.distributed.run", "--standalone", f"--nproc-per-node={nproc}",
                "-m", "vla_trainer.cli", *args]
    return [python, "-m", "vla_trainer.cli", *args]


def _child_setup(memory_limit_mb: int) -> Callable[[], None]:
    def setup() -> None:
        try:
            ctypes.CDLL("libc.so.6", use_errno=True).prctl(1, signal.SIGTERM)  # PR_SET_PDEATHSIG
        except OSError:
            pass
        if memory_limit_mb > 0:
            limit = memory_limit_mb * 1024 * 1024
            resource.setrlimit(resource.RLIMIT_AS, (limit, limit))
    return setup


class TrainingJob:
    """One child process. ``on_event`` gets every JSON object it prints (from a reader thread)."""

    def __init__(self, argv: list[str], on_event: Callable[[dict], None], env: dict[str, str] | None = None,
                 memory_limit_mb: int = 0, cwd: str | None = None):
        self.argv, self.on_event = argv, on_event
        self.result: dict = {}
        self.error = ""
        self.tail: deque[str] = deque(maxlen=40)
        self.cancelled = False
        child_env = {**os.environ, **(env or {}), "VLA_PROGRESS": "json", "PYTHONUNBUFFERED": "1"}
        self.process = subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.PIPE, stdin=subprocess.DEVNULL,
                                        text=True, env=child_env, cwd=cwd, start_new_session=True,
                                        preexec_fn=_child_setup(memory_limit_mb))
        self._readers = [threading.Thread(target=self._read_stdout, daemon=True),
                         threading.Thread(target=self._read_stderr, daemon=True)]
        for t in self._readers:
            t.start()

    def _read_stdout(self) -> None:
        for line in self.process.stdout:
            line = line.strip()
            if not line:
                continue
            try:
                event = json.loads(line)
            except json.JSONDecodeError:
                self.tail.append(line)
                continue
            if not isinstance(event, dict):
                continue
            if event.get("event") == "result":
                self.result = event
            elif event.get("event") == "error":
                self.error = str(event.get("error", ""))
            try:
                self.on_event(event)
            except Exception:  # noqa: BLE001 - a broken listener must not stop the reader
                pass

    def _read_stderr(self) -> None:
        for line in self.process.stderr:
            if line.strip():
                self.tail.append(line.rstrip())

    @property
    def pid(self) -> int:
        return self.process.pid

    def running(self) -> bool:
        return self.process.poll() is None

    def cancel(self, grace_s: float = 10.0) -> None:
        """SIGINT the process group, then SIGKILL after ``grace_s``."""
        self.cancelled = True
        self._signal(signal.SIGINT)
        deadline = time.monotonic() + grace_s
        while self.running() and time.monotonic() < deadline:
            time.sleep(0.05)
        if self.running():
            self._signal(signal.SIGKILL)

    def _signal(self, sig: int) -> None:
        try:
            os.killpg(self.process.pid, sig)
        except ProcessLookupError:
            pass

    def wait(self, timeout: float | None = None) -> JobOutcome:
        code = self.process.wait(timeout)
        for t in self._readers:
            t.join(timeout=5)
        if self.cancelled:
            return JobOutcome(False, "training cancelled", self.result, code, cancelled=True)
        if code == 0 and self.result.get("artifact"):
            return JobOutcome(True, f"trained {self.result.get('name')}/{self.result.get('version')}", self.result, code)
        return JobOutcome(False, self.explain(code), self.result, code)

    def explain(self, code: int) -> str:
        """Why the run failed, in words: a signal (and what it usually means), the error it printed, its last lines."""
        if code is not None and code < 0:
            name = signal.Signals(-code).name
            hint = " (the kernel's out-of-memory killer sends this; lower train.batch_size or free memory)" \
                if -code == signal.SIGKILL else ""
            why = f"training process killed by {name}{hint}"
        elif self.error:
            why = f"training failed: {self.error}"
        elif any("MemoryError" in line or "out of memory" in line.lower() for line in self.tail):
            why = "training ran out of memory (lower train.batch_size, or raise the trainer's memory_limit_mb)"
        else:
            why = f"training process exited with code {code}"
        last = [line for line in self.tail if line.strip()][-3:]
        return why + (": " + " | ".join(last) if last and not self.error else "")
