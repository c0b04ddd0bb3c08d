"""What the embedded environments (tabletop push, MuJoCo arm) share: reset options, the privileged-state
header check and rejection sampling of a layout. Plain numpy; no simulator."""

from __future__ import annotations

from typing import Any, Callable

import numpy as np

#: The ``options`` keys every embedded env's ``reset`` accepts.
RESET_OPTIONS: tuple[str, ...] = ("instruction", "instruction_set")


def check_reset_options(options: dict[str, Any] | None, extra: tuple[str, ...] = ()) -> dict[str, Any]:
    """A copy of ``reset``'s ``options`` (None: empty).

    Args:
        extra: keys this env accepts beyond :data:`RESET_OPTIONS` (the tabletop's "randomization").

    Raises:
        ValueError: a key outside :data:`RESET_OPTIONS` and ``extra``, naming it and the accepted ones.
    """
    options = dict(options or {})
    accepted = set(RESET_OPTIONS) | set(extra)
    unknown = set(options) - accepted
    if unknown:
        raise ValueError(f"unknown reset options {sorted(unknown)}; accepted: {sorted(accepted)}")
    return options


def privileged_vector(vector: np.ndarray, version: float, header_size: int, what: str) -> np.ndarray:
    """``vector`` as a flat float64 array whose header says ``version`` (its first value).

    Args:
        what: the env's name for the error message ("tabletop", "arm").

    Raises:
        ValueError: shorter than ``header_size`` or another version.
    """
    v = np.asarray(vector, dtype=np.float64).ravel()
    if v.size < header_size or v[0] != version:
        raise ValueError(
            f"not a version-{version:g} {what} privileged state "
            f"(size {v.size}, first value {v[0] if v.size else None})"
        )
    return v


def place(
    sample: Callable[[], np.ndarray],
    count: int,
    ok: Callable[[np.ndarray, list[np.ndarray]], bool],
    tries: int,
) -> np.ndarray | None:
    """``count`` (x, y) positions (m) drawn one by one by rejection sampling.

    Args:
        sample: draws one candidate (2,) position.
        ok: ``ok(candidate, placed_so_far)``: whether the candidate may stand there.
        tries: candidates drawn for each position before giving up.

    Returns:
        (count, 2) float array, or None when some position found no place in ``tries`` draws
        (the caller restarts its layout).
    """
    placed: list[np.ndarray] = []
    for _ in range(count):
        for _ in range(tries):
            c = sample()
            if ok(c, placed):
                placed.append(c)
                break
        else:
            return None
    return np.array(placed).reshape(count, 2)
