"""What the recorder accepts from other nodes, and the count of what it refused (no rclpy).

Every input the recorder takes is checked here before it can reach a dataset or steer an episode:

* :class:`Rejects` counts refused inputs per reason (in all, and in the episode being recorded), with the
  last problem, for /diagnostics, the RecordEpisode result and the episode's sidecar metadata;
* :func:`future_stamp_problem` refuses a message stamped ahead of the node clock (it would anchor an episode's
  frame grid, or its start, in the future, and nothing after it would ever be recorded);
* :class:`RobotEpisodes` follows the robot's episode events (START k, then SUCCESS/TIMEOUT/ABORTED k, then
  START k+1, ...) and refuses the events that do not fit that sequence, such as a START while the robot's
  episode is still running, for another index than the next one, or stamped in the future.
"""
from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field

from vla_core.text import InstructionError, normalize_instruction

# vla_interfaces/EpisodeEvent constants (repeated here so that this module needs no ROS message package).
START, SUCCESS, TIMEOUT, ABORTED = 0, 1, 2, 3
EVENT_NAMES = {START: "START", SUCCESS: "SUCCESS", TIMEOUT: "TIMEOUT", ABORTED: "ABORTED"}
END_KINDS = (SUCCESS, TIMEOUT, ABORTED)


@dataclass
class Rejects:
    """Refused inputs per reason: ``total`` since configure, ``episode`` since the last :meth:`new_episode`."""

    total: Counter = field(default_factory=Counter)
    episode: Counter = field(default_factory=Counter)
    last_problem: str = ""

    def add(self, reason: str, problem: str) -> int:
        """Count one refused input; return how many of ``reason`` so far."""
        self.total[reason] += 1
        self.episode[reason] += 1
        self.last_problem = problem
        return self.total[reason]

    def new_episode(self) -> None:
        self.episode = Counter()

    def count(self) -> int:
        return sum(self.total.values())


def future_stamp_problem(what: str, stamp: float, now: float, tolerance: float) -> str | None:
    """Why a message stamped ``stamp`` may not be used at node time ``now`` (seconds), or None.

    A clock at zero (use_sim_time before the first /clock) cannot judge: no problem then."""
    if now > 0 and stamp - now > tolerance:
        return (f"{what} stamped {stamp - now:.3f} s in the future (stamp {stamp:.3f} s, clock {now:.3f} s, "
                f"limit {tolerance:g} s); fix the sender's clock or its use_sim_time")
    return None


@dataclass
class EpisodeEvent:
    """The fields of a vla_interfaces/EpisodeEvent the recorder uses (``stamp`` in seconds)."""

    kind: int
    index: int
    stamp: float
    instruction: str = ""


class RobotEpisodes:
    """The robot's episode sequence as its events tell it, and whether the next event fits.

    Rules (``check`` returns why an event is refused, or None and updates the sequence):

    * an unknown kind, or a stamp more than ``max_future`` s ahead of the node clock, is refused;
    * START k is refused while an episode is running (a robot ends one before it starts the next), when
      episodes have been seen and k is not the next index (or 0: a restarted robot), or when its instruction
      fails :func:`vla_core.text.normalize_instruction` (an empty one is allowed: the goal may give it);
    * an end (SUCCESS/TIMEOUT/ABORTED) of the running episode closes it; an end of another episode is
      refused, but re-synchronises the sequence (the robot says which episode it is in), so that a robot
      restarted behind the recorder's back is followed again after its first episode.

    The first event ever seen is taken as it comes: without SROS2 nothing proves who sent it, so the recorder
    also ends an episode whose START is not followed by the robot's frames (see the recorder node).
    """

    def __init__(self, max_future: float = 5.0):
        self.max_future = max_future
        self.running: int | None = None  # index of the episode started and not ended
        self.last: int | None = None  # index of the most recent episode seen

    def check(self, event: EpisodeEvent, now: float) -> str | None:
        name = EVENT_NAMES.get(event.kind)
        if name is None:
            return f"episode event kind {event.kind} unknown; the kinds are START=0 SUCCESS=1 TIMEOUT=2 ABORTED=3"
        what = f"{name} of episode {event.index}"
        problem = future_stamp_problem(what, event.stamp, now, self.max_future)
        if problem:
            return problem
        if event.kind == START:
            if self.running is not None:
                return (f"{what} while episode {self.running} is still running (a robot ends an episode before "
                        "it starts the next): not from the robot, or the robot skipped an end event")
            if self.last is not None and event.index not in (self.last + 1, 0):
                return f"{what} after episode {self.last}: the robot's next episode is {self.last + 1}"
            if event.instruction.strip():
                try:
                    normalize_instruction(event.instruction)
                except InstructionError as exc:
                    return f"{what}: {exc}"
            self.running = self.last = event.index
            return None
        if self.running is None and self.last is None:  # the first event seen (e.g. from the latched history)
            self.last = event.index
            return None
        if self.running != event.index:
            running = "none" if self.running is None else str(self.running)
            self.running, self.last = None, event.index
            return f"{what}, but the running episode is {running}: the sequence restarts from it"
        self.running = None
        return None
