"""What the sim robot does with incoming commands: validate, hold the newest, stop when it goes stale; and
which reset requests it accepts.

A real robot's driver behaves the same way: a non-finite or wrong-dimension command, or one outside the
robot's limits (``low``/``high``, when given: joint-position targets), is refused and counted, never applied;
with no fresh command within ``timeout`` (simulated seconds) a velocity-controlled robot gets zero velocity and a
position-controlled one holds the positions it had when the command went stale (``current(now, hold=...)``).
"""
from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from vla_core.codecs import CommandError, check_command
from vla_core.text import normalize_instruction

# Episode seeds: numpy's legacy seeding (RandomState, which gymnasium environments and their wrappers may use)
# takes 0 .. 2**32 - 1, and every seed must fit EpisodeEvent.seed (int64); the sequence wraps after the last.
MAX_SEED = 2**32 - 1


def reset_request(seed: int, instruction: str, next_seed: int) -> tuple[int, str | None]:
    """The (seed, instruction) a reset request asks for: a negative ``seed`` takes ``next_seed``, an empty
    ``instruction`` (after stripping) lets the environment draw one (None).

    Raises:
        ValueError: a seed above :data:`MAX_SEED`, or an instruction that
            :func:`vla_core.text.normalize_instruction` refuses (control characters, too long); the message
            names the value and what to send instead.
    """
    seed = int(seed)
    if seed > MAX_SEED:
        raise ValueError(f"seed {seed} is out of range: episode seeds are 0 .. {MAX_SEED} (2**32 - 1); "
                         "send a seed in that range, or -1 for the next seed in sequence")
    if seed < 0:
        seed = next_seed
    text = None if not instruction.strip() else normalize_instruction(instruction)
    return seed, text


def following_seed(seed: int) -> int:
    """The seed after ``seed`` in the sequence (wraps to 0 after :data:`MAX_SEED`)."""
    return (seed + 1) % (MAX_SEED + 1)


@dataclass
class CommandGate:
    dim: int
    timeout: float
    low: np.ndarray | None = None
    high: np.ndarray | None = None
    accepted: int = 0
    rejected_nonfinite: int = 0
    rejected_dimension: int = 0
    rejected_limits: int = 0
    rejected_malformed: int = 0
    stale_steps: int = 0
    names: tuple[str, ...] = ()
    _latest: np.ndarray | None = field(default=None, repr=False)
    _stamp: float = field(default=-np.inf, repr=False)
    _held: np.ndarray | None = field(default=None, repr=False)

    def offer(self, values: np.ndarray, now: float) -> str | None:
        """Take a command received at ``now``; return why it was refused, or None."""
        values = np.asarray(values, dtype=np.float64)
        if values.shape != (self.dim,):
            self.rejected_dimension += 1
            return (f"command has {values.size} values {values.tolist()} but this robot takes {self.dim}; "
                    f"send a command of dimension {self.dim}")
        if not np.all(np.isfinite(values)):
            self.rejected_nonfinite += 1
            return f"command {values.tolist()} has non-finite values; it was dropped and the robot holds still"
        if self.low is not None and self.high is not None:
            try:
                check_command(values, self.dim, self.names, self.low, self.high)
            except CommandError as exc:
                self.rejected_limits += 1
                return f"{exc}; it was dropped"
        self._latest, self._stamp = values, now
        self._held = None
        self.accepted += 1
        return None

    @property
    def rejected(self) -> int:
        return self.rejected_nonfinite + self.rejected_dimension + self.rejected_limits + self.rejected_malformed

    def current(self, now: float, hold: np.ndarray | None = None) -> tuple[np.ndarray, bool]:
        """The command to apply at ``now`` and whether it is fresh. Stale or absent: zero (velocity commands),
        or with ``hold`` (the measured positions of a position-controlled robot) the ``hold`` of the first
        stale step, kept until a fresh command arrives (a servo's sag is not followed)."""
        if self._latest is None or now - self._stamp > self.timeout:
            self.stale_steps += 1
            if hold is None:
                return np.zeros(self.dim), False
            if self._held is None:
                self._held = np.array(hold, dtype=np.float64)
            return self._held, False
        return self._latest, True

    def clear(self) -> None:
        """Forget the held command (on activation: no stale command survives)."""
        self._latest, self._stamp, self._held = None, -np.inf, None

    def counters(self) -> dict[str, int]:
        return {"accepted": self.accepted, "rejected_nonfinite": self.rejected_nonfinite,
                "rejected_dimension": self.rejected_dimension, "rejected_limits": self.rejected_limits,
                "rejected_malformed": self.rejected_malformed, "stale_steps": self.stale_steps}
