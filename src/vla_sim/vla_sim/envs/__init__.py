"""Gymnasium environments of vla_sim; importing this package registers their ids.

Registered ids:
    ``vla_sim/TabletopPush-v0``      3 blocks, 2 zones (defaults of TabletopPushEnv)
    ``vla_sim/TabletopPushHard-v0``  4 blocks, 3 zones
    ``vla_sim/ArmPickPlace-v0``      MuJoCo arm: 3 cubes, 2 bins, pick-and-place and stacking
    ``vla_sim/ArmPickPlaceHard-v0``  4 cubes, 3 bins

The arm ids load :mod:`vla_sim.envs.arm` (and mujoco) only when made.
All enforce their own time limit (constructor kwarg ``max_episode_steps``,
default 200) rather than relying on gymnasium's TimeLimit wrapper, so the
limit also holds when the class is used directly; pass
``gym.make(id, max_episode_steps=...)`` only to shorten it.
"""

from __future__ import annotations

import gymnasium as gym

from vla_sim.envs.tabletop import PrivilegedState, TabletopPushEnv

TABLETOP_PUSH_ID = "vla_sim/TabletopPush-v0"
TABLETOP_PUSH_HARD_ID = "vla_sim/TabletopPushHard-v0"
_ENTRY_POINT = "vla_sim.envs.tabletop:TabletopPushEnv"
ARM_PICK_PLACE_ID = "vla_sim/ArmPickPlace-v0"
ARM_PICK_PLACE_HARD_ID = "vla_sim/ArmPickPlaceHard-v0"
_ARM_ENTRY_POINT = "vla_sim.envs.arm:ArmPickPlaceEnv"


def register_envs() -> None:
    """Register the ids above with gymnasium (idempotent)."""
    for env_id, kwargs in (
        (TABLETOP_PUSH_ID, {}),
        (TABLETOP_PUSH_HARD_ID, {"num_blocks": 4, "num_zones": 3}),
    ):
        if env_id not in gym.registry:
            gym.register(id=env_id, entry_point=_ENTRY_POINT, kwargs=kwargs)
    for env_id, kwargs in (
        (ARM_PICK_PLACE_ID, {}),
        (ARM_PICK_PLACE_HARD_ID, {"num_cubes": 4, "num_bins": 3}),
    ):
        if env_id not in gym.registry:
            gym.register(id=env_id, entry_point=_ARM_ENTRY_POINT, kwargs=kwargs)


register_envs()

__all__ = [
    "TabletopPushEnv",
    "PrivilegedState",
    "TABLETOP_PUSH_ID",
    "TABLETOP_PUSH_HARD_ID",
    "ARM_PICK_PLACE_ID",
    "ARM_PICK_PLACE_HARD_ID",
    "register_envs",
]
