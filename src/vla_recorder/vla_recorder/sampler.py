"""Assemble synchronised frames at the contract's fps from independently arriving sources (no ROS).

Time is one clock for everything (the node clock: simulated time under use_sim_time). Frames sit on a grid
``t0 + k / fps`` anchored at the first image of the episode from the first camera; an image belongs to the
slot nearest its stamp. Frame ``k`` is complete once the clock reaches slot ``k + 1``: its action is the
command in force over ``[t_k, t_k+1)`` (the newest command received before ``t_k+1``), which is what the robot
executed after that observation (LeRobot's convention). Nothing is re-stamped or invented:

* a slot without an image from every camera is **dropped** (counted, no row) once a later image from that
  camera arrived (images of one camera arrive in order) or ``drop_after`` passed (a camera gone silent);
* a state older than ``late_after`` (half a period) at the image's stamp, or a command older than
  ``command_timeout``, makes the frame **late** (the row is written, real values, ``late=True``);
* a missing or non-finite state or action makes the row **invalid** (``valid=False``; values kept as they
  were, NaN where nothing was received), never silently replaced. Values are stored as float32, so "finite"
  is judged after that cast: a command of 1e39 is ``inf`` in the dataset, and its row is invalid. Each
  invalid row is counted under its reason (``SamplerCounters.invalid_reasons``).

With ``env_state_dim`` the frame also has the environment state (``observation.environment_state``: where a
simulator says the instruction's objects are), the one stamped like the image (the same instant); one missing or
non-finite is NaN in that row and counted (``env_state_missing``), and leaves the row valid: it is a training
target, not what the robot observed or did.

**Causal timing** (``causal=True``; the recorder sets it under simulated time): the simulated clock moves in
steps, and a command sent in answer to frame ``k`` can reach this node after the clock tick of ``t_k+1`` (the
executor takes the /clock message first), which made it the next frame's action and left frame ``k`` with the
previous one. So when the sources also give the time their publisher sent them (``sent``: the DDS source
timestamp, one system clock for the simulator's processes), a command or intervention flag takes the stamp of the
newest state sent before it (it answers that observation), and frame ``k`` closes only once a command sent after
the state of ``t_k+1`` has arrived (all earlier ones from that publisher have then arrived too) or
``command_timeout`` has passed.

A frame's ``help_requested`` says the policy asked for help (its latched ~/help, ``offer_help``) in the frame's
window, as ``intervention`` says the operator commanded in it: a frame with both is a requested intervention.
"""
from __future__ import annotations

import bisect
from collections import Counter, deque
from dataclasses import dataclass, field

import numpy as np

from vla_core.features import ACTION, ENV_STATE, STATE


@dataclass
class SamplerCounters:
    frames: int = 0
    dropped: int = 0
    late: int = 0
    invalid: int = 0
    interventions: int = 0
    help_frames: int = 0  # frames in which the policy asked for help
    requested_interventions: int = 0  # ... and the operator commanded (the help was given)
    duplicate_images: int = 0  # a camera faster than fps: the image nearest the slot was kept
    stale_images: int = 0  # arrived for a slot that was already closed (dropped or written)
    env_state_missing: int = 0  # frames without the environment state of their instant (NaN there)
    # Why rows were invalid: state_missing, state_wrong_size, state_nonfinite (NaN/inf, or beyond float32),
    # action_missing, action_wrong_size, action_nonfinite. A row can have two reasons.
    invalid_reasons: Counter = field(default_factory=Counter)


@dataclass
class _Slot:
    images: dict = field(default_factory=dict)  # camera -> (stamp, rgb)


class FrameSampler:
    """Synchronise ``cameras`` (feature keys), state and action into frames at ``fps``.

    Feed it with ``offer_*`` (times in seconds on the node clock; images and states carry their message
    stamps, commands and intervention flags their receive time), call ``poll(now)`` regularly; it returns
    the frames that became complete, oldest first, as dicts ready for ``EpisodeWriter.add_frame``.
    """

    def __init__(self, fps: float, cameras: list[str], state_dim: int, action_dim: int, *,
                 late_after: float | None = None, drop_after: float | None = None, command_timeout: float = 0.5,
                 env_state_dim: int = 0, causal: bool = False):
        self.fps, self.dt = fps, 1.0 / fps
        self.causal = causal
        self.env_state_dim = int(env_state_dim)
        self.cameras, self.state_dim, self.action_dim = list(cameras), state_dim, action_dim
        # A state not from the image's own instant (within half a period) is an older sample: late.
        self.late_after = late_after if late_after is not None else 0.5 * self.dt
        # Only for a camera gone silent (a lost image is known as soon as the next one arrives): executors lag,
        # and at a high real-time factor a simulated second is short, so be generous.
        self.drop_after = drop_after if drop_after is not None else max(3.0 * self.dt, 2.0)
        self.command_timeout = command_timeout
        self.start_time: float | None = None
        self.end_time: float | None = None
        self.t0: float | None = None
        self.counters = SamplerCounters()
        self._slots: dict[int, _Slot] = {}
        self._next = 0
        self._arrivals = 0  # order of arrival across sources, to pair messages that share a stamp
        history = max(8, int(8 * fps))  # 8 s of every source
        # Images that arrived while no episode was recording: an episode's first frames can arrive before the
        # episode's START reaches the sampler (a lockstep sim answers it at once); start() takes them back.
        self._recent: deque = deque(maxlen=history * len(self.cameras))  # (camera, stamp, rgb)
        self._states: deque = deque(maxlen=history)  # (stamp, values)
        self._env_states: deque = deque(maxlen=history)  # (stamp, values)
        self._commands: deque = deque(maxlen=4 * history)  # (receive time, values)
        self._interventions: deque = deque(maxlen=4 * history)  # (receive time, active)
        self._helps: deque = deque(maxlen=4 * history)  # (receive time, active): the policy's help request
        # Causal timing: (sent, stamp) of each state, and commands / flags waiting for the state sent after them.
        self._state_sent: deque = deque(maxlen=history)
        self._unresolved: deque = deque(maxlen=8 * history)  # (sent, received, history, value)
        self._newest_command_sent = float("-inf")

    # ---- episode --------------------------------------------------------------------------------
    def start(self, start_time: float) -> None:
        """Begin an episode: images stamped before ``start_time`` are ignored. Source histories are kept
        (the state and command in force at the start belong to the first frame)."""
        self.start_time, self.end_time, self.t0 = start_time, None, None
        self.counters = SamplerCounters()
        self._slots, self._next = {}, 0
        recent, self._recent = list(self._recent), deque(maxlen=self._recent.maxlen)
        for camera, stamp, rgb in recent:  # those stamped before start_time are ignored as usual
            self.offer_image(camera, stamp, rgb)

    def stop(self, end_time: float) -> None:
        """Images stamped after ``end_time`` no longer belong to the episode."""
        self.end_time = end_time

    @property
    def recording(self) -> bool:
        return self.start_time is not None

    def _at_start(self, stamp: float) -> bool:
        return self.start_time is not None and abs(stamp - self.start_time) <= 1e-9

    def slot_time(self, k: int) -> float:
        return self.t0 + k * self.dt

    # ---- sources -------------------------------------------------------------------------------
    def offer_image(self, camera: str, stamp: float, rgb: np.ndarray) -> None:
        if self.start_time is None:
            self._recent.append((camera, stamp, rgb))
            return
        if stamp < self.start_time - 1e-9:
            return
        if self.end_time is not None and stamp > self.end_time + 1e-9:
            return
        if self.t0 is None:
            if camera != self.cameras[0]:
                return  # the grid is anchored on the first camera
            self.t0 = stamp
        k = int(round((stamp - self.t0) * self.fps))
        if k < self._next:
            self.counters.stale_images += 1
            return
        slot = self._slots.setdefault(k, _Slot())
        self._arrivals += 1
        if camera in slot.images:
            self.counters.duplicate_images += 1
            # A reset does not advance time: the frame before it and the episode's first frame share a stamp,
            # and either can reach this callback after the START event. At the start the newest image wins
            # (a camera's images arrive in order, so it is the reset scene); elsewhere ties keep the first
            # (an episode's last frame, not the next one's first).
            at_start = self._at_start(stamp) and abs(slot.images[camera][0] - stamp) <= 1e-9
            if not at_start and abs(stamp - self.slot_time(k)) >= abs(slot.images[camera][0] - self.slot_time(k)):
                return
        slot.images[camera] = (stamp, rgb, self._arrivals)

    def offer_state(self, stamp: float, values: np.ndarray, sent: float | None = None) -> None:
        self._arrivals += 1
        _insert(self._states, stamp, (np.asarray(values, dtype=np.float64), self._arrivals))
        if self.causal and sent is not None:
            _insert(self._state_sent, sent, stamp)

    def offer_env_state(self, stamp: float, values: np.ndarray) -> None:
        self._arrivals += 1
        _insert(self._env_states, stamp, (np.asarray(values, dtype=np.float64), self._arrivals))

    def offer_command(self, received: float, values: np.ndarray, sent: float | None = None) -> None:
        values = np.asarray(values, dtype=np.float64)
        if self.causal and sent is not None:
            self._unresolved.append((sent, received, self._commands, values))
            self._newest_command_sent = max(self._newest_command_sent, sent)
        else:
            _insert(self._commands, received, values)

    def offer_intervention(self, received: float, active: bool, sent: float | None = None) -> None:
        if self.causal and sent is not None:
            self._unresolved.append((sent, received, self._interventions, bool(active)))
        else:
            _insert(self._interventions, received, bool(active))

    def _resolve(self, now: float) -> None:
        """Causal timing: give each command and flag whose answer is known (a state sent after it has arrived,
        or ``command_timeout`` passed) the stamp of the newest state sent before it."""
        newest_state_sent = self._state_sent[-1][0] if self._state_sent else float("-inf")
        keep = deque(maxlen=self._unresolved.maxlen)
        for item in self._unresolved:
            sent, received, history, value = item
            if sent < newest_state_sent or now - received >= self.command_timeout:
                before = _newest_before(self._state_sent, sent)
                _insert(history, before[1] if before is not None else received, value)
            else:
                keep.append(item)
        self._unresolved = keep

    def _answered(self, k: int, now: float) -> bool:
        """Causal timing: every command that answers frame ``k`` has arrived (one sent after the state of
        ``t_k+1`` has), or ``command_timeout`` has passed since ``t_k+1``."""
        tk1 = self.slot_time(k + 1)
        if now >= tk1 + self.command_timeout - 1e-9:
            return True
        sent = [s for s, stamp in self._state_sent if stamp >= tk1 - 1e-6]
        return bool(sent) and self._newest_command_sent > min(sent)

    def offer_help(self, received: float, active: bool) -> None:
        """The policy's help request (latched: it holds until the next one)."""
        _insert(self._helps, received, bool(active))

    # ---- frames --------------------------------------------------------------------------------
    def poll(self, now: float, flush: bool = False) -> list[dict]:
        """Frames complete at ``now``. With ``flush`` (end of episode) every slot that has all its images is
        written with the sources received so far, and slots without are dropped."""
        out: list[dict] = []
        if self.causal:
            self._resolve(float("inf") if flush else now)
        if self.t0 is None:
            return out
        last = max(self._slots) if self._slots else self._next - 1
        while self._next <= last:
            k = self._next
            slot = self._slots.get(k)
            complete = slot is not None and all(c in slot.images for c in self.cameras)
            window_closed = now >= self.slot_time(k + 1) - 1e-9 and (not self.causal or self._answered(k, now))
            if complete and (window_closed or flush):
                out.append(self._frame(k, slot))
            elif flush or now >= self.slot_time(k) + self.drop_after - 1e-9 or self._superseded(k, slot):
                self.counters.dropped += 1
            else:
                break
            self._slots.pop(k, None)
            self._next += 1
        if not flush:
            self.dropped_until(now)
        return out

    def _superseded(self, k: int, slot: _Slot | None) -> bool:
        """A later slot already has an image from every camera this one lacks: a camera's images arrive in
        order, so the missing ones were lost upstream and will not come."""
        missing = [c for c in self.cameras if slot is None or c not in slot.images]
        if not missing:  # complete: it waits for its window to close (its action), it is not lost
            return False
        return any(all(c in later.images for c in missing) for j, later in self._slots.items() if j > k)

    def dropped_until(self, now: float) -> int:
        """Slots with no image at all whose deadline passed (a camera that went silent): counted as dropped."""
        if self.t0 is None:
            return 0
        missing = 0
        while self._next not in self._slots and now >= self.slot_time(self._next) + self.drop_after - 1e-9:
            if self.end_time is not None and self.slot_time(self._next) > self.end_time:
                break
            missing += 1
            self._next += 1
        self.counters.dropped += missing
        return missing

    def _state_for(self, stamp: float, arrival: int, history: deque | None = None):
        """The state stamped like the image (the same sample of the robot); when several share that stamp
        (a reset does not advance time) the one that arrived nearest the image, or at the episode's start the
        newest (the reset state; a topic's messages arrive in order). Otherwise the newest state
        up to half a period after the image. ``history``: another stamped source (the environment state)."""
        history = self._states if history is None else history
        same = [item for item in history if abs(item[0] - stamp) <= 1e-6]
        if same and self._at_start(stamp):  # an episode's first frame: the reset state, the newest
            return max(same, key=lambda item: item[1][1])
        if same:
            return _nearest_arrival(same, arrival)
        return _newest_before(history, stamp + 0.5 * self.dt)

    def _frame(self, k: int, slot: _Slot) -> dict:
        tk, tk1 = self.slot_time(k), self.slot_time(k + 1)
        stamp, _, arrival = slot.images[self.cameras[0]]
        late = False
        state = self._state_for(stamp, arrival)
        if state is None:
            state_values, state_problem = np.full(self.state_dim, np.nan), "state_missing"
        else:
            state_values = state[1][0]
            late |= stamp - state[0] > self.late_after + 1e-9
            state_problem = _problem("state", state_values, self.state_dim)
        command = _newest_before(self._commands, tk1 - 1e-9)
        if command is None:
            action_values, action_problem = np.full(self.action_dim, np.nan), "action_missing"
        else:
            action_values = command[1]
            late |= tk1 - command[0] > self.command_timeout
            action_problem = _problem("action", action_values, self.action_dim)
        intervention, help_requested = (_active_in(history, tk, tk1) for history in (self._interventions, self._helps))
        valid = not (state_problem or action_problem)
        c = self.counters
        c.frames += 1
        c.late += late
        c.invalid += not valid
        c.invalid_reasons.update(r for r in (state_problem, action_problem) if r)
        c.interventions += intervention
        c.help_frames += help_requested
        c.requested_interventions += help_requested and intervention
        frame = {cam: slot.images[cam][1] for cam in self.cameras}
        frame.update({
            STATE: _fit(state_values, self.state_dim),
            ACTION: _fit(action_values, self.action_dim),
            "timestamp": stamp - self.t0, "intervention": intervention, "late": late, "valid": valid,
            "help_requested": help_requested,
        })
        if self.env_state_dim:
            env = self._state_for(stamp, arrival, self._env_states)
            values = env[1][0] if env is not None and abs(env[0] - stamp) <= 1e-6 else None  # of this instant only
            if values is None or _problem("environment state", values, self.env_state_dim):
                c.env_state_missing += 1
                values = np.full(self.env_state_dim, np.nan)
            frame[ENV_STATE] = _fit(values, self.env_state_dim)
        return frame


def _active_in(history, tk: float, tk1: float) -> bool:
    """A flag (intervention, help request) in force at the end of the window [tk, tk1) or raised within it."""
    flag = _newest_before(history, tk1 - 1e-9)
    return bool(flag and flag[1]) or any(active for t, active in history if tk <= t < tk1)


def _nearest_arrival(items, arrival: int):
    return min(items, key=lambda item: abs(item[1][1] - arrival))


def _problem(name: str, values: np.ndarray, dim: int) -> str:
    """'' if ``values`` is a usable ``name`` of ``dim`` values as stored (float32), else the invalid reason."""
    if values.shape != (dim,):
        return f"{name}_wrong_size"
    return "" if np.isfinite(_float32(values)).all() else f"{name}_nonfinite"


def _float32(values: np.ndarray) -> np.ndarray:
    with np.errstate(over="ignore"):  # beyond float32's range becomes inf: counted as non-finite, not a warning
        return values.astype(np.float32)


def _fit(values: np.ndarray, dim: int) -> np.ndarray:
    """``values`` as float32 of length ``dim`` (a wrong dimension becomes NaN: the row is invalid anyway)."""
    if values.shape != (dim,):
        return np.full(dim, np.nan, dtype=np.float32)
    return _float32(values)


def _insert(history: deque, t: float, value) -> None:
    if history and t < history[-1][0]:
        items = list(history)
        bisect.insort(items, (t, value), key=lambda item: item[0])
        history.clear()
        history.extend(items)
    else:
        history.append((t, value))


def _newest_before(history: deque, t: float):
    for item in reversed(history):
        if item[0] <= t:
            return item
    return None
