"""Helpers for workspace-level tests: a ROS node in the test process and `vla up` as a real subprocess."""
from __future__ import annotations

import fcntl
import os
import re
import signal
import subprocess
import threading
import time
from pathlib import Path

import pytest

WS = Path(__file__).resolve().parents[1]


class RosProbe:
    """An rclpy node in its own context, spinning in a thread, that collects messages by topic."""

    def __init__(self, name: str = "test_probe"):
        import rclpy
        from rclpy.executors import SingleThreadedExecutor
        from vla_ros.spinning import SpinThread
        self.rclpy = rclpy
        self.context = rclpy.Context()
        rclpy.init(context=self.context)
        self.node = rclpy.create_node(f"{name}_{os.getpid()}", context=self.context)
        self.executor = SingleThreadedExecutor(context=self.context)
        self.executor.add_node(self.node)
        self.messages: dict[str, list] = {}
        self.lock = threading.Lock()
        self.spinner = SpinThread(self.executor, "probe").start()

    def collect(self, msg_type, topic: str, qos, source_time: bool = False):
        """Collect (time, message) pairs: receipt time (time.monotonic()), or with ``source_time`` the
        publisher's send time (system clock, seconds) -- the one to order messages from different publishers."""
        self.messages[topic] = []

        def cb(msg, info):
            t = info["source_timestamp"] * 1e-9 if source_time else time.monotonic()
            with self.lock:
                self.messages[topic].append((t, msg))
        self.node.create_subscription(msg_type, topic, cb, qos)
        return self.messages[topic]

    def wait_for(self, predicate, timeout: float, what: str):
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            with self.lock:
                if predicate():
                    return
            time.sleep(0.05)
        raise AssertionError(f"timed out after {timeout:g} s waiting for {what}")

    def publish_until(self, pub, msgs, predicate, timeout: float, what: str):
        """Publish ``msgs`` (one message or a list, sent in turn) every 50 ms until ``predicate`` holds: the
        first messages after discovery may precede the reliable match, so a test does not count on them."""
        msgs = msgs if isinstance(msgs, (list, tuple)) else [msgs]
        deadline = time.monotonic() + timeout
        i = 0
        while time.monotonic() < deadline:
            pub.publish(msgs[i % len(msgs)])
            i += 1
            with self.lock:
                if predicate():
                    return
            time.sleep(0.05)
        raise AssertionError(f"timed out after {timeout:g} s waiting for {what}")

    @staticmethod
    def diagnostic_values(diags, status_name: str) -> dict:
        """The key/values of the newest status named ``status_name`` in collected DiagnosticArrays."""
        values = {}
        for _, array in list(diags):
            for status in array.status:
                if status.name == status_name:
                    values = {kv.key: kv.value for kv in status.values}
        return values

    def count(self, diags, status_name: str, key: str) -> int:
        """One integer value (a drop or rejection counter) of the newest status ``status_name``; 0 if absent."""
        return int(self.diagnostic_values(diags, status_name).get(key, 0))

    def call(self, srv_type, name: str, request, timeout: float = 10.0):
        client = self.node.create_client(srv_type, name)
        assert client.wait_for_service(timeout_sec=timeout), f"service {name} not available"
        done = threading.Event()
        future = client.call_async(request)
        future.add_done_callback(lambda _: done.set())
        assert done.wait(timeout), f"service {name} did not answer within {timeout:g} s"
        return future.result()

    def close(self):
        # The node is destroyed only once nothing waits on it (see vla_ros.spinning).
        if self.spinner.stop():
            self.node.destroy_node()
        self.rclpy.shutdown(context=self.context)


class VlaProcess:
    """`vla ...` as a subprocess with its output captured line by line."""

    def __init__(self, *args: str, timeout: float = 120.0):
        self.lines: list[str] = []
        self.proc = subprocess.Popen(["vla", *args], stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                                     cwd=WS, start_new_session=True)
        self.thread = threading.Thread(target=self._pump, daemon=True)
        self.thread.start()

    def _pump(self):
        for line in self.proc.stdout:
            self.lines.append(line.rstrip())

    @property
    def output(self) -> str:
        return "\n".join(self.lines)

    def wait_line(self, pattern: str, timeout: float) -> re.Match:
        deadline = time.monotonic() + timeout
        rx = re.compile(pattern)
        while time.monotonic() < deadline:
            for line in list(self.lines):
                m = rx.search(line)
                if m:
                    return m
            if self.proc.poll() is not None:
                time.sleep(0.2)
                for line in list(self.lines):
                    if rx.search(line):
                        return rx.search(line)
                raise AssertionError(f"vla exited ({self.proc.returncode}) before printing /{pattern}/:\n{self.output}")
            time.sleep(0.05)
        raise AssertionError(f"no line matching /{pattern}/ within {timeout:g} s:\n{self.output}")

    def interrupt(self):
        self.proc.send_signal(signal.SIGINT)

    def wait(self, timeout: float = 60.0) -> int:
        try:
            return self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            os.killpg(self.proc.pid, signal.SIGKILL)
            raise AssertionError(f"vla did not exit within {timeout:g} s:\n{self.output}")

    def kill(self):
        if self.proc.poll() is None:
            try:
                os.killpg(self.proc.pid, signal.SIGKILL)
            except ProcessLookupError:
                pass


_MODULES = iter(range(10_000))


def _leftovers(mark: str) -> list[int]:
    """Processes started by this test run for one module (their environment carries ``mark``: VLA_TEST_OWNER,
    inherited by every process they start, orphans included) that are still running. Other test runs and
    graphs on the same machine, even on the same ROS domain, are never touched."""
    entry_mark = f"VLA_TEST_OWNER={mark}".encode()
    out = []
    for entry in os.listdir("/proc"):
        if not entry.isdigit() or int(entry) == os.getpid():
            continue
        try:
            if entry_mark in Path(f"/proc/{entry}/environ").read_bytes().split(b"\0"):
                out.append(int(entry))
        except OSError:
            continue
    return out


def _claim_domain(start: int):
    """The first ROS domain from ``start`` (1..101) that no other test session on this machine holds, and the open
    lock file that holds it: two test runs at once (a developer's beside CI's) never share a graph."""
    for i in range(101):
        domain = 1 + (start - 1 + i) % 101
        lock = open(f"/tmp/vla-test-ros-domain-{domain}.lock", "a")  # noqa: SIM115 - held for the module
        try:
            fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
            return domain, lock
        except OSError:
            lock.close()
    raise RuntimeError("every ROS domain 1..101 is held by another test session on this machine")


@pytest.fixture(autouse=True, scope="module")
def private_ros_domain():
    """Each test module runs on a ROS domain of its own, and whatever it leaves running is killed after it: a
    node orphaned by one module (a fault test kills supervisors on purpose) must never answer another module's
    calls under the same name."""
    previous = os.environ.get("ROS_DOMAIN_ID")
    domain, claim = _claim_domain(1 + (int(previous or 0) + next(_MODULES)) % 101)
    mark = f"{os.getpid()}-{domain}"
    os.environ["ROS_DOMAIN_ID"] = str(domain)
    os.environ["VLA_TEST_OWNER"] = mark
    yield domain
    for pid in _leftovers(mark):
        try:
            os.kill(pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
    os.environ.pop("VLA_TEST_OWNER", None)
    claim.close()  # releases the domain's lock
    if previous is None:
        os.environ.pop("ROS_DOMAIN_ID", None)
    else:
        os.environ["ROS_DOMAIN_ID"] = previous


@pytest.fixture
def probe():
    p = RosProbe()
    yield p
    p.close()


@pytest.fixture
def vla():
    started: list[VlaProcess] = []

    def start(*args, **kwargs) -> VlaProcess:
        proc = VlaProcess(*args, **kwargs)
        started.append(proc)
        return proc
    yield start
    for proc in started:
        if proc.proc.poll() is None:
            proc.interrupt()
            try:
                proc.proc.wait(30)
            except subprocess.TimeoutExpired:
                proc.kill()


@pytest.fixture
def one_node_profile(tmp_path):
    """``one_node_profile(name, package, params, description)``: write a bring-up profile of the lifecycle manager
    and one node ``name`` (its executable ``executable``, default the name; its parameter file ``params``), without
    simulated time, as tmp_path/``file`` (default ``<name>_only.yaml``), and return its path."""
    def write(name: str, package: str, params, description: str, *, executable: str | None = None,
              file: str | None = None) -> Path:
        path = tmp_path / (file or f"{name}_only.yaml")
        path.write_text(f"""
description: {description}
use_sim_time: false
manager: {{params: {WS / 'params' / 'lifecycle_manager.yaml'}}}
nodes:
  - name: {name}
    package: {package}
    executable: {executable or name}
    params: [{params}]
""")
        return path
    return write
