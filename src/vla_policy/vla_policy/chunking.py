"""Executing action chunks: a policy predicts K actions per inference; these decide what is sent each tick.

- Temporal ensembling (ACT, Zhao et al. 2023): infer every tick; the action for tick t is the weighted mean of
  every stored chunk's prediction for t, with weights exp(-coeff * i), i = 0 for the oldest prediction.
- Receding horizon: infer, execute the first ``steps`` actions of the chunk, infer again.
Ticks are integers (control periods). No ROS, no torch.
"""
from __future__ import annotations

from collections import deque

import numpy as np


class ChunkExecutor:
    """What to send at each tick, given chunks as they are predicted."""

    def __init__(self, chunk_size: int, action_dim: int, execution: str, ensemble_coeff: float = 0.01,
                 receding_steps: int | None = None):
        if execution not in ("temporal_ensemble", "receding_horizon"):
            raise ValueError(f"unknown execution {execution!r}; use temporal_ensemble or receding_horizon")
        self.k, self.dim, self.execution = int(chunk_size), int(action_dim), execution
        self.coeff = float(ensemble_coeff)
        self.steps = int(receding_steps or chunk_size)
        if not 1 <= self.steps <= self.k:
            raise ValueError(f"receding_steps {self.steps} must be in [1, chunk_size={self.k}]")
        self.reset()

    def reset(self) -> None:
        """Forget every stored prediction (activation, a policy swap)."""
        self._chunks: deque[tuple[int, np.ndarray]] = deque()
        self._position = 0  # index into the current chunk (receding horizon)

    def needs_inference(self, tick: int) -> bool:
        if self.execution == "temporal_ensemble":
            return True
        return not self._chunks or self._position >= self.steps or tick >= self._chunks[-1][0] + self.k

    def at_boundary(self) -> bool:
        """True where a new policy may take over without cutting a chunk short."""
        return self.execution == "temporal_ensemble" or not self._chunks or self._position >= self.steps

    @property
    def position(self) -> int:
        return self._position

    def push(self, tick: int, chunk: np.ndarray) -> None:
        """A chunk predicted at ``tick``: row i is the action for tick + i."""
        chunk = np.asarray(chunk, dtype=np.float64).reshape(self.k, self.dim)
        if self.execution == "receding_horizon":
            self._chunks.clear()
            self._position = 0
        self._chunks.append((tick, chunk))
        while self._chunks and self._chunks[0][0] + self.k <= tick:
            self._chunks.popleft()

    def plan(self, tick: int) -> np.ndarray | None:
        """The actions planned for ticks ``tick``, ``tick + 1``, ... as far as the stored chunks reach, (T, dim),
        or None when none covers ``tick``: the rest of the newest chunk (receding horizon), or the weighted mean of
        every prediction for each tick (temporal ensembling). Row 0 is :meth:`action`'s value; this does not
        advance the chunk."""
        if self.execution == "receding_horizon":
            if not self._chunks:
                return None
            start, chunk = self._chunks[-1]
            i = tick - start
            return chunk[i:].copy() if 0 <= i < self.k else None
        rows = []
        t = tick
        while True:
            preds = [chunk[t - start] for start, chunk in self._chunks if 0 <= t - start < self.k]
            if not preds:
                break
            weights = np.exp(-self.coeff * np.arange(len(preds)))
            rows.append((weights[:, None] * np.stack(preds)).sum(axis=0) / weights.sum())
            t += 1
        return np.stack(rows) if rows else None

    def action(self, tick: int) -> np.ndarray | None:
        """The action for ``tick``, or None when no stored chunk covers it (the caller proposes nothing)."""
        if self.execution == "receding_horizon":
            if not self._chunks:
                return None
            start, chunk = self._chunks[-1]
            i = tick - start
            if not 0 <= i < self.k:
                return None
            self._position = i + 1
            return chunk[i].copy()
        preds = [chunk[tick - start] for start, chunk in self._chunks if 0 <= tick - start < self.k]
        if not preds:
            return None
        weights = np.exp(-self.coeff * np.arange(len(preds)))
        return (weights[:, None] * np.stack(preds)).sum(axis=0) / weights.sum()
