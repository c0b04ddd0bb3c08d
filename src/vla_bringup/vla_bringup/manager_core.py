"""The lifecycle manager's logic without ROS: which transitions, in which order; who is alive.

Semantics follow Nav2's lifecycle manager: start-up configures every node in order and then activates every
node in order; pause, reset and shutdown walk the nodes in reverse order. A node whose heartbeat stops is
lost, and the system is brought to a safe state (every remaining node deactivated, command sources first).
"""
from __future__ import annotations

from dataclasses import dataclass, field
from enum import IntEnum
from typing import Mapping, Sequence


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


def plan(command: Command, order: Sequence[str], states: Mapping[str, State]) -> list[Step]:
    """The ordered transitions that carry ``states`` to what ``command`` asks for.

    ``order`` is the bring-up order; nodes already in the target state are skipped, so a plan is safe to
    re-run. Unknown or finalized nodes are left alone (the caller reports them).
    """
    sim = {n: State(states.get(n, State.UNKNOWN)) for n in order}
    steps: list[Step] = []

    def walk(nodes: Sequence[str], frm: State, transition: Transition) -> None:
        for n in nodes:
            if sim[n] == frm:
                steps.append(Step(n, transition))
                sim[n] = EDGES[transition][1]

    forward, backward = list(order), list(reversed(order))
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


def safe_stop_plan(order: Sequence[str], states: Mapping[str, State], lost: Sequence[str]) -> list[Step]:
    """Deactivate every node that is still reachable, in reverse bring-up order (command sources last in
    the order come first), leaving the lost ones alone."""
    alive = [n for n in order if n not in set(lost)]
    return plan(Command.PAUSE, alive, states)


@dataclass
class HeartbeatMonitor:
    """Tracks each node's last heartbeat (steady-clock seconds) and says who is lost."""

    nodes: Sequence[str]
    timeout: float
    last: dict[str, float] = field(default_factory=dict)
    state: dict[str, State] = field(default_factory=dict)
    error: dict[str, str] = field(default_factory=dict)
    armed_at: float | None = None

    def beat(self, node: str, now: float, state: int, last_error: str = "") -> None:
        if node in self.nodes:
            self.last[node] = now
            self.state[node] = State(state) if state in State._value2member_map_ else State.UNKNOWN
            self.error[node] = last_error

    def arm(self, now: float) -> None:
        """Start judging liveness (after start-up: a node is busy while it configures)."""
        self.armed_at = now

    def disarm(self) -> None:
        self.armed_at = None

    def age(self, node: str, now: float) -> float:
        return now - self.last[node] if node in self.last else -1.0

    def lost(self, now: float) -> list[str]:
        """Nodes with no heartbeat within ``timeout``, once armed (a node never heard from counts from arming)."""
        if self.armed_at is None:
            return []
        return [n for n in self.nodes if now - max(self.last.get(n, self.armed_at), self.armed_at) > self.timeout]
