"""Drive a real graph with fuzzed input: bring a profile up in real processes, find every subscription, service
and action of every node, send each one hypothesis-drawn messages and the targeted edge cases of
:mod:`vla_tools.fuzz_messages`, and watch what happens.

What it watches: every node process (a crash is reported with the message that was sent last, and the tail of
the node's output), the lifecycle manager's status (a node that leaves ACTIVE), every command on the robot's
command topic (non-finite or over the shield's limits is unsafe), and the reject counters each node publishes on
/diagnostics (a bad input must be counted). After a crash the graph is brought up again and fuzzing goes on with
the next target, so one run reports every crash, not only the first.

Used by the fuzz tests (test/test_fuzz_graph.py) and by `vla bench reliability`.
"""
from __future__ import annotations

import collections
import importlib
import math
import os
import re
import tempfile
import threading
import time
from dataclasses import dataclass, field
from types import SimpleNamespace
from pathlib import Path
from typing import Any, Callable

import rclpy
import yaml
from diagnostic_msgs.msg import DiagnosticArray
from geometry_msgs.msg import Twist
from hypothesis import HealthCheck, Phase, given, seed, settings
from lifecycle_msgs.msg import State
from lifecycle_msgs.srv import GetState
from rclpy.action import ActionClient
from rclpy.executors import ExternalShutdownException, MultiThreadedExecutor
from rclpy.parameter import Parameter
from rclpy.qos import DurabilityPolicy, QoSProfile, ReliabilityPolicy

from vla_bringup.bringup import Bringup, spec_lookup
from vla_tools.fuzz_messages import Case, describe, edge_cases, message_strategy
from vla_bringup.profile import load_profile, parse_overrides
from vla_interfaces.msg import ManagerStatus
from vla_ros import node_qos
from vla_ros.convert import sent_time

# Default sizes: a CI run; VLA_FUZZ_EXAMPLES raises the hypothesis examples per target (e.g. 2000 nightly),
# VLA_FUZZ_SEED changes which ones are drawn (the default run draws the same ones every time).
DEFAULT_EXAMPLES = 20
# Publisher QoS: reliable matches every subscription; transient local only where a subscription asks for it
# (a writer that keeps large samples for late joiners holds shared memory long after they were sent).
FUZZ_PUB = QoSProfile(depth=5, reliability=ReliabilityPolicy.RELIABLE, durability=DurabilityPolicy.TRANSIENT_LOCAL)
FUZZ_PUB_VOLATILE = QoSProfile(depth=5, reliability=ReliabilityPolicy.RELIABLE,
                               durability=DurabilityPolicy.VOLATILE)


def publisher_qos(node, topic: str) -> QoSProfile:
    """The QoS that matches every current subscription of ``topic``."""
    latched = any(i.qos_profile.durability == DurabilityPolicy.TRANSIENT_LOCAL
                  for i in node.get_subscriptions_info_by_topic(topic))
    return FUZZ_PUB if latched else FUZZ_PUB_VOLATILE
# Counters a node publishes on /diagnostics that count refused input.
REJECT_KEY = re.compile(r"reject|drop|invalid|refus|bad_|malformed", re.IGNORECASE)
# Not fuzzed as plain targets: the clock (its own attack), heartbeats (the manager treats a heartbeat from
# another publisher as a second graph or a forgery and stops the graph: its own fault test), the lifecycle and
# parameter services (control surfaces whose purpose is to change the node's state: covered by dedicated tests),
# the manager's manage_nodes (a shutdown request must shut down), and action internals.
SKIP_TOPICS = {"/clock", "/parameter_events", "/rosout"}
SKIP_TOPIC_SUFFIXES = ("/heartbeat",)
SKIP_SERVICE_SUFFIXES = ("/get_state", "/change_state", "/get_available_states", "/get_available_transitions",
                         "/get_transition_graph", "/describe_parameters", "/get_parameter_types", "/get_parameters",
                         "/list_parameters", "/set_parameters", "/set_parameters_atomically",
                         "/get_type_description", "/manage_nodes")
PACE_S = 0.01
SERVICE_TIMEOUT_S = 10.0


def examples_per_target() -> int:
    return int(os.environ.get("VLA_FUZZ_EXAMPLES", DEFAULT_EXAMPLES))


def interface_class(type_name: str) -> type:
    """'pkg/msg/Name' -> class (srv and action names too)."""
    pkg, kind, name = type_name.split("/")
    return getattr(importlib.import_module(f"{pkg}.{kind}"), name)


@dataclass(frozen=True)
class Target:
    node: str   # the receiving node's name
    kind: str   # topic, service or action
    name: str   # fully qualified topic/service/action name
    type_name: str

    @property
    def label(self) -> str:
        return f"{self.node} {self.kind} {self.name} ({self.type_name})"


@dataclass
class Finding:
    """Something that must not happen: a crash, a node that left ACTIVE, an unsafe command, a hang."""
    kind: str      # crash, not_active, unsafe_command, no_answer, accepted_bad_input
    node: str
    target: str
    message: str   # the input (described) that was sent last
    detail: str    # the node's last output lines, or what was observed

    def text(self) -> str:
        return f"[{self.kind}] {self.node} via {self.target}\n  input: {self.message}\n  {self.detail}"


@dataclass
class TargetStats:
    sent: int = 0
    unsendable: int = 0
    bad_sent: int = 0


@dataclass
class FuzzReport:
    stats: dict[str, TargetStats] = field(default_factory=dict)
    findings: list[Finding] = field(default_factory=list)
    bad_sent: collections.Counter = field(default_factory=collections.Counter)   # per node
    rejects_counted: collections.Counter = field(default_factory=collections.Counter)  # per node
    restarts: int = 0

    def crashes(self) -> list[Finding]:
        return [f for f in self.findings if f.kind == "crash"]


def shield_velocity_limits(profile) -> list[float] | None:
    """The safety shield's max_velocity as its parameter files and overrides set it (the limits no command
    on the robot's topic may exceed), or None when the profile has no shield."""
    entry = next((e for e in profile.nodes if e.executable == "safety_shield"), None)
    if entry is None:
        return None
    value = None
    for f in entry.params_files:
        data = yaml.safe_load(Path(f).read_text()) or {}
        for section in data.values():
            value = (section or {}).get("ros__parameters", {}).get("max_velocity", value)
    value = entry.parameters.get("max_velocity", value)
    return [float(v) for v in value] if value is not None else None


class CommandMonitor:
    """Every Twist on the robot's command topic, with the time (time.monotonic()) it arrived; ``sent`` keeps
    the publisher's send time (system clock) of each, in the same order."""

    def __init__(self, limits: list[float] | None):
        self.limits = limits
        self.lock = threading.Lock()
        self.commands: list[tuple[float, tuple[float, ...]]] = []
        self.sent: list[float] = []
        self.own: set[str] = set()  # commands the fuzzer itself sent on this topic (not the shield's)

    def on_twist(self, msg: Twist, info) -> None:
        v = (msg.linear.x, msg.linear.y, msg.linear.z, msg.angular.x, msg.angular.y, msg.angular.z)
        with self.lock:
            if repr(v) in self.own:
                return
            self.commands.append((time.monotonic(), v))
            self.sent.append(sent_time(info))

    def sent_after(self, t_source: float) -> list[tuple[float, ...]]:
        """Commands the publisher sent after ``t_source`` (system clock, s)."""
        with self.lock:
            return [v for (_, v), s in zip(self.commands, self.sent) if s > t_source]

    def unsafe(self, values: tuple[float, ...]) -> bool:
        if not all(math.isfinite(x) for x in values):
            return True
        return self.limits is not None and any(abs(x) > lim + 1e-9 for x, lim in zip(values, self.limits))

    def unsafe_commands(self, since: float = 0.0) -> list[tuple[float, tuple[float, ...]]]:
        with self.lock:
            return [(t, v) for t, v in self.commands if t >= since and self.unsafe(v)]

    def after(self, t0: float) -> list[tuple[float, tuple[float, ...]]]:
        with self.lock:
            return [(t, v) for t, v in self.commands if t >= t0]


class DiagnosticsMonitor:
    """The newest reject counters each node published on /diagnostics (summed over its statuses)."""

    def __init__(self):
        self.lock = threading.Lock()
        self.values: dict[str, dict[str, int]] = collections.defaultdict(dict)
        self.seen: set[str] = set()

    def on_array(self, msg: DiagnosticArray) -> None:
        with self.lock:
            for status in msg.status:
                node = status.name.split(":")[0].strip().lstrip("/")
                self.seen.add(node)
                for kv in status.values:
                    if REJECT_KEY.search(kv.key):
                        try:
                            self.values[node][f"{status.name}/{kv.key}"] = int(float(kv.value))
                        except ValueError:
                            pass

    def rejects(self, node: str) -> int:
        with self.lock:
            return sum(self.values.get(node, {}).values())


class Graph:
    """A profile brought up in real processes, with a harness node that watches it and sends input."""

    def __init__(self, profile: str, sets: list[str] = (), say: Callable[[str], None] = lambda m: None,
                 log_dir: Path | None = None):
        self.profile_name, self.sets, self.say = profile, list(sets), say
        self.log_dir = log_dir
        self.bringup: Bringup | None = None
        self.node = None

    # ---- up and down ----------------------------------------------------------------------------------------
    def start(self, timeout: float = 180.0) -> float:
        self.profile = load_profile(self.profile_name, None, parse_overrides(self.sets), spec_lookup)
        self.bringup = Bringup(self.profile, echo=False, say=lambda m: None, log_dir=self.log_dir and
                               Path(tempfile.mkdtemp(prefix="graph-", dir=self.log_dir)))
        try:
            up = self.bringup.start(timeout=timeout)
        except Exception:
            self.bringup.shutdown()
            raise
        overrides = [Parameter("use_sim_time", Parameter.Type.BOOL, True)] if self.profile.use_sim_time else []
        self.node = rclpy.create_node(f"vla_fuzz_{os.getpid()}", parameter_overrides=overrides)
        # Its own executor, spun by a loop that survives an exception: a harness whose callbacks stopped would
        # report every service as hung. Clients are made once and kept (destroying one that a spinning
        # executor waits on is what stops it).
        self.clients: dict[tuple, Any] = {}
        self.spin_errors: list[str] = []
        self._spinning = True
        self.executor = MultiThreadedExecutor(num_threads=2)
        self.executor.add_node(self.node)
        self._spin_thread = threading.Thread(target=self._spin, daemon=True)
        self._spin_thread.start()
        self.commands = CommandMonitor(shield_velocity_limits(self.profile))
        self.node.create_subscription(Twist, "/cmd_vel", self.commands.on_twist, node_qos.COMMAND)
        self.diagnostics = DiagnosticsMonitor()
        self.node.create_subscription(DiagnosticArray, "/diagnostics", self.diagnostics.on_array, 100)
        self.status, self._manager_gid = None, None
        # (arrival time.monotonic(), status, the manager's send time on the system clock)
        self.status_history: list[tuple[float, ManagerStatus, float]] = []
        self.node.create_subscription(ManagerStatus, f"/{self.manager}/status", self._on_status, node_qos.LATCHED)
        deadline = time.monotonic() + 10.0
        while self.status is None and time.monotonic() < deadline:
            time.sleep(0.05)
        return up

    def _on_status(self, msg: ManagerStatus, info) -> None:
        # Only the manager's own status counts: the fuzzer itself publishes forged ones on this topic.
        if self._manager_gid is None:
            self._manager_gid = next((bytes(e.endpoint_gid) for e in self.node.get_publishers_info_by_topic(
                f"/{self.manager}/status") if e.node_name == self.manager), None)
        gid = bytes((info.get("publisher_gid") or {}).get("data") or b"")
        if self._manager_gid is not None and gid == self._manager_gid:
            self.status = msg
            self.status_history.append((time.monotonic(), msg, sent_time(info)))

    def _spin(self) -> None:
        while self._spinning and rclpy.ok():
            try:
                self.executor.spin_once(timeout_sec=0.1)
            except ExternalShutdownException:
                break
            except Exception as exc:  # noqa: BLE001 - kept for the report; the harness goes on spinning
                self.spin_errors.append(f"{type(exc).__name__}: {exc}")

    def client(self, srv_type: type, name: str):
        """A service client for ``name``, made once per graph."""
        key = ("service", srv_type, name)
        if key not in self.clients:
            self.clients[key] = self.node.create_client(srv_type, name)
        return self.clients[key]

    def action_client(self, action_type: type, name: str) -> ActionClient:
        key = ("action", action_type, name)
        if key not in self.clients:
            self.clients[key] = ActionClient(self.node, action_type, name)
        return self.clients[key]

    def stop(self) -> None:
        if self.bringup is not None:
            if self.node is not None:
                self._spinning = False
                self._spin_thread.join(timeout=5.0)
                self.executor.shutdown(timeout_sec=1.0)
                self.node.destroy_node()
                self.node = None
            self.bringup.shutdown(timeout=5.0)
            self.bringup = None

    def __enter__(self) -> "Graph":
        self.start()
        return self

    def __exit__(self, *exc) -> None:
        self.stop()

    # ---- what is running ------------------------------------------------------------------------------------
    @property
    def manager(self) -> str:
        return self.profile.manager.name

    @property
    def managed(self) -> list[str]:
        return [e.name for e in self.profile.nodes]

    def pid(self, name: str) -> int:
        return self.bringup.group.pid(name)

    def dead(self) -> list[tuple[str, int, list[str]]]:
        """(name, exit code, last output lines) of every process that has exited."""
        return [(c.name, c.process.returncode, list(c.tail)) for c in self.bringup.group.children
                if c.process.poll() is not None]

    def phase(self) -> str:
        """The lifecycle manager's phase, as its own status messages say."""
        return self.status.phase if self.status is not None else "none"

    def now(self) -> float:
        """Seconds on the graph's clock (sim time under use_sim_time)."""
        return self.node.get_clock().now().nanoseconds * 1e-9

    def states(self, timeout: float = 5.0) -> dict[str, int | None]:
        """Each managed node's lifecycle state id from its own ~/get_state (None: no answer)."""
        out = {}
        for name in self.managed:
            client = self.client(GetState, f"/{name}/get_state")
            reply = self.call(client, GetState.Request(), timeout) if client.wait_for_service(timeout) else None
            out[name] = reply.current_state.id if reply is not None else None
        return out

    def all_active(self) -> tuple[bool, str]:
        dead = self.dead()
        if dead:
            return False, "exited: " + ", ".join(f"{n} ({code})" for n, code, _ in dead)
        states = self.states()
        wrong = {n: s for n, s in states.items() if s != State.PRIMARY_STATE_ACTIVE}
        if wrong:
            return False, f"not ACTIVE: {wrong} (manager phase {self.phase()})"
        return True, "all active"

    def call(self, client, request, timeout: float = SERVICE_TIMEOUT_S):
        done = threading.Event()
        future = client.call_async(request)
        future.add_done_callback(lambda _: done.set())
        if not done.wait(timeout):
            client.remove_pending_request(future)
            return None
        return future.result()

    # ---- discovery ------------------------------------------------------------------------------------------
    def _wait_discovered(self, name: str, timeout: float = 10.0) -> None:
        """Wait until this process's graph cache knows node ``name`` (discovery lags on a busy machine; asking
        for a node it does not know yet raises NodeNameNonExistentError)."""
        deadline = time.monotonic() + timeout
        while (name, "/") not in self.node.get_node_names_and_namespaces():
            if time.monotonic() > deadline:
                raise RuntimeError(f"node /{name} was not discovered within {timeout:g} s; is the graph up on "
                                   f"ROS_DOMAIN_ID {os.environ.get('ROS_DOMAIN_ID', '0')}?")
            time.sleep(0.1)

    def targets(self) -> list[Target]:
        """Every subscribed topic, service and action server of every node (the manager included)."""
        out: list[Target] = []
        for name in [*self.managed, self.manager]:
            self._wait_discovered(name)
            for topic, types in self.node.get_subscriber_names_and_types_by_node(name, "/"):
                if topic not in SKIP_TOPICS and not topic.endswith(SKIP_TOPIC_SUFFIXES) and "/_action/" not in topic:
                    out.append(Target(name, "topic", topic, types[0]))
            for srv, types in self.node.get_service_names_and_types_by_node(name, "/"):
                if srv.endswith("/_action/send_goal"):
                    action_type = types[0].removesuffix("_SendGoal")
                    out.append(Target(name, "action", srv.removesuffix("/_action/send_goal"), action_type))
                elif "/_action/" not in srv and not srv.endswith(SKIP_SERVICE_SUFFIXES):
                    out.append(Target(name, "service", srv, types[0]))
        return sorted(set(out), key=lambda t: (t.node, t.kind, t.name))


class Fuzzer:
    """Sends every target its edge cases and ``examples`` hypothesis-drawn messages; reports what broke.

    ``extra_cases(target)`` may add targeted inputs (bad artifacts for ~/load_policy)."""

    def __init__(self, graph: Graph, examples: int | None = None, say: Callable[[str], None] = print,
                 extra_cases: Callable[[Target], list[Case]] = lambda t: [], max_restarts: int = 12,
                 hypothesis_seed: int | None = None):
        self.graph, self.say = graph, say
        self.examples = examples_per_target() if examples is None else examples
        self.extra_cases = extra_cases
        self.max_restarts = max_restarts
        self.seed = int(os.environ.get("VLA_FUZZ_SEED", 0)) if hypothesis_seed is None else hypothesis_seed
        self.report = FuzzReport()
        self.recent: collections.deque = collections.deque(maxlen=5)
        self._baseline: dict[str, int] = {}

    # ---- the run --------------------------------------------------------------------------------------------
    def run(self, only: Callable[[Target], bool] = lambda t: True) -> FuzzReport:
        targets = [t for t in self.graph.targets() if only(t)]
        self.say(f"fuzzing {len(targets)} targets, {self.examples} generated messages each plus edge cases")
        self._take_baseline()
        for target in targets:
            if not self._fuzz_target(target):
                if self.report.restarts >= self.max_restarts:
                    self.say(f"stopping: {self.report.restarts} restarts")
                    break
        self._settle_rejects()
        for error in self.graph.spin_errors:
            self.say(f"harness executor error (spinning went on): {error}")
        self.report.findings += [Finding("unsafe_command", "safety_shield", "/cmd_vel", repr(v),
                                         f"sent at t={t:.3f}; limits {self.graph.commands.limits}")
                                 for t, v in self.graph.commands.unsafe_commands()]
        return self.report

    def _fuzz_target(self, target: Target) -> bool:
        """Fuzz one target; False when the graph broke (it is then brought up again)."""
        stats = self.report.stats.setdefault(target.label, TargetStats())
        t0 = time.monotonic()
        try:
            send, close = self._sender(target)
        except Exception as exc:  # noqa: BLE001 - a target that cannot be reached is reported, not fatal
            self.report.findings.append(Finding("no_answer", target.node, target.label, "-", f"unreachable: {exc}"))
            return True
        broken = False
        try:
            cls = self._request_class(target)
            for case in [*edge_cases(cls, self.graph.now), *self.extra_cases(target)]:
                if not self._send(target, stats, send, case.message, case.label, case.bad):
                    broken = True
                    break
            if not broken:
                broken = not self._hypothesis(target, stats, send, cls)
        finally:
            close()
        if not broken:
            time.sleep(0.5)  # a crash that takes a moment (a worker thread, a timer that uses the input)
            broken = not self._check(target)
        if not broken:
            self._release_estop()
        self.say(f"  {target.label}: {stats.sent} sent in {time.monotonic() - t0:.1f} s"
                 + (" -- BROKE THE GRAPH" if broken else ""))
        if broken:
            self._restart()
        return not broken

    def _hypothesis(self, target: Target, stats: TargetStats, send, cls) -> bool:
        ok = [True]

        @seed(self.seed)
        @settings(max_examples=self.examples, deadline=None, database=None, phases=[Phase.generate],
                  suppress_health_check=list(HealthCheck))
        @given(message_strategy(cls, self.graph.now))
        def run(msg):
            if ok[0]:
                ok[0] = self._send(target, stats, send, msg, "generated", False)
        if self.examples > 0:
            run()
        return ok[0]

    # ---- sending --------------------------------------------------------------------------------------------
    def _request_class(self, target: Target) -> type:
        cls = interface_class(target.type_name)
        return {"topic": cls, "service": getattr(cls, "Request", cls), "action": getattr(cls, "Goal", cls)}[target.kind]

    def _sender(self, target: Target):
        """(send(msg, bad) -> the answer, if any; close()) for a target; send raises when the input could not be
        delivered (TimeoutError: sent, but not answered)."""
        node, cls = self.graph.node, interface_class(target.type_name)
        if target.kind == "topic":
            pub = node.create_publisher(cls, target.name, publisher_qos(node, target.name))
            deadline = time.monotonic() + 10.0
            while pub.get_subscription_count() == 0 and time.monotonic() < deadline:
                time.sleep(0.05)
            own = self.graph.commands.own if target.name == "/cmd_vel" else None

            def publish(msg, bad=False):
                if own is not None:
                    own.add(repr((msg.linear.x, msg.linear.y, msg.linear.z,
                                  msg.angular.x, msg.angular.y, msg.angular.z)))
                pub.publish(msg)
                time.sleep(PACE_S)
            return publish, lambda: node.destroy_publisher(pub)
        if target.kind == "service":
            client = self.graph.client(cls, target.name)
            if not client.wait_for_service(timeout_sec=10.0):
                raise RuntimeError(f"service {target.name} not available")

            def request(msg, bad=False):
                reply = self.graph.call(client, msg)
                if reply is None:
                    raise TimeoutError(f"no answer within {SERVICE_TIMEOUT_S:g} s")
                return reply
            return request, lambda: None
        client = self.graph.action_client(cls, target.name)
        if not client.wait_for_server(timeout_sec=10.0):
            raise RuntimeError(f"action server {target.name} not available")

        def goal(msg, bad=False):
            """Send a goal; a bad one may be rejected or accepted and then aborted at once (the result says
            why). Returns the handle: ``accepted`` is True only if a bad goal was still running after 2 s."""
            handle = self._wait(client.send_goal_async(msg), "goal")
            if handle is None or not handle.accepted:
                return handle
            if bad:
                result = self._wait(handle.get_result_async(), "result", 2.0, must=False)
                if result is not None:
                    return SimpleNamespace(accepted=False, status=result.status)
            self._wait(handle.cancel_goal_async(), "cancel")
            return handle
        return goal, lambda: None

    @staticmethod
    def _wait(future, what: str, timeout: float = SERVICE_TIMEOUT_S, must: bool = True):
        done = threading.Event()
        future.add_done_callback(lambda _: done.set())
        if not done.wait(timeout):
            if must:
                raise TimeoutError(f"{what} not answered within {timeout:g} s")
            return None
        return future.result()

    def _send(self, target: Target, stats: TargetStats, send, msg, label: str, bad: bool) -> bool:
        """Send one input and check every process; False when something died."""
        text = f"{label}: {describe(msg)}"
        self.recent.append(text)
        reply = None
        try:
            reply = send(msg, bad)
        except TimeoutError as exc:
            self.report.findings.append(Finding("no_answer", target.node, target.label, text, str(exc)))
        except Exception as exc:  # noqa: BLE001 - the middleware refused it (too big, unencodable): not sent
            stats.unsendable += 1
            self.say(f"    not sendable ({label}): {type(exc).__name__}: {exc}")
            return True
        stats.sent += 1
        if bad:
            stats.bad_sent += 1
            if target.kind == "topic":  # counted on /diagnostics
                self.report.bad_sent[target.node] += 1
            elif getattr(reply, "success", False) or getattr(reply, "accepted", False):  # refused in the answer
                answer = describe(reply) if hasattr(reply, "success") else "accepted, still running after 2 s"
                self.report.findings.append(Finding("accepted_bad_input", target.node, target.label, text,
                                                    f"answered {answer}"))
        return self._check(target)

    def _check(self, target: Target) -> bool:
        dead = self.graph.dead()
        if dead:
            for name, code, tail in dead:
                self.report.findings.append(Finding(
                    "crash", name, target.label, self.recent[-1] if self.recent else "-",
                    f"exit code {code}; recent inputs: {list(self.recent)[:-1]}; output:\n    "
                    + "\n    ".join(tail[-12:])))
            return False
        if self.graph.phase() != "active":
            status = self.graph.status
            self.report.findings.append(Finding("not_active", target.node, target.label,
                                                self.recent[-1] if self.recent else "-",
                                                f"manager phase {status.phase}: {status.reason}"))
            return False
        return True

    # ---- bookkeeping ----------------------------------------------------------------------------------------
    def _restart(self) -> None:
        self._settle_rejects(wait=False)
        self.report.restarts += 1
        self.graph.stop()
        self.say("  bringing the graph up again")
        self.graph.start()
        self._take_baseline()

    def _take_baseline(self) -> None:
        time.sleep(1.5)  # one diagnostics period
        self._baseline = {n: self.graph.diagnostics.rejects(n) for n in self.graph.managed}

    def _settle_rejects(self, wait: bool = True) -> None:
        if wait:
            time.sleep(1.5)
        for n in self.graph.managed:
            self.report.rejects_counted[n] += max(0, self.graph.diagnostics.rejects(n) - self._baseline.get(n, 0))
        self._baseline = {n: self.graph.diagnostics.rejects(n) for n in self.graph.managed}

    def _release_estop(self) -> None:
        """Fuzzing ~/estop and safety/estop latches the e-stop (correctly); release it, so that every target
        after it is fuzzed with the command path open (an unsafe command must be able to show)."""
        from std_srvs.srv import Trigger
        if "safety_shield" in self.graph.managed:
            client = self.graph.client(Trigger, "/safety_shield/reset")
            if client.wait_for_service(timeout_sec=5.0):
                self.graph.call(client, Trigger.Request(), 5.0)
