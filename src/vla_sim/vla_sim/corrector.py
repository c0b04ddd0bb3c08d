"""A scripted operator's rule for when to take over from a policy (no rclpy), and the progress measures of the
embedded tasks it watches.

:class:`TakeoverRule` is the continual loop's corrector: the teleop node's ``corrector`` device (the tabletop)
and the sim-expert node's ``on_error`` mode (the arm) both decide with it, each with its task's progress measure
(:data:`PROGRESS`, by the name of the scripted expert).
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Callable, ClassVar

import numpy as np

#: Who drives: "on_error" the policy, until it stalls; "on_help" the policy, until it asks for help (its
#: uncertainty above the policy node's help_threshold: active learning); "on_error_or_help" either; "always" the
#: scripted expert (demonstrations); "off" the policy alone (the expert watches: evaluation).
MODES = ("on_error", "always", "off", "on_help", "on_error_or_help")
#: The modes in which the operator takes over from the policy (and counts takeovers).
TAKEOVER_MODES = ("on_error", "on_help", "on_error_or_help")


@dataclass(kw_only=True)
class TakeoverRule:
    """When a scripted operator takes over from the policy, on the clock of the ``now`` values passed in
    (simulated time under ``use_sim_time``):

    * progress is a decrease of the task's distance (:meth:`update`'s ``distance``, m) by ``min_progress`` below
      the reference distance: the reference becomes the current distance and the patience timer restarts;
    * the policy errs when there has been no progress for ``patience`` s (modes "on_error" and
      "on_error_or_help"), or it asks for help (``help_requested``, set by the caller from the policy's
      vla_interfaces/HelpRequest; modes "on_help" and "on_error_or_help"). The operator then takes over
      (:meth:`update` returns True: start a fresh expert) and :meth:`drives` is True for ``takeover`` s; a request
      still standing when it hands back starts the next takeover;
    * then it hands back and restarts the patience timer from the current distance;
    * a new episode (another ``episode`` number) hands back at once and restarts the timer; in mode "always"
      it also asks for a fresh expert (every demonstration starts from one);
    * at most ``max_takeovers`` takeovers per episode (0: unlimited); takeovers happen (and count) only in the
      :data:`TAKEOVER_MODES`.

    Counters: ``takeovers`` since construction (``help_takeovers`` of them asked for by the policy),
    ``episode_takeovers`` in this episode. ``mode`` (:data:`MODES`) may change at any time, as may the other
    fields.
    """

    patience: float = 5.0
    takeover: float = 2.0
    min_progress: float = 0.01
    max_takeovers: int = 0
    mode: str = "on_error"
    help_requested: bool = False  # the policy asks for help now (the caller keeps it up to date)
    takeovers: int = field(default=0, init=False)
    help_takeovers: int = field(default=0, init=False)
    episode_takeovers: int = field(default=0, init=False)
    _episode: int = field(default=-1, init=False, repr=False)
    _reference: float = field(default=np.inf, init=False, repr=False)  # distance progress is measured from
    _since: float = field(default=np.inf, init=False, repr=False)      # when the reference was set
    _until: float | None = field(default=None, init=False, repr=False)  # end of the takeover, None: policy drives

    # Clocks are sums of float periods (sim time = steps * dt): compare with a tolerance far below one tick.
    _EPS: ClassVar[float] = 1e-9

    def __post_init__(self) -> None:
        problems = [f"{name}={value!r} must be > 0 s" for name, value in
                    (("patience", self.patience), ("takeover", self.takeover)) if not value > 0]
        if not self.min_progress > 0:
            problems.append(f"min_progress={self.min_progress!r} must be > 0 m (a still block is no progress)")
        if self.max_takeovers < 0:
            problems.append(f"max_takeovers={self.max_takeovers!r} must be >= 0 (0: unlimited)")
        if self.mode not in MODES:
            problems.append(f"mode={self.mode!r} must be one of {MODES}")
        if problems:
            raise ValueError("corrector: " + "; ".join(problems))

    @property
    def engaged(self) -> bool:
        """Whether a takeover is under way (the operator, not the policy, is in control)."""
        return self._until is not None

    def update(self, distance: float, episode: int, now: float) -> bool:
        """Take the task's ``distance`` in ``episode`` at ``now`` (s); True when the operator needs a fresh
        expert (a takeover starts, or a new episode in mode "always").

        Raises:
            ValueError: ``distance`` is not finite (nothing changes).
        """
        d = float(distance)
        if not np.isfinite(d):
            raise ValueError(f"the distance to the goal of this state is {d}")
        if episode != self._episode:
            self._episode, self.episode_takeovers, self._until = episode, 0, None
            self._restart(d, now)
            return self.mode == "always"
        stalled = False
        if self._until is not None:
            if now < self._until - self._EPS:
                return False
            self._until = None  # hand back (and take over again at once if the policy still asks)
            self._restart(d, now)
        elif d <= self._reference - self.min_progress:
            self._restart(d, now)
        else:
            stalled = self.mode in ("on_error", "on_error_or_help") and now - self._since >= self.patience - self._EPS
        asked = self.help_requested and self.mode in ("on_help", "on_error_or_help")
        if (asked or stalled) and (self.max_takeovers == 0 or self.episode_takeovers < self.max_takeovers):
            self._until = now + self.takeover
            self.takeovers += 1
            self.help_takeovers += asked
            self.episode_takeovers += 1
            return True
        return False

    def drives(self, now: float) -> bool:
        """Whether the operator commands at ``now``: always in mode "always", never in "off", and during a
        takeover in the :data:`TAKEOVER_MODES`."""
        if self.mode == "always":
            return True
        return self.mode in TAKEOVER_MODES and self._until is not None and now < self._until - self._EPS

    def reset(self) -> None:
        """Forget the episode and any takeover; the policy is in control. ``takeovers`` keeps counting."""
        self._episode, self._until, self.episode_takeovers = -1, None, 0
        self._restart(np.inf, np.inf)

    def _restart(self, distance: float, now: float) -> None:
        self._reference, self._since = distance, now


def tabletop_target_distance(privileged: np.ndarray) -> float:
    """Distance (m) from the target block's centre to the target zone's centre, from the flat privileged
    state of TabletopPushEnv. Only the block counts: a policy still travelling to it makes no progress.

    Raises:
        ValueError: ``privileged`` is not a tabletop privileged state.
    """
    from vla_sim.envs.tabletop import TabletopPushEnv

    s = TabletopPushEnv.decode_privileged(privileged)
    return float(np.hypot(*(s.target_block_pos - s.target_zone_pos)))


class ArmTaskDistance:
    """The arm's progress measure (m) from its flat privileged state: the tcp's distance to the target cube
    plus the cube's distance to where it should come to rest. Reaching for the cube, carrying it and lowering it
    each decrease it; lifting the cube off the table raises it by the lift (a few cm), which ``patience`` covers.
    The tcp comes from the arm's forward kinematics (MuJoCo, loaded on the first call).

    Raises (on call):
        ValueError: ``privileged`` is not an arm privileged state.
    """

    def __init__(self) -> None:
        self._kinematics = None

    def __call__(self, privileged: np.ndarray) -> float:
        from vla_sim.envs.arm import ArmPickPlaceEnv
        from vla_sim.envs.arm_kinematics import ArmKinematics

        s = ArmPickPlaceEnv.decode_privileged(privileged)
        if self._kinematics is None:
            self._kinematics = ArmKinematics()
        tcp, _ = self._kinematics.fk(s.qpos)
        cube = s.cube_pos[s.target_cube]
        return float(np.linalg.norm(tcp - cube) + np.linalg.norm(cube - s.goal))


#: The progress measure a corrector watches, by the name of the scripted expert (vla_sim.experts).
PROGRESS: dict[str, Callable[[], Callable[[np.ndarray], float]]] = {
    "tabletop": lambda: tabletop_target_distance,
    "arm": ArmTaskDistance,
}
