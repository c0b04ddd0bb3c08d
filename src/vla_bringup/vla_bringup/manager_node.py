"""The lifecycle manager node (Nav2 semantics; logic in manager_core).

Services: ~/manage_nodes (vla_interfaces/ManageNodes), ~/is_active (std_srvs/Trigger).
Publishes: ~/status (vla_interfaces/ManagerStatus, latched), /diagnostics.
Subscribes: <node>/heartbeat of every managed node.

One command runs at a time, on a worker thread that calls each node's ~/change_state; a ~/manage_nodes call
that arrives meanwhile is answered "busy" at once, so no caller holds more than one executor thread. The
heartbeats arrive in a callback group of their own and are judged on a thread of their own, so the watch
goes on while commands run. After start-up every node's heartbeat is watched (only beats from the publisher learned at
start-up count): a lost node, a second node with a managed node's name or a second heartbeat publisher
interrupts whatever command runs and brings the rest to INACTIVE, command gates first (no command reaches
the robot), and the status says why. "active" is reported only when every node's get_state says ACTIVE.
"""
from __future__ import annotations

import queue
import threading
import time
from dataclasses import dataclass

import rclpy
from diagnostic_msgs.msg import DiagnosticArray, DiagnosticStatus, KeyValue
from lifecycle_msgs.msg import Transition as TransitionMsg
from lifecycle_msgs.srv import ChangeState, GetState
from rclpy.callback_groups import MutuallyExclusiveCallbackGroup, ReentrantCallbackGroup
from rclpy.clock import Clock, ClockType
from rclpy.node import Node
from std_srvs.srv import Trigger

from vla_bringup.manager_core import (DUPLICATE_FIX, GRAPH_ONLY, Command, Endpoint, HeartbeatMonitor, State, Step,
                                      Transition, graph_faults, heartbeat_strangers, pick_heartbeat_publisher, plan,
                                      safe_stop_plan, unmet)
from vla_bringup.manager_params import MANAGER_PARAMS
from vla_interfaces.msg import Heartbeat, ManagedNodeState, ManagerStatus
from vla_interfaces.srv import ManageNodes
from vla_ros import node_qos
from vla_ros.node_base import run_node
from vla_ros.node_params import declare_specs, read_specs

STATUS_PERIOD = 0.2  # s
UP_COMMANDS = (Command.STARTUP, Command.CONFIGURE, Command.RESUME)
# Commands after which the nodes are gone or unconfigured: the watch stops when they begin.
DOWN_COMMANDS = (Command.SHUTDOWN, Command.RESET, Command.CLEANUP)
PHASE_AFTER = {Command.STARTUP: "active", Command.RESUME: "active", Command.PAUSE: "paused",
               Command.CONFIGURE: "paused", Command.RESET: "idle", Command.CLEANUP: "idle", Command.SHUTDOWN: "idle"}


WATCH_PERIOD = 0.05  # s between two judgements of the heartbeats (detection within timeout + this)


def qualify(name: str) -> str:
    return name if name.startswith("/") else "/" + name


def fully_qualified(name: str, namespace: str) -> str:
    return namespace.rstrip("/") + "/" + name


@dataclass(frozen=True)
class Fault:
    """Why the graph must go to a safe state: lost nodes (no heartbeat) and/or a graph that cannot be trusted."""
    reason: str
    lost: tuple[str, ...] = ()


class Interrupted(Exception):
    """A fault arrived while a command ran."""


class LifecycleManager(Node):
    @classmethod
    def all_params(cls):
        return MANAGER_PARAMS

    def __init__(self, **kwargs):
        super().__init__("lifecycle_manager", **kwargs)
        problems = declare_specs(self, MANAGER_PARAMS)
        p = read_specs(self, MANAGER_PARAMS)
        self.p = p
        self.order = [qualify(n) for n in p["node_names"] if n]
        if problems or not self.order:
            raise SystemExit(f"lifecycle_manager: {'; '.join(problems) or 'node_names is empty: list the managed nodes in bring-up order'}")
        self.gates = [g for g in (qualify(n) for n in p["command_gates"] if n) if g in self.order]
        self.group = ReentrantCallbackGroup()
        # Heartbeats arrive in a group of their own that never waits on anything.
        self.watch_group = MutuallyExclusiveCallbackGroup()
        self.steady = Clock(clock_type=ClockType.STEADY_TIME)
        self.monitor = HeartbeatMonitor(self.order, p["heartbeat_timeout"])
        self.states = {n: State.UNKNOWN for n in self.order}
        self.phase, self.reason = "idle", ""
        self.change = {n: self.create_client(ChangeState, f"{n}/change_state", callback_group=self.group)
                       for n in self.order}
        self.get = {n: self.create_client(GetState, f"{n}/get_state", callback_group=self.group) for n in self.order}
        for n in self.order:
            self.create_subscription(Heartbeat, f"{n}/heartbeat", lambda m, info, n=n: self._on_heartbeat(n, m, info),
                                     node_qos.HEARTBEAT, callback_group=self.watch_group)
        self.status_pub = self.create_publisher(ManagerStatus, "~/status", node_qos.LATCHED)
        self.diag_pub = self.create_publisher(DiagnosticArray, "/diagnostics", 10)
        self.create_service(ManageNodes, "~/manage_nodes", self._on_manage, callback_group=self.group)
        self.create_service(Trigger, "~/is_active", self._on_is_active, callback_group=self.group)
        self.create_timer(p["diagnostics_period"], self._publish_diagnostics, clock=self.steady,
                          callback_group=self.group)
        # ~/status is also republished on a steady timer: the safety shield (parameter supervisor) stops the
        # robot when it goes silent for its supervisor_timeout.
        self.create_timer(STATUS_PERIOD, self._publish_status, clock=self.steady, callback_group=self.group)
        self.faults: queue.Queue[Fault] = queue.Queue()
        self.reported: set[str] = set()        # graph faults already raised (each once)
        self.jobs: queue.Queue = queue.Queue()
        self.busy_lock = threading.Lock()
        self.busy: tuple[str, float] | None = None  # (what runs, since when): ~/manage_nodes answers "busy" meanwhile
        self.stopping = False                   # a safe stop runs: its own transitions are not interrupted
        self.lost: set[str] = set()             # nodes declared lost: a later stop does not wait on them
        self.worker = threading.Thread(target=self._work, daemon=True)
        self.worker.start()
        # The judge of heartbeats and of the graph is a thread of its own, not an executor callback: however
        # busy the executor is, it keeps judging (if beats stopped being delivered, nodes would be found lost:
        # the safe side).
        self.watcher = threading.Thread(target=self._watch, daemon=True)
        self.watcher.start()
        self._publish_status()
        if p["autostart"]:
            self._admit("startup")
            self.jobs.put((Command.STARTUP, None))

    # ---- worker ---------------------------------------------------------------------------------
    def _admit(self, what: str) -> str | None:
        """Mark the manager busy with ``what``; return what already runs (and refuse) if it is busy."""
        with self.busy_lock:
            if self.busy is not None:
                running, since = self.busy
                return f"{running} (for {time.monotonic() - since:.1f} s)"
            self.busy = (what, time.monotonic())
            return None

    def _done(self) -> None:
        with self.busy_lock:
            self.busy = None

    def _work(self) -> None:
        while rclpy.ok(context=self.context):
            try:
                fault = self.faults.get_nowait()
            except queue.Empty:
                fault = None
            if fault is not None:
                self._safe_stop(self._merge_pending(fault))
                continue
            try:
                command, done = self.jobs.get(timeout=0.5)
            except queue.Empty:
                continue
            if command is None:
                continue  # a fault woke the worker
            try:
                ok, message = self._run(command)
            except Interrupted as exc:
                ok, message = False, f"{command.name.lower()} interrupted: {exc}"
            except Exception as exc:  # noqa: BLE001 - a bug must not leave a caller waiting forever
                ok, message = False, f"{command.name.lower()} failed: {type(exc).__name__}: {exc}"
                self.get_logger().error(message)
                self._set_phase("failed", message)
            finally:
                self._done()
            if done is not None:
                done.put((ok, message))

    def _run(self, command: Command) -> tuple[bool, str]:
        name = command.name.lower()
        if command in DOWN_COMMANDS:
            self.monitor.disarm()
        self._set_phase("starting" if command in UP_COMMANDS else "stopping", "")
        t0 = time.monotonic()
        if command in UP_COMMANDS:
            if not self._wait_for_services() or not self._bind_heartbeats():
                return False, self.reason
        skipped = [] if command in UP_COMMANDS else self._unreachable()
        if not self._refresh_states(patient=command in UP_COMMANDS, skip=skipped):
            return False, self.reason
        for step in plan(command, [n for n in self.order if n not in skipped], self.states, self.gates):
            self._interrupt_on_fault()
            ok, why = self._transition(step)
            if not ok:
                return self._fail(name, why, step.node)
        # Verify, never assume: every node says where it is (a busy node is asked again, up to the service wait).
        if not self._refresh_states(patient=command in UP_COMMANDS, skip=skipped):
            return self._fail(name, self.reason, None)
        problems = unmet(command, self.order, self.states)
        if problems:
            return self._fail(name, "after the transitions " + "; ".join(problems), None)
        final = PHASE_AFTER[command]
        if command in UP_COMMANDS:
            self.lost.clear()  # every node answered get_state just now
        self._set_phase(final, "")
        if command not in DOWN_COMMANDS and not self.monitor.armed:
            self.monitor.arm(self._now())
        message = f"{name}: {len(self.order)} nodes {final} in {time.monotonic() - t0:.2f} s"
        if skipped:
            message += f" (skipped, not reachable: {', '.join(skipped)})"
        self.get_logger().info(message)
        return True, message

    def _fail(self, name: str, why: str, node: str | None) -> tuple[bool, str]:
        self.get_logger().error(f"{name} failed: {why}")
        self._set_phase("failed", why)
        self.stopping = True
        try:
            for s in safe_stop_plan(self.order, self.states, lost=[node] if node else [], gates=self.gates):
                self._transition(s)
        finally:
            self.stopping = False
        self._publish_status()
        return False, why

    def _merge_pending(self, fault: Fault) -> Fault:
        """One safe stop for every fault already queued (a second graph shows up as several at once)."""
        reasons, lost = [fault.reason], list(fault.lost)
        while True:
            try:
                more = self.faults.get_nowait()
            except queue.Empty:
                return Fault("; ".join(reasons), tuple(lost))
            reasons += [more.reason] if more.reason not in reasons else []
            lost += [n for n in more.lost if n not in lost]

    def _interrupt_on_fault(self) -> None:
        if not self.stopping and not self.faults.empty():
            raise Interrupted(self.faults.queue[0].reason)

    def _safe_stop(self, fault: Fault) -> None:
        self.get_logger().error(f"{fault.reason}; deactivating the remaining nodes")
        with self.busy_lock:  # callers are refused meanwhile (a command it interrupted has already ended)
            admitted, self.busy = self.busy, ("safe stop", time.monotonic())
        self.stopping = True
        try:
            self.lost.update(fault.lost)
            for n in fault.lost:
                if self.states[n] == State.ACTIVE:
                    # A frozen node (alive, executor stuck) deactivates as soon as it runs again.
                    self.change[n].call_async(ChangeState.Request(
                        transition=TransitionMsg(id=int(Transition.DEACTIVATE))))
                self.states[n] = State.UNKNOWN
            # The command gates (the safety shield) go down before the fault is announced, so no command they
            # forward can follow a published loss; then 'stopping'. 'safe_stop' is announced only once the
            # survivors are INACTIVE: the status never claims a safe state that is not yet reached.
            for step in safe_stop_plan(self.order, self.states, fault.lost, self.gates):
                if step.node not in self.gates:
                    break
                self._transition(step)
            self._set_phase("stopping", fault.reason)
            self._refresh_states(patient=False, skip=list(fault.lost))
            steps = safe_stop_plan(self.order, self.states, fault.lost, self.gates)
            failed = [s.node for s in steps if not self._transition(s)[0]]
            reason = fault.reason + (f"; could not deactivate {', '.join(failed)}" if failed else "")
            self._set_phase("safe_stop", reason + "; the remaining nodes were deactivated")
        finally:
            self.stopping = False
            with self.busy_lock:
                self.busy = admitted  # a command admitted just before the fault still waits its turn

    def _wait_for_services(self) -> bool:
        deadline = time.monotonic() + self.p["service_wait_timeout"]
        for n in self.order:
            while not self.change[n].wait_for_service(timeout_sec=0.2):
                self._interrupt_on_fault()
                if time.monotonic() > deadline or not rclpy.ok(context=self.context):
                    self._set_phase("failed", f"{n} did not come up: its lifecycle services did not appear within "
                                              f"{self.p['service_wait_timeout']:g} s (is its process running?)")
                    return False
        return True

    def _unreachable(self) -> list[str]:
        """Nodes found lost or whose lifecycle services are gone (their process exited): stopping skips them
        at once instead of waiting out a transition timeout on each."""
        gone = [n for n in self.order if n in self.lost or not self.change[n].service_is_ready()]
        for n in gone:
            self.get_logger().warning(f"{n} is not reachable (its lifecycle services are gone); skipping it")
            self.states[n] = State.UNKNOWN
        return gone

    def _bind_heartbeats(self) -> bool:
        """Learn each node's heartbeat publisher (once its one publisher is discovered); refuse a graph where a
        managed name is taken twice or a heartbeat topic has a second publisher."""
        deadline = time.monotonic() + self.p["service_wait_timeout"]
        while True:
            names, publishers = self._graph()
            faults = graph_faults(self.order, names, publishers, self.monitor.publisher)
            waiting = []
            for n in self.order:
                if n in self.monitor.publisher:
                    continue
                gid, why = pick_heartbeat_publisher(n, publishers[n])
                if why:
                    faults.append(why)
                elif gid is None:
                    waiting.append(n)
                else:
                    self.monitor.bind(n, gid)
            if faults:
                self._set_phase("failed", "; ".join(faults))
                self.reported.update(faults)
                return False
            if not waiting:
                return True
            if time.monotonic() > deadline or not rclpy.ok(context=self.context):
                self._set_phase("failed", f"no heartbeat publisher of {', '.join(waiting)} appeared within "
                                          f"{self.p['service_wait_timeout']:g} s (is it a managed node?)")
                return False
            time.sleep(0.1)

    def _graph(self) -> tuple[list[str], dict[str, list[Endpoint]]]:
        names = [fully_qualified(n, ns) for n, ns in self.get_node_names_and_namespaces()]
        publishers = {n: [Endpoint(fully_qualified(i.node_name, i.node_namespace), bytes(i.endpoint_gid))
                          for i in self.get_publishers_info_by_topic(f"{n}/heartbeat")] for n in self.order}
        return names, publishers

    def _refresh_states(self, patient: bool, skip=()) -> bool:
        """Ask every node (but ``skip``) for its state, all at once. ``patient``: a node that does not answer is
        asked again until the service wait timeout (a node can advertise its services before it spins);
        otherwise it keeps its last known state (a stop still deactivates a node too busy to answer)."""
        deadline = time.monotonic() + (self.p["service_wait_timeout"] if patient else 0.0)
        pending = [n for n in self.order if n not in skip]
        while pending:
            futures = {n: self.get[n].call_async(GetState.Request()) for n in pending}
            answered = set()
            for n, future in futures.items():
                result = self._wait(future, 2.0 if patient else 1.0)
                if result is not None:
                    self.states[n] = State(result.current_state.id)
                    answered.add(n)
                elif patient:
                    self.states[n] = State.UNKNOWN
            pending = [n for n in pending if n not in answered]
            if not pending or not patient:
                break
            if time.monotonic() > deadline:
                self._set_phase("failed", f"{', '.join(pending)} did not answer get_state within "
                                          f"{self.p['service_wait_timeout']:g} s (is its process stuck?)")
                return False
        return True

    def _transition(self, step: Step) -> tuple[bool, str]:
        self.get_logger().info(f"{step.verb} {step.node}")
        request = ChangeState.Request(transition=TransitionMsg(id=int(step.transition)))
        self.monitor.hold(step.node)
        try:
            result = self._wait(self.change[step.node].call_async(request), self.p["transition_timeout"])
        finally:
            self.monitor.release(step.node, self._now())
        self._refresh_one(step.node)
        self._publish_status()
        if result is None:
            return False, f"{step.node} did not answer '{step.verb}' within {self.p['transition_timeout']:g} s"
        if not result.success:
            reason = self._error_of(step.node).removeprefix(f"{step.verb} failed: ")
            return False, f"{step.node} failed to {step.verb}: {reason}"
        return True, ""

    def _error_of(self, node: str) -> str:
        # The node records its reason and publishes a heartbeat right away; allow it a moment to arrive.
        deadline = time.monotonic() + 1.0
        while time.monotonic() < deadline and not self.monitor.error.get(node):
            time.sleep(0.02)
        return self.monitor.error.get(node) or "no reason given (see the node's log)"

    def _refresh_one(self, node: str) -> None:
        result = self._wait(self.get[node].call_async(GetState.Request()), 5.0)
        self.states[node] = State(result.current_state.id) if result else State.UNKNOWN

    def _wait(self, future, timeout: float):
        """The future's result, or None after ``timeout``; raises Interrupted when a fault arrives first."""
        event = threading.Event()
        future.add_done_callback(lambda _: event.set())
        deadline = time.monotonic() + timeout
        while not event.wait(min(0.05, max(0.0, deadline - time.monotonic()))):
            if time.monotonic() >= deadline or not rclpy.ok(context=self.context):
                future.cancel()
                return None
            self._interrupt_on_fault()
        return future.result()

    # ---- the watch (never waits) ------------------------------------------------------------------
    def _now(self) -> float:
        return self.steady.now().nanoseconds * 1e-9

    def _on_heartbeat(self, node: str, msg: Heartbeat, info) -> None:
        # rclpy before Kilted gives no publisher GID with a message: the graph check stands in (see manager_core).
        gid = (info.get("publisher_gid") or {}).get("data") if "publisher_gid" in info else GRAPH_ONLY
        if self.monitor.beat(node, self._now(), msg.state, msg.last_error, publisher=gid) or \
                node not in self.monitor.publisher or gid is GRAPH_ONLY:
            return
        sender = next((str(e) for e in self._graph()[1][node] if e.gid == bytes(gid or b"")),
                      f"gid {bytes(gid or b'').hex()[:12]}…")
        self._raise_graph_fault(f"a heartbeat for {node} came from another publisher, {sender}: a second node "
                                f"answers to {node} or heartbeats are forged; {DUPLICATE_FIX}")

    def _watch(self) -> None:
        next_graph_check = time.monotonic()
        while rclpy.ok(context=self.context):
            time.sleep(WATCH_PERIOD)
            try:
                self._check_heartbeats()
                if time.monotonic() >= next_graph_check:
                    next_graph_check = time.monotonic() + self.p["graph_check_period"]
                    self._check_graph()
            except Exception as exc:  # noqa: BLE001 - the node is being destroyed, or a graph query failed
                if not rclpy.ok(context=self.context):
                    return
                self.get_logger().error(f"heartbeat watch: {type(exc).__name__}: {exc}",
                                        throttle_duration_sec=5.0)

    def _check_heartbeats(self) -> None:
        now = self._now()
        lost = self.monitor.lost(now)
        if lost:
            self.monitor.disarm()  # one safe stop per loss
            ages = ", ".join(f"{n} (last heartbeat {self.monitor.age(n, now):.1f} s ago)" for n in lost)
            self._fault(Fault(f"heartbeat lost from {ages}", tuple(lost)))

    def _check_graph(self) -> None:
        if not self.monitor.publisher:
            return  # nothing bound yet: start-up checks the graph itself
        names, publishers = self._graph()
        for node in heartbeat_strangers(self.order, publishers, self.monitor.publisher):
            self.monitor.distrust(node)
        for fault in graph_faults(self.order, names, publishers, self.monitor.publisher):
            self._raise_graph_fault(fault)

    def _raise_graph_fault(self, reason: str) -> None:
        if reason in self.reported:
            return
        self.reported.add(reason)
        self._fault(Fault(reason))

    def _fault(self, fault: Fault) -> None:
        if self.stopping and fault.reason not in self.reason:
            # A stop is already under way (the command path goes down with it): say what else went wrong at once
            # rather than after that stop ends; the queued fault still gets its own stop of what remains.
            self.get_logger().error(f"{fault.reason} (while stopping)")
            self._set_phase(self.phase, f"{self.reason}; {fault.reason}" if self.reason else fault.reason)
        self.faults.put(fault)
        self.jobs.put((None, None))  # wake the worker if it waits for a job

    # ---- services (answer at once or after the one command they started) ---------------------------
    def _on_manage(self, request: ManageNodes.Request, response: ManageNodes.Response):
        try:
            command = Command(request.command)
        except ValueError:
            response.success, response.message = False, (
                f"unknown command {request.command}; use one of " + ", ".join(f"{c.name}={c.value}" for c in Command))
            return response
        running = self._admit(command.name.lower())
        if running is not None:
            response.success, response.message = False, (
                f"busy: {running} is in progress; one command runs at a time: call again when ~/status shows it "
                f"finished")
            return response
        done: queue.Queue = queue.Queue()
        self.jobs.put((command, done))
        while True:
            try:
                response.success, response.message = done.get(timeout=0.2)
                return response
            except queue.Empty:
                if not rclpy.ok(context=self.context) or not self.worker.is_alive():
                    response.success, response.message = False, "the lifecycle manager is shutting down"
                    return response

    def _on_is_active(self, request: Trigger.Request, response: Trigger.Response):
        response.success = self.phase == "active"
        response.message = self.phase + (f": {self.reason}" if self.reason else "")
        return response

    # ---- reporting --------------------------------------------------------------------------------
    def _set_phase(self, phase: str, reason: str) -> None:
        self.phase, self.reason = phase, reason
        self._publish_status()

    def _publish_status(self) -> None:
        now = self._now()
        msg = ManagerStatus(active=self.phase == "active", phase=self.phase, reason=self.reason)
        msg.stamp = self.get_clock().now().to_msg()
        for n in self.order:
            age = self.monitor.age(n, now)
            msg.nodes.append(ManagedNodeState(node=n, state=int(self.states[n]), heartbeat_age=age,
                                              alive=0 <= age <= self.monitor.timeout,
                                              last_error=self.monitor.error.get(n, "")))
        self.status_pub.publish(msg)

    def _publish_diagnostics(self) -> None:
        level = {"active": DiagnosticStatus.OK, "failed": DiagnosticStatus.ERROR,
                 "safe_stop": DiagnosticStatus.ERROR}.get(self.phase, DiagnosticStatus.WARN)
        now = self._now()
        values = [KeyValue(key=n, value=f"{self.states[n].name.lower()}, heartbeat {self.monitor.age(n, now):.2f} s"
                                        + (f", {self.monitor.foreign[n]} foreign heartbeats ignored"
                                           if self.monitor.foreign.get(n) else ""))
                  for n in self.order]
        busy = self.busy
        values.append(KeyValue(key="busy", value=busy[0] if busy else ""))
        status = DiagnosticStatus(level=level, name=f"{self.get_name()}: bring-up", message=self.reason or self.phase,
                                  values=values)
        array = DiagnosticArray(status=[status])
        array.header.stamp = self.get_clock().now().to_msg()
        self.diag_pub.publish(array)


def main(args=None) -> None:
    raise SystemExit(run_node(LifecycleManager, args, threads=4))
