"""When the policy asks for help: its uncertainty against a threshold, with hysteresis (no ROS).

The uncertainty is what the serving artifact outputs beside its action (an ensemble's disagreement: the heads'
standard deviation in action standard deviations, vla_trainer.policies.ensemble). :class:`HelpMonitor` raises a
request when one proposal's uncertainty exceeds ``threshold`` and clears it once an uncertainty falls below
``threshold * clear_ratio`` (so a value hovering at the threshold does not toggle the request every tick).
:func:`calibrate_threshold` picks a threshold from uncertainties measured on in-distribution data.
"""
from __future__ import annotations

import math
from typing import Iterable

import numpy as np


class HelpMonitor:
    """The help request's state. ``threshold`` 0 never asks (and clears a standing request)."""

    def __init__(self, threshold: float = 0.0, clear_ratio: float = 0.8):
        self.active = False
        self.requests = 0  # requests raised since construction
        self.reason = ""
        self.uncertainty = 0.0  # the value that last raised or cleared the request (0: none, e.g. deactivation)
        self.configure(threshold, clear_ratio)

    def configure(self, threshold: float, clear_ratio: float) -> None:
        """Set the threshold and hysteresis (run-time parameters); ValueError naming the fix when invalid."""
        if not (math.isfinite(threshold) and threshold >= 0):
            raise ValueError(f"help_threshold {threshold!r} must be a finite number >= 0 (0: never ask for help)")
        if not 0 < clear_ratio <= 1:
            raise ValueError(f"help_clear_ratio {clear_ratio!r} must be in (0, 1]: the request clears below "
                             "help_threshold x help_clear_ratio")
        self.threshold, self.clear_ratio = float(threshold), float(clear_ratio)

    def update(self, uncertainty: float | None) -> bool:
        """One proposal's uncertainty (None: the artifact gives none). Returns True when the request changed
        (raised or cleared): the caller then publishes it."""
        if uncertainty is None or self.threshold <= 0:
            why = "the serving policy gives no uncertainty" if uncertainty is None else "help_threshold is 0"
            return self.clear(why, uncertainty)
        if not self.active and uncertainty > self.threshold:
            self.active, self.uncertainty = True, float(uncertainty)
            self.requests += 1
            self.reason = f"uncertainty {uncertainty:.3g} > help_threshold {self.threshold:.3g}"
            return True
        if self.active and uncertainty < self.threshold * self.clear_ratio:
            return self.clear(f"uncertainty {uncertainty:.3g} < {self.threshold * self.clear_ratio:.3g} "
                              f"(help_threshold x help_clear_ratio)", uncertainty)
        return False

    def clear(self, reason: str, uncertainty: float | None = None) -> bool:
        """Withdraw a standing request (deactivation, a policy without uncertainty); True when there was one."""
        if not self.active:
            return False
        self.active, self.reason = False, reason
        self.uncertainty = 0.0 if uncertainty is None else float(uncertainty)
        return True


def calibrate_threshold(uncertainties: Iterable[float], quantile: float = 0.99, margin: float = 1.0) -> float:
    """A help threshold from uncertainties on in-distribution data (validation episodes the policy succeeds on):
    their ``quantile`` times ``margin``. With the default, about 1% of in-distribution ticks would ask for help.
    Raises ValueError for no values, non-finite values or a quantile outside (0, 1]."""
    values = np.asarray(list(uncertainties), dtype=np.float64)
    if values.size == 0:
        raise ValueError("calibrate_threshold needs the uncertainties of at least one tick; run validation "
                         "episodes with a policy that has an uncertainty output (ensemble_heads >= 2)")
    if not np.all(np.isfinite(values)):
        raise ValueError(f"{int(np.sum(~np.isfinite(values)))} of the {values.size} uncertainties are not finite")
    if not 0 < quantile <= 1 or not margin > 0:
        raise ValueError(f"quantile {quantile} must be in (0, 1] and margin {margin} > 0")
    return float(np.quantile(values, quantile) * margin)
