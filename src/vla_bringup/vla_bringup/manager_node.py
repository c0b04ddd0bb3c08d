"""The lifecycle manager node (Nav2 semantics; logic in manager_core).

Services: ~/manage_nodes (vla_interfaces/ManageNodes), ~/is_active (std_srvs/Trigger).
Publishes: ~/status (vla_interfaces/ManagerStatus, latched), /diagnostics.
Subscribes: <node>/heartbeat of every managed node.

Transitions run one at a time on a worker thread, calling each node's ~/change_state; the executor keeps
spinning (heartbeats, services) meanwhile. After start-up every node's heartbeat is watched: a lost node
brings the rest to INACTIVE in reverse order (no command reaches the robot) and the status says why.
"""
from __future__ import annotations

import queue
import threading
import time

import rclpy
from diagnostic_msgs.msg import DiagnosticArray, DiagnosticStatus, KeyValue
from lifecycle_msgs.msg import Transition as TransitionMsg
from lifecycle_msgs.srv import ChangeState, GetState
from rclpy.callback_groups import ReentrantCallbackGroup
from rclpy.clock import Clock, ClockType
from rclpy.node import Node
from std_srvs.srv import Trigger

from vla_bringup.manager_core import Command, HeartbeatMonitor, State, Step, plan, safe_stop_plan
from vla_bringup.manager_params import MANAGER_PARAMS
from vla_interfaces.msg import Heartbeat, ManagedNodeState, ManagerStatus
from vla_interfaces.srv import ManageNodes
from vla_ros import node_qos
from vla_ros.node_base import run_node
from vla_ros.node_params import declare_specs, read_specs


def qualify(name: str) -> str:
    return name if name.startswith("/") else "/" + name


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
        self.group = ReentrantCallbackGroup()
        self.steady = Clock(clock_type=ClockType.STEADY_TIME)
        self.monitor = HeartbeatMonitor(self.order, p["heartbeat_timeout"])
        self.states = {n: State.UNKNOWN for n in self.order}
        self.phase, self.reason = "idle", ""
        self.change = {n: self.create_client(ChangeState, f"{n}/change_state", callback_group=self.group)
                       for n in self.order}
        self.get = {n: self.create_client(GetState, f"{n}/get_state", callback_group=self.group) for n in self.order}
        for n in self.order:
            self.create_subscription(Heartbeat, f"{n}/heartbeat", lambda m, n=n: self._on_heartbeat(n, m),
                                     node_qos.HEARTBEAT, callback_group=self.group)
        self.status_pub = self.create_publisher(ManagerStatus, "~/status", node_qos.LATCHED)
        self.diag_pub = self.create_publisher(DiagnosticArray, "/diagnostics", 10)
        self.create_service(ManageNodes, "~/manage_nodes", self._on_manage, callback_group=self.group)
        self.create_service(Trigger, "~/is_active", self._on_is_active, callback_group=self.group)
        self.create_timer(0.05, self._check_heartbeats, clock=self.steady, callback_group=self.group)
        self.create_timer(p["diagnostics_period"], self._publish_diagnostics, clock=self.steady,
                          callback_group=self.group)
        self.jobs: queue.Queue = queue.Queue()
        self.worker = threading.Thread(target=self._work, daemon=True)
        self.worker.start()
        self._publish_status()
        if p["autostart"]:
            self.jobs.put((Command.STARTUP, None))

    # ---- worker ---------------------------------------------------------------------------------
    def _work(self) -> None:
        while rclpy.ok(context=self.context):
            try:
                command, arg = self.jobs.get(timeout=0.2)
            except queue.Empty:
                continue
            if command == "safe_stop":
                self._safe_stop(lost=arg)
                continue
            ok, message = self._run(command)
            done = arg
            if done is not None:
                done.put((ok, message))

    def _run(self, command: Command) -> tuple[bool, str]:
        self.monitor.disarm()
        name = command.name.lower()
        self._set_phase({Command.STARTUP: "starting", Command.RESUME: "starting", Command.CONFIGURE: "starting"}
                        .get(command, "stopping"), "")
        t0 = time.monotonic()
        if not self._wait_for_services():
            return False, self.reason
        self._refresh_states()
        for step in plan(command, self.order, self.states):
            ok, why = self._transition(step)
            if not ok:
                self.get_logger().error(f"{name} failed: {why}")
                self._set_phase("failed", why)
                for s in safe_stop_plan(self.order, self.states, lost=[step.node]):
                    self._transition(s)
                self._publish_status()
                return False, why
        final = {Command.STARTUP: "active", Command.RESUME: "active", Command.PAUSE: "paused",
                 Command.CONFIGURE: "paused", Command.RESET: "idle", Command.CLEANUP: "idle",
                 Command.SHUTDOWN: "idle"}[command]
        self._set_phase(final, "")
        if final == "active":
            self.monitor.arm(self._now())
        message = f"{name}: {len(self.order)} nodes {final} in {time.monotonic() - t0:.2f} s"
        self.get_logger().info(message)
        return True, message

    def _safe_stop(self, lost: list[str]) -> None:
        ages = ", ".join(f"{n} (last heartbeat {self.monitor.age(n, self._now()):.1f} s ago)" for n in lost)
        reason = f"heartbeat lost from {ages}"
        self.get_logger().error(f"{reason}; deactivating the remaining nodes")
        for n in lost:
            self.states[n] = State.UNKNOWN
        # 'safe_stop' is announced only once the survivors are INACTIVE: the status never claims a safe
        # state that is not yet reached.
        self._set_phase("stopping", reason)
        failed = [s.node for s in safe_stop_plan(self.order, self.states, lost) if not self._transition(s)[0]]
        if failed:
            reason += f"; could not deactivate {', '.join(failed)}"
        self._set_phase("safe_stop", reason + "; the remaining nodes were deactivated")

    def _wait_for_services(self) -> bool:
        deadline = time.monotonic() + self.p["service_wait_timeout"]
        for n in self.order:
            while not self.change[n].wait_for_service(timeout_sec=0.2):
                if time.monotonic() > deadline or not rclpy.ok(context=self.context):
                    self._set_phase("failed", f"{n} did not come up: its lifecycle services did not appear within "
                                              f"{self.p['service_wait_timeout']:g} s (is its process running?)")
                    return False
        return True

    def _refresh_states(self) -> None:
        for n in self.order:
            future = self.get[n].call_async(GetState.Request())
            result = self._wait(future, 5.0)
            self.states[n] = State(result.current_state.id) if result else State.UNKNOWN

    def _transition(self, step: Step) -> tuple[bool, str]:
        self.get_logger().info(f"{step.verb} {step.node}")
        request = ChangeState.Request(transition=TransitionMsg(id=int(step.transition)))
        result = self._wait(self.change[step.node].call_async(request), self.p["transition_timeout"])
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
        event = threading.Event()
        future.add_done_callback(lambda _: event.set())
        if not event.wait(timeout):
            future.cancel()
            return None
        return future.result()

    # ---- callbacks --------------------------------------------------------------------------------
    def _now(self) -> float:
        return self.steady.now().nanoseconds * 1e-9

    def _on_heartbeat(self, node: str, msg: Heartbeat) -> None:
        self.monitor.beat(node, self._now(), msg.state, msg.last_error)

    def _check_heartbeats(self) -> None:
        lost = self.monitor.lost(self._now()) if self.phase == "active" else []
        if lost:
            self.monitor.disarm()  # one safe stop per loss
            self.jobs.put(("safe_stop", lost))

    def _on_manage(self, request: ManageNodes.Request, response: ManageNodes.Response):
        try:
            command = Command(request.command)
        except ValueError:
            response.success, response.message = False, (
                f"unknown command {request.command}; use one of " + ", ".join(f"{c.name}={c.value}" for c in Command))
            return response
        done: queue.Queue = queue.Queue()
        self.jobs.put((command, done))
        response.success, response.message = done.get()
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
        values = [KeyValue(key=n, value=f"{self.states[n].name.lower()}, heartbeat {self.monitor.age(n, now):.2f} s")
                  for n in self.order]
        status = DiagnosticStatus(level=level, name=f"{self.get_name()}: bring-up", message=self.reason or self.phase,
                                  values=values)
        array = DiagnosticArray(status=[status])
        array.header.stamp = self.get_clock().now().to_msg()
        self.diag_pub.publish(array)


def main(args=None) -> None:
    raise SystemExit(run_node(LifecycleManager, args, threads=4))
