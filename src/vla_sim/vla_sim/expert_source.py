"""A scripted expert as a command source (no rclpy): the privileged state the sim robot publishes in, the
robot contract's command out, in the sim backend's command units.

The expert and the conversion from its actions (the environment's units) to commands (the units of
joint_states: the arm's gripper as an opening in m) come from a sim backend preset (``vla_sim.backends.PRESETS``),
so the source commands exactly what the backend of that preset takes. A state older than ``timeout`` (s) or
one the expert cannot act on gives no command: the shield's watchdog then holds the robot.

With a :class:`vla_sim.corrector.TakeoverRule` the source is the continual loop's corrector: it watches the task's
progress (``vla_sim.corrector.PROGRESS`` of the preset's expert) and commands only while the rule says the operator
drives (mode "on_error": when the policy has stalled; "always": every step; "off": never).
"""
from __future__ import annotations

import numpy as np

from vla_sim.backends import PRESETS
from vla_sim.corrector import PROGRESS, TakeoverRule
from vla_sim.experts import make_expert


class ExpertSource:
    """Args:
        preset: a backend preset with an ``expert`` (e.g. "arm", "tabletop").
        noise_std: DART noise of the expert (its own units: rad per joint for the arm, m/s for the tabletop).
        timeout: a privileged state older than this (s) gives no command.
        seed: the noise generator's seed.
        rule: when the expert drives (None: whenever it has a fresh state).
    """

    def __init__(self, preset: str, noise_std: float = 0.0, timeout: float = 0.5, seed: int | None = None,
                 rule: TakeoverRule | None = None):
        config = PRESETS.get(preset)
        if config is None or not config.get("expert"):
            with_expert = [name for name, cfg in PRESETS.items() if cfg.get("expert")]
            raise ValueError(f"preset {preset!r} has no scripted expert; use one of {with_expert}")
        self.expert = make_expert(config["expert"], **{**config.get("expert_kwargs", {}), "noise_std": noise_std,
                                                       "seed": seed})
        scale = config.get("action_scale")
        self.scale = None if scale is None else np.asarray(scale, dtype=np.float64)
        self.timeout = float(timeout)
        self.rule = rule
        self.progress = None
        if rule is not None:
            if config["expert"] not in PROGRESS:
                raise ValueError(f"preset {preset!r}: no progress measure for its expert {config['expert']!r}, so "
                                 f"no corrector; those with one: {sorted(PROGRESS)}")
            self.progress = PROGRESS[config["expert"]]()
        self._state: np.ndarray | None = None
        self._stamp = -np.inf
        self._episode: int | None = None

    def observe(self, privileged, episode: int, now: float) -> None:
        """Keep the privileged state of ``episode`` received at ``now`` (s); a new episode resets the expert.

        Raises:
            ValueError: the state is empty or not finite, or (with a rule) not a state of this preset's task (it is
                dropped; the previous one goes stale).
        """
        state = np.asarray(privileged, dtype=np.float64).ravel()
        if state.size == 0 or not np.all(np.isfinite(state)):
            raise ValueError(f"privileged state of {state.size} values is empty or not finite; the sim robot must "
                             "publish sim/state (publish_privileged_state)")
        # The rule refuses a non-finite distance before it changes anything; a takeover starts from a fresh expert.
        fresh = self.rule is not None and self.rule.update(self.progress(state), episode, now)
        if fresh or episode != self._episode:
            self.expert.reset()
            self._episode = episode
        self._state, self._stamp = state, now

    def command(self, now: float) -> np.ndarray | None:
        """The expert's command at ``now`` in command units, or None without a fresh state.

        Raises:
            ValueError: the expert cannot act on the state (wrong layout for this expert).
        """
        if self._state is None or now - self._stamp > self.timeout:
            return None
        if self.rule is not None and not self.rule.drives(now):
            return None
        action = np.asarray(self.expert.act(self._state), dtype=np.float64)
        return action if self.scale is None else action / self.scale

    def reset(self) -> None:
        """Forget the state and any takeover (on activation: no stale state drives the robot)."""
        self._state, self._stamp, self._episode = None, -np.inf, None
        if self.rule is not None:
            self.rule.reset()
