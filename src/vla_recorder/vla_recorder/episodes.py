"""The recorder's episode control (no rclpy): start checks, robot episode events, limits, save and discard.

:class:`EpisodeControl` runs one RecordEpisode goal at a time with :meth:`EpisodeControl.record`, on a thread of
the caller's (the recorder node's action thread), while the node's executor thread feeds it inputs (``offer_*``,
``seen``, ``add_event``), ticks it (:meth:`EpisodeControl.tick`) and forwards requests (:meth:`request`,
:meth:`mark`). Rules of one goal:

* start checks: enough free disk, a valid goal, every camera and the state seen within ``start_timeout``, a
  publisher of the command (and of the intervention flag when ``intervention_required``), and an instruction
  (the goal's, the latched one, or with ``follow_episode_events`` the START event's);
* with ``follow_episode_events`` the episode waits for the robot's next START and ends at its SUCCESS/TIMEOUT
  (saved, labelled) or ABORTED (discarded, and the robot's next episode is recorded); a robot that ends another
  episode than the one being recorded, or a START not followed by the robot's frames within ``start_timeout``,
  discards the episode with the reason;
* it ends at the time limit (the goal's, else ``default_time_limit``, on the node clock), when the disk runs
  low (saved), on cancel (discarded), or on a save/discard request; the first reason wins.

Threads: the executor thread and the goal's thread share this object. Every field below marked *locked* is
read and written only under ``self.lock``; fields marked *goal thread* are touched by :meth:`record` only.
The source of the ``now``/``monotonic`` clocks, the ROS graph and the disk is :class:`RecorderIO`.
"""
from __future__ import annotations

import math
import threading
import time
from dataclasses import dataclass
from typing import Any, Callable, Mapping, Protocol

from vla_core.text import InstructionError, normalize_instruction
from vla_recorder import inputs
from vla_recorder.inputs import Rejects
from vla_recorder.saving import close_episode

SAVE, DISCARD = "save", "discard"
SUCCEEDED, ABORTED, CANCELED = "succeeded", "aborted", "canceled"
MAX_EVENTS = 100  # events (and resyncs) kept: a goal only looks at those since it started


class RecorderIO(Protocol):
    """What the episode control needs from its host (the recorder node, or a test)."""

    def now(self) -> float:
        """Node clock, seconds (simulated time under use_sim_time)."""

    def publishers(self, topic: str) -> int:
        """Publishers of ``topic`` in the ROS graph."""

    def resolve(self, topic: str) -> str:
        """``topic`` as a fully qualified name (for messages)."""

    def free_mb(self) -> float:
        """Free disk space under the dataset root, MB."""

    def log(self, level: str, text: str) -> None:
        """Log ``text`` at 'info', 'warning' or 'error'."""

    def episode_opened(self, index: int) -> None:
        """Episode ``index`` began (the node opens its MCAP bag); called under the control's lock."""

    def episode_closed(self, index: int, kept: bool) -> None:
        """Episode ``index`` ended, saved or not (the node closes its MCAP bag)."""


class GoalIO(Protocol):
    """One RecordEpisode goal as the control sees it."""

    instruction: str
    time_limit: float

    def cancelled(self) -> bool:
        ...

    def feedback(self, frames: int, elapsed: float, late: int, dropped: int) -> None:
        ...


@dataclass(frozen=True)
class Outcome:
    """How a goal ended: ``status`` succeeded/aborted/canceled, the message, the episode summary (close_episode)."""

    status: str
    message: str
    summary: Mapping[str, Any]


@dataclass(frozen=True)
class Sources:
    """Topics an episode needs: ``seen`` keys for cameras and state, publishers for the command and flag."""

    needed: tuple[str, ...]   # camera and state topics (a message must have been seen)
    command: str
    intervention: str
    instruction: str


class EpisodeControl:
    """Episode state machine of the recorder; see the module docstring for the rules and thread ownership."""

    def __init__(self, writer, sampler, contract_text: str, fps: float, sources: Sources, io: RecorderIO,
                 params: Callable[[], Mapping[str, Any]], encoder_id: str = "",
                 monotonic: Callable[[], float] = time.monotonic, sleep: Callable[[float], None] = time.sleep):
        self.writer, self.sampler, self.contract_text, self.fps = writer, sampler, contract_text, fps
        self.sources, self.io, self.params = sources, io, params
        self.monotonic, self.sleep = monotonic, sleep
        self.lock = threading.RLock()
        # locked: inputs from the executor thread, read by the goal thread
        self.seen: dict[str, float] = {}   # topic -> monotonic time of its last message
        self.instruction, self.instruction_problem, self.encoder_id = "", "", encoder_id
        self.events: list[tuple[float, inputs.EpisodeEvent]] = []  # (arrival, event) fitting the robot's sequence
        self.resyncs: list[tuple[float, int]] = []  # (arrival, episode) of robot ends contradicting the sequence
        self.rejects = Rejects()
        # locked: the episode and how it ends, written by both threads
        self.episode = None
        self.busy = False                 # a goal is accepted and not finished
        self.goal_time = 0.0              # monotonic time the goal was accepted: later events belong to it
        self.end_request: tuple[str, str, float | None] | None = None  # (save|discard, why, end time or None)
        self.label: bool | None = None
        self.summary: dict = {}
        self.saved = self.failed_saves = 0
        self.last_saved: int | None = None
        self.finished = threading.Event()  # set when the episode in progress is closed (thread-safe itself)

    # ---- executor thread: inputs -------------------------------------------------------------------
    def refuse(self, reason: str, problem: str) -> int:
        """Count a refused input (per reason, in all and in the episode); the count of ``reason``."""
        with self.lock:
            return self.rejects.add(reason, problem)

    def saw(self, topic: str) -> None:
        with self.lock:
            self.seen[topic] = self.monotonic()

    def unseen(self) -> list[str]:
        """The camera and state topics (fully qualified) no message has come from yet: an episode cannot start
        before each has delivered one (reported on /diagnostics, so a client can wait for them)."""
        with self.lock:
            return [self.io.resolve(t) for t in self.sources.needed if t not in self.seen]

    def recording(self) -> bool:
        with self.lock:
            return self.episode is not None

    def set_instruction(self, text: str) -> str | None:
        """The latched instruction; returns why it was refused (then no instruction is kept), or None."""
        try:
            clean = normalize_instruction(text)
        except InstructionError as exc:  # never recorded: the trainer's encoder would refuse the whole dataset
            with self.lock:
                self.instruction, self.instruction_problem = "", f"instruction rejected: {exc}"
                return self.instruction_problem
        with self.lock:
            self.instruction, self.instruction_problem = clean, ""
        return None

    def set_encoder_id(self, encoder_id: str) -> None:
        with self.lock:
            self.encoder_id = encoder_id

    def add_event(self, event: inputs.EpisodeEvent) -> None:
        """An episode event that fits the robot's sequence (checked by the caller)."""
        with self.lock:
            self.events.append((self.monotonic(), event))
            del self.events[:-MAX_EVENTS]

    def add_resync(self, episode: int) -> None:
        """The robot ended ``episode`` while the sequence said another was running."""
        with self.lock:
            self.resyncs.append((self.monotonic(), episode))
            del self.resyncs[:-MAX_EVENTS]

    def tick(self, now: float) -> None:
        """Move the frames the sampler completed by node time ``now`` into the episode."""
        with self.lock:
            if self.episode is None:
                return
            try:
                for frame in self.sampler.poll(now):
                    self.episode.add_frame(frame)
            except Exception as exc:  # noqa: BLE001 - an encoder or disk failure ends the episode, with why
                self.request(SAVE, f"writing failed: {exc}")

    # ---- executor thread: goals and requests -------------------------------------------------------
    def accept(self, active: bool) -> str | None:
        """Take a new goal; returns why it is refused (counted), or None."""
        with self.lock:
            if active and not self.busy:
                self.busy, self.goal_time = True, self.monotonic()
                return None
        reason, problem = ("goal_inactive", "the recorder is not active") if not active else \
            ("goal_busy", "already recording")
        self.refuse(reason, f"RecordEpisode goal rejected: {problem}")
        return problem

    def release(self) -> None:
        """The goal accepted last is over (its thread ended, however it ended)."""
        with self.lock:
            self.busy = False

    def request(self, how: str, why: str, end_time: float | None = None) -> int | None:
        """Ask the episode in progress to end (``how`` save or discard); the first request wins. Its index, or
        None when no episode is being recorded."""
        with self.lock:
            if self.episode is None:
                return None
            if self.end_request is None:
                self.end_request = (how, why, end_time)
            return self.episode.episode_index

    def mark(self, success: bool) -> str:
        """Label the episode in progress (at its save), else the last saved one; returns what was done.

        Raises:
            LookupError: no episode recorded yet.
            OSError, DatasetError: the last saved episode's label could not be written.
        """
        with self.lock:
            if self.episode is not None:
                self.label = success
                return f"episode {self.episode.episode_index} will be saved as {'success' if success else 'failure'}"
            last = self.last_saved
        if last is None:
            raise LookupError("no episode recorded yet")
        self.writer.set_success(last, success)
        return f"episode {last} marked {'success' if success else 'failure'}"

    def stop(self, why: str, timeout: float = 30.0) -> None:
        """Save the episode in progress now (deactivation, shutdown) and wait for it to be committed."""
        if self.recording():
            self.finish(SAVE, why)
            self.finished.wait(timeout)  # a concurrent finish (the goal's) may still be committing

    # ---- goal thread ------------------------------------------------------------------------------
    def record(self, goal: GoalIO) -> Outcome:
        """Run one accepted goal to its end (blocking; on the goal's own thread)."""
        p = self.params()  # read at each goal: a run-time parameter change applies from the next one
        if self.io.free_mb() < p["min_free_mb"]:
            return Outcome(ABORTED, f"disk almost full: {self.io.free_mb():.0f} MB free under {self.writer.root}, "
                                    f"min_free_mb {p['min_free_mb']:g}; free space or record elsewhere", {})
        problem = goal_problem(goal.instruction, goal.time_limit)
        if problem:
            self.refuse("goal_invalid", problem)
            self.io.log("error", problem)
            return Outcome(ABORTED, problem, {})
        goal_instruction = normalize_instruction(goal.instruction) if goal.instruction.strip() else ""
        missing = self.missing_sources(goal_instruction, p)
        if missing:
            message = f"{len(missing)} source topics missing: " + "; ".join(missing)
            self.io.log("error", message)
            return Outcome(ABORTED, message, {})
        with self.lock:
            since = self.goal_time
        while True:
            with self.lock:
                instruction, problem_text = goal_instruction or self.instruction, self.instruction_problem
            start, robot_episode = self.io.now(), None
            frames_from = start
            if p["follow_episode_events"]:
                event = self.wait_event(since, inputs.START, p["start_timeout"], goal)
                if event is None:
                    if goal.cancelled():
                        return Outcome(CANCELED, "the goal was cancelled before the robot's episode started", {})
                    with self.lock:
                        n, last = self.rejects.total["episode_event"], self.rejects.last_problem
                    refused = f"; {n} episode events refused so far, last: {last}" if n else ""
                    return Outcome(ABORTED, f"no episode START on {p['episode_events_topic']} within "
                                            f"{p['start_timeout']:g} s; reset the robot's episode (vla record does)"
                                            f"{refused}", {})
                with self.lock:
                    instruction = goal_instruction or event.instruction.strip() or self.instruction
                # Frames belong to the episode from the START's own stamp: an earlier bound (the node clock,
                # which under use_sim_time lags the robot's stamps) would let the previous episode's last
                # images in, and the sampler's rule for the image shared by the frame before a reset and the
                # reset scene applies only at exactly that stamp. The time limit runs from the START's stamp,
                # but never from a time still to come.
                frames_from, robot_episode = event.stamp, event.index
                start = min(event.stamp, self.io.now())
            if not instruction:
                return Outcome(ABORTED, "no instruction for the episode: "
                                        f"{problem_text or 'none published'}; give one in the goal", {})
            limit = goal.time_limit if goal.time_limit > 0 else p["default_time_limit"]
            restart_since = self._run_episode(goal, p, instruction, start, limit, since, robot_episode,
                                              frames_from)
            if restart_since is None or goal.cancelled():
                break
            since = restart_since
        with self.lock:
            s = dict(self.summary)
        status = CANCELED if goal.cancelled() else SUCCEEDED if s.get("saved") else ABORTED
        return Outcome(status, s.get("message", ""), s)

    def _run_episode(self, goal: GoalIO, p: Mapping[str, Any], instruction: str, start: float, limit: float,
                     since: float, robot_episode: int | None, frames_from: float) -> float | None:
        """Record one episode until it ends (images stamped from ``frames_from`` on, the time limit from
        ``start``); the monotonic time from which to wait for the robot's next START when it should be
        recorded instead (None: the goal is over)."""
        with self.lock:
            self.end_request, self.label = None, None
            self.finished.clear()
            self.episode = self.writer.begin_episode(instruction, self.contract_text, self.encoder_id)
            self.sampler.start(frames_from)
            self.rejects.new_episode()
            # Under the lock: no input can reach the sampler before the raw bag is open to record it too.
            self.io.episode_opened(self.episode.episode_index)
        started = self.monotonic()
        try:
            self.io.log("info", f"episode {self.writer.num_episodes} started: \"{instruction}\", limit {limit:g} s")
            last_disk_check, last_feedback, restart_since = started, float("-inf"), None
            while not self.finished.is_set():
                now, mono = self.io.now(), self.monotonic()
                restart = self._end_condition(goal, p, start, limit, started, since, robot_episode,
                                              mono - last_disk_check > 1.0)
                if restart is not None:
                    restart_since = restart
                if mono - last_disk_check > 1.0:
                    last_disk_check = mono
                with self.lock:
                    end = self.end_request if self.episode is not None else None
                if end is not None:
                    self.finish(*end)
                    break
                if mono - last_feedback >= p["feedback_period"]:
                    last_feedback = mono
                    with self.lock:
                        c = self.sampler.counters
                        frames, late, dropped = c.frames, c.late, c.dropped
                    goal.feedback(frames, max(0.0, now - start), late, dropped)
                self.finished.wait(0.02)
            self.finished.wait(30.0)  # another thread (a deactivation) may have taken the episode and be committing it
            return restart_since
        except BaseException as exc:
            # Whatever failed, the episode it opened is not left open (the next goal could not start one).
            self.finish(DISCARD, f"recording failed: {type(exc).__name__}: {exc}")
            raise

    def _end_condition(self, goal: GoalIO, p: Mapping[str, Any], start: float, limit: float, started: float,
                       since: float, robot_episode: int | None, check_disk: bool) -> float | None:
        """Request the episode's end when a rule says so; the restart time when the robot's next episode
        should be recorded instead, else None."""
        if goal.cancelled():
            self.request(DISCARD, "the goal was cancelled")
        elif self.io.now() - start >= limit:
            self.request(SAVE, f"time limit {limit:g} s reached")
        elif check_disk and (free := self.io.free_mb()) < p["min_free_mb"]:
            self.request(SAVE, f"disk almost full ({free:.0f} MB free < min_free_mb {p['min_free_mb']:g}): "
                               "episode closed early")
        elif self.sampler.t0 is None and self.monotonic() - started > p["start_timeout"]:
            # The robot's frames follow its START at once: a START without them was not the robot's.
            problem = (f"no image stamped after the episode's start ({start:.3f} s) within {p['start_timeout']:g} s: "
                       "the START event was not followed by the robot's frames")
            self.refuse("start_without_frames", problem)
            self.request(DISCARD, problem)
        elif p["follow_episode_events"]:
            with self.lock:
                resyncs, events = list(self.resyncs), list(self.events)
            other = next((i for t, i in resyncs if t >= started and i != robot_episode), None)
            if other is not None:
                self.request(DISCARD, f"the robot ended its episode {other} while episode {robot_episode} was "
                                      "being recorded: that START was not the robot's; recording its next episode")
                return self.monotonic()
            for t, ev in events:
                if t >= since and ev.index == robot_episode and ev.kind in inputs.END_KINDS:
                    if ev.kind == inputs.ABORTED:  # e.g. a reset: record the robot's next episode
                        self.request(DISCARD, "the robot aborted its episode; recording its next one")
                        return t
                    with self.lock:
                        if self.label is None:
                            self.label = ev.kind == inputs.SUCCESS
                        label = self.label
                    self.request(SAVE, "episode " + ("succeeded" if label else "timed out"), end_time=ev.stamp)
                    break
        return None

    def missing_sources(self, goal_instruction: str, p: Mapping[str, Any]) -> list[str]:
        """The sources an episode lacks, each with why (waits up to ``start_timeout`` for them to appear)."""
        s, timeout = self.sources, p["start_timeout"]
        deadline = self.monotonic() + timeout
        while True:  # discovery and the first messages may take a moment
            with self.lock:
                missing = [t for t in s.needed if t not in self.seen]
            no_command = self.io.publishers(s.command) == 0
            no_flag = p["intervention_required"] and self.io.publishers(s.intervention) == 0
            if not (missing or no_command or no_flag) or self.monotonic() > deadline:
                break
            self.sleep(0.05)
        missing = [f"{self.io.resolve(t)} (no message in {timeout:g} s)" for t in missing]
        if no_command:
            missing.append(f"{self.io.resolve(s.command)} (no publisher)")
        if no_flag:
            missing.append(f"{self.io.resolve(s.intervention)} (no publisher; set intervention_required: false "
                           "when no operator can take over)")
        with self.lock:
            instruction, problem = self.instruction, self.instruction_problem
        if not goal_instruction and not instruction and not p["follow_episode_events"]:
            missing.append(f"{self.io.resolve(s.instruction)} ({problem or 'no instruction'}; or give one in the goal)")
        return missing

    def wait_event(self, since: float, kind: int, timeout: float, goal: GoalIO) -> inputs.EpisodeEvent | None:
        """The first event of ``kind`` that arrived after monotonic ``since``, waiting until ``since + timeout``."""
        deadline = since + timeout
        while self.monotonic() < deadline and not goal.cancelled():
            with self.lock:
                event = next((ev for t, ev in self.events if t >= since and ev.kind == kind), None)
            if event is not None:
                return event
            self.sleep(0.01)
        return None

    # ---- either thread -----------------------------------------------------------------------------
    def finish(self, how: str, why: str, end_time: float | None = None) -> dict:
        """End the episode in progress: flush the sampler, then save (commit) or discard it; the summary."""
        if end_time is not None:
            with self.lock:
                self.sampler.stop(end_time)
            # The episode's last image may still be in flight behind its end event: a moment to arrive.
            self.sleep(min(0.3, 2.0 / self.fps))
        with self.lock:
            episode = self.episode
            if episode is None:
                return self.summary
            try:
                for frame in self.sampler.poll(self.io.now(), flush=True):
                    episode.add_frame(frame)
            except Exception as exc:  # noqa: BLE001
                why = f"{why}; writing failed: {exc}"
            counters = self.sampler.counters
            episode.count_dropped(counters.dropped)
            episode.start_stamp = self.sampler.t0 or 0.0
            self.sampler.start_time = None
            self.episode = None
            rejects, label = dict(self.rejects.episode), self.label
        summary = close_episode(self.writer, episode, how, why, label, counters, rejects)  # slow: not locked
        with self.lock:
            if summary["saved"]:
                self.saved += 1
                self.last_saved = episode.episode_index
            elif how == SAVE:
                self.failed_saves += 1
            self.summary = summary
        self.io.episode_closed(episode.episode_index, summary["saved"])
        self.io.log("info", summary["message"])
        self.finished.set()
        return summary


def goal_problem(instruction: str, time_limit: float) -> str:
    """Why a goal's fields cannot be recorded ('' if they can)."""
    if instruction.strip():
        try:
            normalize_instruction(instruction)
        except InstructionError as exc:
            return f"goal's instruction rejected: {exc}"
    if not (math.isfinite(time_limit) and 0.0 <= time_limit <= 86400.0):
        return (f"goal's time_limit {time_limit} s is not a duration; give 0 (the recorder's default_time_limit) "
                "up to 86400 s")
    return ""
