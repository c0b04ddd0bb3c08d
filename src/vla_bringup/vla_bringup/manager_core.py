"""The lifecycle manager's logic without ROS: which transitions, in which order; who is alive.

Semantics follow Nav2's lifecycle manager: start-up configures every node in order and then activates every
node in order; pause, reset and shutdown walk the nodes in reverse order, except that the command gates (the
safety shield) go first, so that from the first step of any stop no command reaches the robot. A node whose
heartbeat stops is lost, and the system is brought to a safe state (every remaining node deactivated).

Heartbeats are bound to the process that sends them: the manager learns the publisher of each node's
heartbeat topic (its DDS GID) at start-up and counts only beats from that publisher, so a forged beat from
another node on the domain keeps nothing alive; a second publisher on a heartbeat topic, or a second node
answering to a managed node's name, is a fault.
"""
from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field
from enum import IntEnum
from typing import Mapping, Sequence

# What to do about a second graph on the same ROS domain (said wherever one is found).
DUPLICATE_FIX = ("stop the other graph, or give one of them its own domain (export ROS_DOMAIN_ID=<0-101> before "
                 "starting it)")


class State(IntEnum):
    """lifecycle_msgs/State primary states."""
    UNKNOWN = 0
    UNCONFIGURED = 1
    INACTIVE = 2
    ACTIVE = 3
    FINALIZED = 4


class Transition(IntEnum):
    """lifecycle_msgs/Transition ids."""
    CONFIGURE = 1
    CLEANUP = 2
    ACTIVATE = 3
    DEACTIVATE = 4
    UNCONFIGURED_SHUTDOWN = 5
    INACTIVE_SHUTDOWN = 6
    ACTIVE_SHUTDOWN = 7


class Command(IntEnum):
    """vla_interfaces/srv/ManageNodes commands."""
    STARTUP = 0
    PAUSE = 1
    RESUME = 2
    RESET = 3
    SHUTDOWN = 4
    CONFIGURE = 5
    CLEANUP = 6


# transition -> (state it starts from, state it ends in on success)
EDGES = {
    Transition.CONFIGURE: (State.UNCONFIGURED, State.INACTIVE),
    Transition.CLEANUP: (State.INACTIVE, State.UNCONFIGURED),
    Transition.ACTIVATE: (State.INACTIVE, State.ACTIVE),
    Transition.DEACTIVATE: (State.ACTIVE, State.INACTIVE),
    Transition.UNCONFIGURED_SHUTDOWN: (State.UNCONFIGURED, State.FINALIZED),
    Transition.INACTIVE_SHUTDOWN: (State.INACTIVE, State.FINALIZED),
    Transition.ACTIVE_SHUTDOWN: (State.ACTIVE, State.FINALIZED),
}
SHUTDOWN_FROM = {State.UNCONFIGURED: Transition.UNCONFIGURED_SHUTDOWN, State.INACTIVE: Transition.INACTIVE_SHUTDOWN}


@dataclass(frozen=True)
class Step:
    node: str
    transition: Transition

    @property
    def verb(self) -> str:
        return self.transition.name.lower().replace("unconfigured_", "").replace("inactive_", "").replace(
            "active_", "")


def plan(command: Command, order: Sequence[str], states: Mapping[str, State],
         gates: Sequence[str] = ()) -> list[Step]:
    """The ordered transitions that carry ``states`` to what ``command`` asks for.

    ``order`` is the bring-up order; nodes already in the target state are skipped, so a plan is safe to
    re-run. Unknown or finalized nodes are left alone (the caller reports them, see :func:`unmet`). Walks
    toward INACTIVE and below take the ``gates`` (the nodes every robot command passes through) first.
    """
    sim = {n: State(states.get(n, State.UNKNOWN)) for n in order}
    steps: list[Step] = []

    def walk(nodes: Sequence[str], frm: State, transition: Transition) -> None:
        for n in nodes:
            if sim[n] == frm:
                steps.append(Step(n, transition))
                sim[n] = EDGES[transition][1]

    forward = list(order)
    backward = [n for n in reversed(order) if n in gates] + [n for n in reversed(order) if n not in gates]
    if command in (Command.STARTUP, Command.CONFIGURE, Command.RESUME):
        if command != Command.RESUME:
            walk(forward, State.UNCONFIGURED, Transition.CONFIGURE)
        if command != Command.CONFIGURE:
            walk(forward, State.INACTIVE, Transition.ACTIVATE)
    elif command == Command.PAUSE:
        walk(backward, State.ACTIVE, Transition.DEACTIVATE)
    elif command in (Command.RESET, Command.CLEANUP):
        walk(backward, State.ACTIVE, Transition.DEACTIVATE)
        walk(backward, State.INACTIVE, Transition.CLEANUP)
    elif command == Command.SHUTDOWN:
        walk(backward, State.ACTIVE, Transition.DEACTIVATE)
        walk(backward, State.INACTIVE, Transition.CLEANUP)
        walk(backward, State.UNCONFIGURED, Transition.UNCONFIGURED_SHUTDOWN)
    else:  # pragma: no cover - IntEnum makes this unreachable
        raise ValueError(f"unknown command {command}")
    return steps


def safe_stop_plan(order: Sequence[str], states: Mapping[str, State], lost: Sequence[str],
                   gates: Sequence[str] = ()) -> list[Step]:
    """Deactivate every node that is still reachable: the gates first, then reverse bring-up order (command
    sources last in the order come first), leaving the lost ones alone."""
    alive = [n for n in order if n not in set(lost)]
    return plan(Command.PAUSE, alive, states, gates)


# The states every node must be in after a command succeeds (checked with each node's get_state, never assumed).
EXPECTED = {
    Command.STARTUP: {State.ACTIVE},
    Command.RESUME: {State.ACTIVE},
    Command.CONFIGURE: {State.INACTIVE, State.ACTIVE},
    Command.PAUSE: {State.INACTIVE, State.UNCONFIGURED},
    Command.RESET: {State.UNCONFIGURED},
    Command.CLEANUP: {State.UNCONFIGURED},
    Command.SHUTDOWN: {State.FINALIZED, State.UNKNOWN},  # a node whose process is gone is down too
}


def unmet(command: Command, order: Sequence[str], states: Mapping[str, State]) -> list[str]:
    """Why ``states`` (as each node reported them) are not what ``command`` promises; empty when they are."""
    want = EXPECTED[command]
    names = " or ".join(sorted(s.name.lower() for s in want))
    out = []
    for n in order:
        got = State(states.get(n, State.UNKNOWN))
        if got not in want:
            seen = "did not report its state" if got == State.UNKNOWN else f"is {got.name.lower()}"
            out.append(f"{n} {seen} (expected {names})")
    return out


@dataclass(frozen=True)
class Endpoint:
    """A publisher as the ROS graph shows it: its node's fully qualified name and its GID."""
    node: str
    gid: bytes

    @property
    def named(self) -> bool:
        """False until the graph has learned which node owns the endpoint (rmw shows placeholder names)."""
        return "_NODE_NAME_UNKNOWN_" not in self.node

    def __str__(self) -> str:
        return f"{self.node} (gid {self.gid.hex()[:12]}…)"


def pick_heartbeat_publisher(node: str, publishers: Sequence[Endpoint]) -> tuple[bytes | None, str]:
    """The GID to bind ``node``'s heartbeat to, from the publishers on its heartbeat topic.

    Returns (gid, "") when exactly one publisher exists and it belongs to ``node``; (None, "") while none
    is discovered (or named) yet; (None, why) when the topic cannot be trusted.
    """
    if not publishers:
        return None, ""
    if len(publishers) > 1:
        return None, (f"{len(publishers)} publishers on {node}/heartbeat ({', '.join(map(str, publishers))}): another "
                      f"graph runs on this ROS domain, or someone forges heartbeats; {DUPLICATE_FIX}")
    only = publishers[0]
    if not only.named:
        return None, ""  # ask again once discovery has named it
    if only.node != node:
        return None, f"{node}/heartbeat is published by {only}, not by {node}: heartbeats may be forged"
    return only.gid, ""


def heartbeat_strangers(order: Sequence[str], heartbeat_publishers: Mapping[str, Sequence[Endpoint]],
                        bound: Mapping[str, bytes]) -> dict[str, list[Endpoint]]:
    """For each bound node, the publishers on its heartbeat topic other than its own (only those with any)."""
    out = {}
    for n in order:
        if n in bound:
            strangers = [p for p in heartbeat_publishers.get(n, ()) if p.gid != bound[n]]
            if strangers:
                out[n] = strangers
    return out


def graph_faults(order: Sequence[str], node_names: Sequence[str], heartbeat_publishers: Mapping[str, Sequence[Endpoint]],
                 bound: Mapping[str, bytes]) -> list[str]:
    """What is wrong with the graph around the managed nodes: a managed name that two nodes answer to, or a
    heartbeat topic with a publisher other than the bound one. ``node_names`` lists every node on the
    domain, fully qualified, duplicates included."""
    counts = Counter(node_names)
    faults = [f"{counts[n]} nodes answer to {n} on this ROS domain; {DUPLICATE_FIX}" for n in order if counts[n] > 1]
    for n, strangers in heartbeat_strangers(order, heartbeat_publishers, bound).items():
        faults.append(f"a second publisher on {n}/heartbeat: {', '.join(map(str, strangers))}; heartbeats may "
                      f"be forged or another graph runs on this ROS domain; {DUPLICATE_FIX}")
    return faults


# The publisher of a heartbeat whose message came without a publisher GID (see HeartbeatMonitor).
GRAPH_ONLY = object()


@dataclass
class HeartbeatMonitor:
    """Tracks each node's last heartbeat (steady-clock seconds) and says who is lost.

    Only beats from a node's bound publisher count (:meth:`bind`); others are counted in ``foreign`` and
    ignored. Where the ROS client library gives no publisher GID with each message (rclpy before Kilted),
    beats are passed with ``publisher=GRAPH_ONLY``: they count until the graph has shown a second publisher
    on the node's heartbeat topic (:meth:`distrust`), after which none does. A node in a transition is
    ``hold``-ed (its executor may be busy configuring) and judged again from its ``release``.
    """

    nodes: Sequence[str]
    timeout: float
    last: dict[str, float] = field(default_factory=dict)
    state: dict[str, State] = field(default_factory=dict)
    error: dict[str, str] = field(default_factory=dict)
    publisher: dict[str, bytes] = field(default_factory=dict)
    foreign: dict[str, int] = field(default_factory=dict)
    distrusted: set[str] = field(default_factory=set)
    held: set[str] = field(default_factory=set)
    released: dict[str, float] = field(default_factory=dict)
    armed_at: float | None = None

    def bind(self, node: str, gid: bytes) -> None:
        """Count only heartbeats that ``gid`` (the node's own heartbeat publisher) sends."""
        self.publisher[node] = bytes(gid)

    def beat(self, node: str, now: float, state: int, last_error: str = "", *, publisher: bytes | object | None
             ) -> bool:
        """Record a heartbeat from ``publisher``; return False (and count it) when it is not the node's own."""
        if node not in self.nodes or node not in self.publisher:
            return False
        if publisher is GRAPH_ONLY:
            trusted = node not in self.distrusted
        else:
            trusted = publisher is not None and bytes(publisher) == self.publisher[node]
        if not trusted:
            self.foreign[node] = self.foreign.get(node, 0) + 1
            return False
        self.last[node] = now
        self.state[node] = State(state) if state in State._value2member_map_ else State.UNKNOWN
        self.error[node] = last_error
        return True

    def distrust(self, node: str) -> None:
        """The graph showed another publisher on ``node``'s heartbeat topic: beats without a GID no longer count."""
        self.distrusted.add(node)

    def arm(self, now: float) -> None:
        """Start judging liveness (after start-up: a node is busy while it configures)."""
        self.armed_at = now

    def disarm(self) -> None:
        self.armed_at = None

    @property
    def armed(self) -> bool:
        return self.armed_at is not None

    def hold(self, node: str) -> None:
        """Do not judge ``node`` while it runs a transition."""
        self.held.add(node)

    def release(self, node: str, now: float) -> None:
        self.held.discard(node)
        self.released[node] = now

    def age(self, node: str, now: float) -> float:
        return now - self.last[node] if node in self.last else -1.0

    def lost(self, now: float) -> list[str]:
        """Nodes with no heartbeat within ``timeout``, once armed (a node never heard from counts from arming,
        a node that was held counts from its release)."""
        if self.armed_at is None:
            return []
        out = []
        for n in self.nodes:
            if n in self.held:
                continue
            since = max(self.last.get(n, self.armed_at), self.armed_at, self.released.get(n, self.armed_at))
            if now - since > self.timeout:
                out.append(n)
        return out
