"""Builders for the shield's unit tests (fixtures: no sys.path tricks under --import-mode=importlib)."""
import numpy as np
import pytest
from vla_core.params import defaults

from vla_safety.config import config_from_params
from vla_safety.hard_limits import HardLimits
from vla_safety.limits import TWIST_FIELDS
from vla_safety.shield import Shield
from vla_safety.shield_params import SHIELD_PARAMS

# A planar base at 10 Hz: 0.25 m/s, 1 m/s^2 up, 2 m/s^2 down; rotation about z up to 0.5 rad/s.
PLANAR = dict(rate=10.0, max_velocity=[0.25, 0.25, 0.0, 0.0, 0.0, 0.5], max_accel=[1.0, 1.0, 1.0, 1.0, 1.0, 2.0],
              max_decel=[2.0, 2.0, 1.0, 1.0, 1.0, 2.0])
INF = np.full(6, np.inf)
# The robot's hard limits (as a contract would declare them): 0.5 m/s and 4 m/s^2 on every Twist field.
TWIST_HARD = HardLimits("twist", TWIST_FIELDS, np.full(6, 0.5), np.full(6, 4.0), -INF, INF, "test contract")


def joint_hard(lower, upper, velocity, accel, kind="joint_position") -> HardLimits:
    names = tuple(f"j{i}" for i in range(len(lower)))
    return HardLimits(kind, names, np.array(velocity, float), np.array(accel, float), np.array(lower, float),
                      np.array(upper, float), "test contract")


# A 7-joint arm: +/-2.5 rad, 2 rad/s, 15 rad/s^2.
ARM_HARD = joint_hard([-2.5] * 7, [2.5] * 7, [2.0] * 7, [15.0] * 7)


def build_params(**overrides) -> dict:
    p = defaults(SHIELD_PARAMS)
    p.update(PLANAR)
    p.update(overrides)
    return p


def default_hard(p: dict) -> HardLimits:
    if p["command_type"] == "twist":
        return TWIST_HARD
    return HardLimits(p["command_type"], ARM_HARD.names, ARM_HARD.velocity, ARM_HARD.accel, ARM_HARD.lower,
                      ARM_HARD.upper, ARM_HARD.source)


def build_config(hard=None, **overrides):
    p = build_params(**overrides)
    return config_from_params(p, hard or default_hard(p))


@pytest.fixture(scope="session")  # stateless factories (hypothesis reuses them across examples)
def params():
    return build_params


@pytest.fixture(scope="session")
def config():
    """config(hard=None, **parameter overrides): a validated ShieldConfig (default hard limits per command type)."""
    return build_config


@pytest.fixture(scope="session")
def limits():
    """limits(lower, upper, velocity, accel, kind): hard limits of a joint robot."""
    return joint_hard


@pytest.fixture(scope="session")  # stateless factories (hypothesis reuses them across examples)
def make_shield():
    return lambda hard=None, **overrides: Shield(build_config(hard, **overrides))
