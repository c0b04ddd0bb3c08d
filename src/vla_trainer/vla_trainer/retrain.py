"""When the trainer retrains on its own: after every K episodes recorded since its last run (the continual loop
with no one asking). No rclpy.

Episodes are counted from each dataset's ``meta/info.json`` (``total_episodes``), which the recorder rewrites
atomically after every saved episode, so the trainer needs no topic from the recorder and works the same when
the recorder runs on another machine that shares the disk.
"""
from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path

from vla_core.dataset import layout as L


def count_episodes(root: str | Path) -> int:
    """Saved episodes of the LeRobot dataset at ``root``; 0 while it has none (no ``meta/info.json`` yet).

    Only ``total_episodes`` is read: this runs every few seconds, and ``load_meta`` would also read the
    episodes table.

    Raises:
        ValueError: ``meta/info.json`` exists but is not a dataset's (the message names the file).
    """
    info = Path(root) / L.INFO_PATH
    if not info.is_file():
        return 0
    try:
        return int(json.loads(info.read_text())["total_episodes"])
    except (ValueError, KeyError, TypeError) as exc:
        raise ValueError(f"{info}: no total_episodes ({type(exc).__name__}: {exc}); is {root} a LeRobot "
                         "dataset? Fix retrain_datasets") from exc


@dataclass
class RetrainTrigger:
    """Counts episodes in ``datasets`` and says when ``every`` new ones have come since the last run.

    ``arm()`` takes the present count as the reference (episodes already there do not start a run);
    ``due(every)`` is true once ``every`` more were saved (never for 0); ``started()`` moves the reference to
    the count the run trains on, so episodes recorded while it trains count toward the next one.
    """

    datasets: list[str]
    reference: int | None = field(default=None, init=False)

    def total(self) -> int:
        return sum(count_episodes(d) for d in self.datasets)

    def arm(self) -> int:
        self.reference = self.total()
        return self.reference

    def pending(self) -> int:
        """Episodes saved since the reference (arms on first use)."""
        if self.reference is None:
            self.arm()
        return self.total() - self.reference

    def due(self, every: int) -> bool:
        return every > 0 and bool(self.datasets) and self.pending() >= every

    def started(self) -> int:
        """A run starts now: the reference becomes the present count, which it returns."""
        return self.arm()
