"""Per-episode and per-cell figures of `vla eval`: path length, command jerk, the AUROC of "this episode fails"
from the policy's uncertainty, success with its Wilson interval, and the test that compares two success rates.

Plain numpy (and scipy for Fisher's exact test); no rclpy, no simulator.
"""
from __future__ import annotations

import math
from typing import Any, Iterable, Sequence

import numpy as np

from vla_core.stats import wilson_interval

#: Name of the test behind every comparison's p-value.
COMPARISON_TEST = "fisher_exact_two_sided"


def path_length(positions: np.ndarray) -> float:
    """Length of the polyline through ``positions`` ((T, n) joint positions, robot units: m for the tabletop's
    gantry, rad and m for the arm): the sum of the Euclidean norms of successive differences. 0 for T < 2."""
    p = np.asarray(positions, np.float64)
    if p.ndim != 2:
        raise ValueError(f"positions must be (T, n), got shape {p.shape}")
    if len(p) < 2:
        return 0.0
    return float(np.linalg.norm(np.diff(p, axis=0), axis=1).sum())


def command_jerk(commands: np.ndarray, dt: float, position_commands: bool) -> float | None:
    """RMS jerk of a command sequence ((T, n), one command per control period of ``dt`` s): the norm of the
    third time derivative of the commanded position, estimated by finite differences. Velocity commands
    (m/s) need their second difference / dt², position targets their third / dt³. Units: m/s³ (rad/s³ for
    joints). None when the episode is too short to tell (fewer than 3 or 4 commands)."""
    c = np.asarray(commands, np.float64)
    if c.ndim != 2:
        raise ValueError(f"commands must be (T, n), got shape {c.shape}")
    if not dt > 0:
        raise ValueError(f"dt must be positive seconds, got {dt!r}")
    order = 3 if position_commands else 2
    if len(c) <= order:
        return None
    jerk = np.diff(c, n=order, axis=0) / dt ** order
    return float(math.sqrt(np.mean(np.sum(jerk * jerk, axis=1))))


def auroc(scores: Sequence[float], positives: Sequence[bool]) -> float | None:
    """Area under the ROC curve of ``scores`` ranking the ``positives`` above the rest: the probability that a
    random positive scores higher than a random negative, ties counting one half (Mann-Whitney U / (n+ n-)).
    1 = perfect ranking, 0 = reversed, 0.5 = no information. None when either class is empty."""
    s = np.asarray(scores, np.float64)
    y = np.asarray(positives, bool)
    if s.shape != y.shape or s.ndim != 1:
        raise ValueError(f"scores {s.shape} and positives {y.shape} must be two equal-length 1-D sequences")
    pos, neg = s[y], s[~y]
    if not len(pos) or not len(neg):
        return None
    greater = (pos[:, None] > neg[None, :]).sum()
    ties = (pos[:, None] == neg[None, :]).sum()
    return float((greater + 0.5 * ties) / (len(pos) * len(neg)))


def first_half_uncertainty(values: Sequence[float]) -> float | None:
    """Mean of the first half (rounded up) of an episode's per-tick uncertainty; None when there is none."""
    if not len(values):
        return None
    return float(np.mean(values[:math.ceil(len(values) / 2)]))


def compare_success(successes_a: int, n_a: int, successes_b: int, n_b: int) -> dict[str, Any]:
    """Two success counts compared by Fisher's exact test (two-sided; the episodes are independent draws for
    this purpose even where both artifacts ran the same seeds): {"test", "p_value", "difference" (b - a)}."""
    from scipy.stats import fisher_exact
    for name, k, n in (("a", successes_a, n_a), ("b", successes_b, n_b)):
        if n <= 0 or not 0 <= k <= n:
            raise ValueError(f"artifact {name}: {k} successes of {n} episodes is not a count; give 0 <= k <= n, n > 0")
    _, p = fisher_exact([[successes_a, n_a - successes_a], [successes_b, n_b - successes_b]])
    return {"test": COMPARISON_TEST, "p_value": float(p), "difference": successes_b / n_b - successes_a / n_a}


def _mean(values: Iterable[float | None]) -> float | None:
    kept = [v for v in values if v is not None]
    return float(np.mean(kept)) if kept else None


def summarise_cell(episodes: list[dict]) -> dict[str, Any]:
    """The figures of one cell from its episodes (dicts with success, return, steps, time_to_success_s,
    path_length, jerk_rms and, for an artifact with an uncertainty output, uncertainty_first_half; phrasing)."""
    n = len(episodes)
    k = sum(bool(e["success"]) for e in episodes)
    low, high = wilson_interval(k, n)
    phrasings: dict[str, dict[str, Any]] = {}
    for e in episodes:
        p = phrasings.setdefault(e["phrasing"], {"episodes": 0, "successes": 0})
        p["episodes"] += 1
        p["successes"] += bool(e["success"])
    for p in phrasings.values():
        p["success_rate"] = p["successes"] / p["episodes"]
    scored = [e for e in episodes if e.get("uncertainty_first_half") is not None]
    return {
        "episodes": n, "successes": k, "success_rate": k / n if n else 0.0, "ci95": [low, high],
        "mean_return": _mean(e["return"] for e in episodes),
        "time_to_success_s": _mean(e["time_to_success_s"] for e in episodes),
        "path_length": _mean(e["path_length"] for e in episodes),
        "jerk_rms": _mean(e["jerk_rms"] for e in episodes),
        "failure_auroc": auroc([e["uncertainty_first_half"] for e in scored], [not e["success"] for e in scored])
        if scored else None,
        "per_phrasing": phrasings,
    }
