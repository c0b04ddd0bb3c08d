"""Bring a profile up and down: processes (or one process), the lifecycle manager, supervision.

Used by `vla up`, `vla demo` and `vla bench`. The caller gets a client node (``bringup.node``) spinning in
the background to subscribe to whatever it wants to watch.
"""
from __future__ import annotations

import os
import threading
import time
from importlib.metadata import entry_points
from pathlib import Path
from typing import Sequence

import rclpy
import yaml
from ament_index_python.packages import PackageNotFoundError, get_package_prefix
from rclpy.executors import MultiThreadedExecutor, SingleThreadedExecutor
from rclpy.node import Node
from rclpy.signals import SignalHandlerOptions

from vla_bringup.manager_core import DUPLICATE_FIX, Command
from vla_bringup.manager_params import MANAGER_PARAMS
from vla_bringup.profile import NodeEntry, Profile
from vla_bringup.supervisor import ProcessGroup
from vla_core.params import ParamSpec
from vla_interfaces.msg import ManagerStatus
from vla_interfaces.srv import ManageNodes
from vla_ros import node_qos
from vla_ros.spinning import SpinThread


# How long `vla up` looks for another graph on the ROS domain before starting anything. A new participant
# usually discovers the others in 0.4-1.5 s here; when their first answers are lost (a loaded machine) it
# learns of them at their next periodic announcement, every 3 s with Fast DDS's defaults. Measured: 2 s missed
# a running graph in 2 of 6 tries on a machine at load 16.
DISCOVERY_WAIT = 3.5


class BringupError(RuntimeError):
    """Bring-up failed; the message says which node and why."""


def node_class(package: str, executable: str) -> type | None:
    """The node class registered for ``package``/``executable`` in the 'vla.nodes' entry points."""
    for ep in entry_points(group="vla.nodes"):
        if ep.name == executable and (ep.dist is None or ep.dist.name == package):
            return ep.load()
    return None


def spec_lookup(package: str, executable: str) -> Sequence[ParamSpec] | None:
    """A node's own parameter specs from the 'vla.params' entry points (pure modules: nothing heavy is
    imported to validate a parameter file)."""
    for ep in entry_points(group="vla.params"):
        if ep.name == executable and (ep.dist is None or ep.dist.name == package):
            return tuple(ep.load())
    return None


def executable_path(entry: NodeEntry) -> str:
    try:
        prefix = get_package_prefix(entry.package)
    except PackageNotFoundError as exc:
        raise BringupError(f"node '{entry.name}': package '{entry.package}' is not built or not sourced; "
                           f"run 'make setup' and 'source env.sh'") from exc
    path = Path(prefix) / "lib" / entry.package / entry.executable
    if not path.is_file():
        raise BringupError(f"node '{entry.name}': {path} does not exist; is '{entry.executable}' an executable "
                           f"of {entry.package}? (rebuild with 'make setup')")
    return str(path)


def fully_qualified(entry: NodeEntry) -> str:
    return (("/" + entry.namespace.strip("/")) if entry.namespace.strip("/") else "") + "/" + entry.name


def command_gates(profile: Profile) -> list[str]:
    """The profile's nodes that every robot command passes through (the manager's ``command_gates``): stopped
    first whenever the graph goes down."""
    value = profile.manager.parameters.get("command_gates")
    for path in reversed(profile.manager.params_files):
        if value is not None:
            break
        data = yaml.safe_load(Path(path).read_text()) or {}
        for key in (profile.manager.name, f"/{profile.manager.name}", "/**"):
            section = data.get(key) if isinstance(data, dict) else None
            if isinstance(section, dict) and "command_gates" in (section.get("ros__parameters") or {}):
                value = section["ros__parameters"]["command_gates"]
                break
    if value is None:
        value = next(s.default for s in MANAGER_PARAMS if s.name == "command_gates")
    names = {e.name for e in profile.nodes}
    return [n.strip("/") for n in value if n and n.strip("/") in names]


class Bringup:
    def __init__(self, profile: Profile, *, single_process: bool = False, log_dir: Path | None = None,
                 echo: bool = True, say=print, discovery_wait: float = DISCOVERY_WAIT):
        self.profile = profile
        self.gates = command_gates(profile)
        self.discovery_wait = discovery_wait
        self.spawned = False
        self.single_process = single_process
        stamp = time.strftime("%Y%m%d-%H%M%S")
        ws = Path(os.environ.get("VLA_WS", Path.cwd()))
        self.log_dir = Path(log_dir or ws / "log" / "vla" / f"{profile.name}-{stamp}-{os.getpid()}")
        self.group = ProcessGroup(self.log_dir, quiet=not echo)
        self.say = say
        self.status: ManagerStatus | None = None
        self.status_event = threading.Condition()
        self.in_process: list[Node] = []
        self.executor: MultiThreadedExecutor | None = None
        self.spinners: list[SpinThread] = []
        self.node: Node | None = None
        self.active_after: float | None = None

    # ---- start ----------------------------------------------------------------------------------
    def start(self, timeout: float = 90.0) -> float:
        """Start every node and wait until the manager reports all active; return the seconds it took."""
        t0 = time.monotonic()
        if not rclpy.ok():
            # `vla` handles SIGINT/SIGTERM itself (an orderly lifecycle shutdown needs a live context).
            rclpy.init(signal_handler_options=SignalHandlerOptions.NO)
        self.node = rclpy.create_node(f"vla_cli_{os.getpid()}")
        manager = self.profile.manager.name
        self.node.create_subscription(ManagerStatus, f"/{manager}/status", self._on_status, node_qos.LATCHED)
        self.manage = self.node.create_client(ManageNodes, f"/{manager}/manage_nodes")
        # The gates' lifecycle clients exist from the start, so that after a failure they have long discovered
        # their servers (a client made then may not, within its timeout, on a busy machine).
        from lifecycle_msgs.srv import ChangeState, GetState
        self._gate_clients = {(gate, name): self.node.create_client(srv, f"/{gate}/{name}") for gate in self.gates
                              for srv, name in ((ChangeState, "change_state"), (GetState, "get_state"))}
        self.executor = MultiThreadedExecutor(num_threads=2)
        self.executor.add_node(self.node)
        self._refuse_a_second_graph()
        self.spawned = True
        if self.single_process:
            self._start_in_process()
        else:
            for entry in self.profile.entries():
                argv = [executable_path(entry), *entry.ros_args()]
                child = self.group.start(entry.name, argv)
                self.say(f"started {entry.name} (pid {child.process.pid})")
        self._start_spinning(self.executor)
        deadline = time.monotonic() + timeout
        while True:
            dead = self.group.exited()
            if dead:
                c = dead[0]
                raise BringupError(f"{c.name} exited with code {c.process.returncode} during bring-up; "
                                   f"last output:\n  " + "\n  ".join(c.tail[-8:]) + f"\n(full log: {c.log_path})")
            status = self.status
            if status is not None and status.phase == "active":
                self.active_after = time.monotonic() - t0
                return self.active_after
            if status is not None and status.phase == "failed":
                raise BringupError(status.reason)
            if time.monotonic() > deadline:
                raise BringupError(f"not all nodes active after {timeout:g} s; manager phase: "
                                   f"{status.phase if status else 'no status yet'}; logs in {self.log_dir}")
            with self.status_event:
                self.status_event.wait(0.1)

    def _refuse_a_second_graph(self) -> None:
        """Raise when a node of this profile already answers on the ROS domain: two graphs with the same names
        would take each other's commands, services and heartbeats."""
        wanted = {fully_qualified(e) for e in self.profile.entries()}
        deadline = time.monotonic() + self.discovery_wait
        while True:
            seen = {ns.rstrip("/") + "/" + n for n, ns in self.node.get_node_names_and_namespaces()}
            # A node's endpoints can be discovered before its name: a heartbeat or status publisher counts too.
            taken = sorted(n for n in wanted if n in seen or self.node.count_publishers(f"{n}/heartbeat")
                           or self.node.count_publishers(f"{n}/status"))
            if taken:
                domain = os.environ.get("ROS_DOMAIN_ID") or "0"
                raise BringupError(f"refusing to start profile '{self.profile.name}': {', '.join(taken)} already "
                                   f"{'runs' if len(taken) == 1 else 'run'} on ROS domain {domain} (another graph is "
                                   f"up); {DUPLICATE_FIX}")
            if time.monotonic() >= deadline:
                return
            time.sleep(0.05)

    def _start_in_process(self) -> None:
        """Every node in this process, each on its own executor thread: one executor over all of them would
        rebuild a wait set of every entity on each /clock, image and heartbeat message (measured: the sim then
        reached 1.5x instead of 5x real time)."""
        from vla_bringup.manager_node import LifecycleManager
        for entry in self.profile.entries():
            cls = LifecycleManager if entry is self.profile.manager else node_class(entry.package, entry.executable)
            if cls is None:
                raise BringupError(f"node '{entry.name}': no 'vla.nodes' entry point for {entry.package}/"
                                   f"{entry.executable}; it can run only as its own process")
            node = cls(cli_args=entry.ros_args(), use_global_arguments=False)
            # The manager's one ~/manage_nodes caller waits in its callback while the worker drives transitions;
            # service responses and the heartbeat watch need threads of their own.
            executor = (MultiThreadedExecutor(num_threads=3) if cls is LifecycleManager else SingleThreadedExecutor())
            executor.add_node(node)
            self.in_process.append(node)
            self._start_spinning(executor)
            self.say(f"created {entry.name} in this process")

    def _start_spinning(self, executor) -> None:
        self.spinners.append(SpinThread(executor).start())

    def _on_status(self, msg: ManagerStatus) -> None:
        with self.status_event:
            self.status = msg
            self.status_event.notify_all()

    # ---- supervise --------------------------------------------------------------------------------
    def supervise(self, stop: threading.Event, duration: float | None = None, grace: float = 10.0) -> str | None:
        """Block until ``stop`` is set, ``duration`` passes, a node process exits or the manager leaves
        'active'; return the reason for a failure, or None for a requested stop.

        When a managed node's process dies, the lifecycle manager (not this supervisor) brings the rest to a
        safe state, exactly as it would under `ros2 launch`; this waits up to ``grace`` seconds for that.
        """
        deadline = None if duration is None else time.monotonic() + duration
        while not stop.is_set():
            for c in self.group.exited():
                death = f"{c.name} exited with code {c.process.returncode} (log: {c.log_path})"
                if c.name == self.profile.manager.name:
                    return death
                self.say(f"{death}; waiting for the lifecycle manager to stop the rest safely")
                t0 = time.monotonic()
                while time.monotonic() - t0 < grace and not stop.is_set():
                    status = self.status
                    if status is not None and status.phase in ("safe_stop", "failed"):
                        return f"{death}; {status.reason}"
                    stop.wait(0.05)
                return f"{death}; the lifecycle manager did not report a safe stop within {grace:g} s"
            status = self.status
            if status is not None and status.phase in ("safe_stop", "failed"):
                return status.reason
            if deadline is not None and time.monotonic() > deadline:
                return None
            stop.wait(0.1)
        return None

    # ---- stop -------------------------------------------------------------------------------------
    def shutdown(self, timeout: float = 20.0, orderly: bool = True) -> None:
        """End every node, the command gates (the safety shield) first.

        ``orderly``: deactivate, clean up and shut down every node through the manager first (a requested
        stop). After a failure the manager is not asked (it may be gone, busy with a safe stop, or one of two
        graphs answering to its name): unless its safe stop already left them INACTIVE, the gates are asked to
        deactivate themselves (the shield sends its stop command) and their processes are stopped and waited
        for before any other is signalled. The processes are ended whatever happens."""
        codes: dict[str, int] = {}
        try:
            if orderly:
                self._lifecycle_shutdown(timeout)
        except Exception as exc:  # noqa: BLE001 - still end every process below
            self.say(f"lifecycle shutdown failed ({exc}); stopping processes")
        finally:
            if orderly:
                codes = self.group.stop(first=self.gates)
            else:
                # After the manager's safe stop the gates are INACTIVE already: every process may go at once.
                gated = self._gates_inactive() or self._deactivate_gates()
                codes = self.group.stop(timeout=3.0, first=() if gated else self.gates, kill_after=1.0)
                if self.gates and self.spawned:
                    self.say(f"{', '.join(self.gates)} {'inactive' if gated else 'not answering: stopped first'} "
                             f"(no command reaches the robot); every process stopped")
            self._release()
        bad = {k: v for k, v in codes.items() if v not in (0, None)}
        if bad:
            self.say("processes that did not exit cleanly: " + ", ".join(f"{k} ({v})" for k, v in bad.items()))

    def _deactivate_gates(self, timeout: float = 2.0) -> bool:
        """Ask each gate to deactivate (the shield then sends its stop command) before its process is signalled:
        a node ending on SIGINT finds its ROS context already shut down and can publish nothing more. Return
        True when every gate then says it is not ACTIVE (a gate that does not answer within ``timeout`` seconds
        is stopped on its own first). The gate is asked for its state even when the deactivation goes
        unanswered: a shield that lost its supervisor has often deactivated itself, and on a loaded machine
        one answer can be late where the next is not."""
        if not self.spawned or self.node is None or not rclpy.ok():
            return False
        from lifecycle_msgs.msg import State, Transition
        from lifecycle_msgs.srv import ChangeState, GetState
        deactivate = ChangeState.Request(transition=Transition(id=Transition.TRANSITION_DEACTIVATE))
        confirmed = True
        for gate in self.gates:
            deadline = time.monotonic() + timeout
            state = None
            for name, request in (("change_state", deactivate), ("get_state", GetState.Request())):
                client = self._gate_clients[(gate, name)]
                left = deadline - time.monotonic()
                if left <= 0 or not client.wait_for_service(timeout_sec=left):
                    continue
                done = threading.Event()
                future = client.call_async(request)
                future.add_done_callback(lambda _: done.set())
                # An inactive gate refuses the deactivation at once; a frozen one does not answer.
                if done.wait(max(0.0, deadline - time.monotonic())):
                    state = getattr(future.result(), "current_state", None)
                elif name == "change_state":
                    deadline = max(deadline, time.monotonic() + 0.5)  # leave the state query a moment
            confirmed = confirmed and state is not None and state.id != State.PRIMARY_STATE_ACTIVE
        return confirmed

    def _gates_inactive(self) -> bool:
        status = self.status
        if status is None or status.phase != "safe_stop":
            return False
        states = {n.node.lstrip("/"): n.state for n in status.nodes}
        return all(states.get(g) == 2 for g in self.gates)  # lifecycle_msgs/State INACTIVE

    def _lifecycle_shutdown(self, timeout: float) -> None:
        if not self.spawned or self.node is None or not rclpy.ok() or \
                not self.manage.wait_for_service(timeout_sec=1.0):
            return
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            done = threading.Event()
            future = self.manage.call_async(ManageNodes.Request(command=int(Command.SHUTDOWN)))
            future.add_done_callback(lambda _: done.set())
            if not done.wait(max(0.0, deadline - time.monotonic())):
                break
            answer = future.result()
            if answer is None or answer.success or not answer.message.startswith("busy"):
                return
            time.sleep(0.2)  # the manager runs something else (a safe stop): ask again
        self.say(f"lifecycle shutdown did not finish within {timeout:g} s; stopping processes")

    def _release(self) -> None:
        gates_first = sorted(self.in_process, key=lambda n: n.get_name() not in self.gates)
        for node in gates_first:
            if hasattr(node, "finalize"):
                node.finalize()
        # Nodes are destroyed only once no thread waits on them (vla_ros.spinning); a spin thread still inside
        # rclpy when the interpreter exits would abort the process (SIGABRT).
        stopped = all([spinner.stop(timeout=5.0) for spinner in self.spinners])
        if stopped:
            for node in self.in_process:
                node.destroy_node()
            if self.node is not None:
                self.node.destroy_node()
        else:
            self.say("a callback did not return within 5 s of the stop; leaving its nodes to the process's exit")
        self.node = None
        if rclpy.ok():
            rclpy.shutdown()
