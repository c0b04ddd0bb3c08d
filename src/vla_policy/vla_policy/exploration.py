"""Exploration noise on the proposed action (no ROS): what an exploring actor adds for online RL.

The noise is Gaussian with a standard deviation given as a fraction of each action dimension's half range
(``(high - low) / 2`` of the robot contract), so one number means the same on every robot; the result is
clamped to the contract's limits and the clamped dimensions are counted, never hidden. The safety shield still
bounds whatever the policy proposes: this only keeps the proposal itself inside the contract.
"""
from __future__ import annotations

import numpy as np


def check_exploration(std: float, maximum: float) -> None:
    """Raise ValueError when ``std`` is not a usable exploration level under the read-only ``maximum``."""
    if not np.isfinite(std) or std < 0.0:
        raise ValueError(f"exploration_std {std} must be finite and >= 0 (0: no exploration)")
    if std > maximum:
        raise ValueError(f"exploration_std {std} is above max_exploration_std {maximum} (read-only, set at start); "
                         f"use at most {maximum}, or restart the node with a larger max_exploration_std")


def explore(action: np.ndarray, std: float, low: np.ndarray, high: np.ndarray,
            rng: np.random.Generator) -> tuple[np.ndarray, int]:
    """``action`` (D,) plus N(0, (std * (high - low) / 2)^2) per dimension, clamped to [low, high]; returns the
    new action (float64) and how many dimensions the clamp changed. ``std`` 0 returns the action unchanged."""
    action = np.asarray(action, dtype=np.float64)
    if std <= 0.0:
        return action, 0
    low, high = np.asarray(low, np.float64), np.asarray(high, np.float64)
    noisy = action + rng.normal(0.0, 1.0, action.shape) * std * (high - low) / 2.0
    out = np.clip(noisy, low, high)
    return out, int(np.count_nonzero(out != noisy))
