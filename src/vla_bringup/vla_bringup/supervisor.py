"""Start, watch and stop the processes of a profile (no ROS).

Each node runs in its own session so that a Ctrl-C in the terminal reaches only `vla up`, which then
shuts the graph down in order (lifecycle first, processes after). Output is prefixed with the node name
and also kept in a per-run log directory.
"""
from __future__ import annotations

import ctypes
import os
import signal
import subprocess
import sys
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Sequence


def _die_with_parent() -> None:
    """In the child before exec: get SIGTERM when the supervising process dies, even by SIGKILL, so that no
    node outlives its `vla up` (Linux prctl PR_SET_PDEATHSIG; elsewhere a no-op)."""
    try:
        ctypes.CDLL("libc.so.6", use_errno=True).prctl(1, signal.SIGTERM)  # PR_SET_PDEATHSIG = 1
    except OSError:
        pass


@dataclass
class Child:
    name: str
    process: subprocess.Popen
    log_path: Path
    started: float
    reported: bool = False
    tail: list[str] = field(default_factory=list)


class ProcessGroup:
    def __init__(self, log_dir: Path, echo: IO[str] | None = sys.stdout, quiet: bool = False):
        self.log_dir = Path(log_dir)
        self.log_dir.mkdir(parents=True, exist_ok=True)
        self.echo, self.quiet = echo, quiet
        self.children: list[Child] = []
        self._lock = threading.Lock()

    def start(self, name: str, argv: Sequence[str], env: dict[str, str] | None = None) -> Child:
        log_path = self.log_dir / f"{name}.log"
        process = subprocess.Popen(list(argv), stdout=subprocess.PIPE, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                                   env=env or os.environ.copy(), start_new_session=True, text=True, bufsize=1,
                                   preexec_fn=_die_with_parent)
        child = Child(name, process, log_path, time.monotonic())
        self.children.append(child)
        threading.Thread(target=self._pump, args=(child,), daemon=True).start()
        return child

    def _pump(self, child: Child) -> None:
        with open(child.log_path, "a") as log:
            for line in child.process.stdout:
                log.write(line)
                log.flush()
                child.tail = (child.tail + [line.rstrip()])[-20:]
                if self.echo is not None and not self.quiet:
                    with self._lock:
                        self.echo.write(f"[{child.name}] {line}")
                        self.echo.flush()

    def exited(self) -> list[Child]:
        """Children that have exited since the last call."""
        out = []
        for child in self.children:
            if not child.reported and child.process.poll() is not None:
                child.reported = True
                out.append(child)
        return out

    def pid(self, name: str) -> int:
        return next(c.process.pid for c in self.children if c.name == name)

    def stop(self, timeout: float = 10.0, first: Sequence[str] = (), kill_after: float = 3.0) -> dict[str, int]:
        """SIGINT every child (reverse start order), escalate to SIGTERM then SIGKILL; return exit codes.

        The children named in ``first`` are stopped, and waited for, before any other is signalled."""
        leading = [c for c in self.children if c.name in first]
        self._stop([c for c in leading], timeout, kill_after)
        self._stop([c for c in reversed(self.children) if c not in leading], timeout, kill_after)
        return {c.name: c.process.returncode for c in self.children}

    def _stop(self, children: list[Child], timeout: float, kill_after: float) -> None:
        for sig, wait in ((signal.SIGINT, timeout), (signal.SIGTERM, kill_after), (signal.SIGKILL, kill_after)):
            alive = [c for c in children if c.process.poll() is None]
            if not alive:
                break
            for c in alive:
                try:
                    os.killpg(c.process.pid, sig)
                except ProcessLookupError:
                    pass
            deadline = time.monotonic() + wait
            while time.monotonic() < deadline and any(c.process.poll() is None for c in alive):
                time.sleep(0.05)
