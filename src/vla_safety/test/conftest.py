"""Builders for the shield's unit tests (fixtures: no sys.path tricks under --import-mode=importlib)."""
import pytest
from vla_core.params import defaults

from vla_safety.config import config_from_params
from vla_safety.shield import Shield
from vla_safety.shield_params import SHIELD_PARAMS

# A planar base at 10 Hz: 0.25 m/s, 1 m/s^2 up, 2 m/s^2 down; rotation about z up to 0.5 rad/s.
PLANAR = dict(rate=10.0, max_velocity=[0.25, 0.25, 0.0, 0.0, 0.0, 0.5], max_accel=[1.0, 1.0, 1.0, 1.0, 1.0, 2.0],
              max_decel=[2.0, 2.0, 1.0, 1.0, 1.0, 2.0])


def build_params(**overrides) -> dict:
    p = defaults(SHIELD_PARAMS)
    p.update(PLANAR)
    p.update(overrides)
    return p


@pytest.fixture(scope="session")  # stateless factories (hypothesis reuses them across examples)
def params():
    return build_params


@pytest.fixture(scope="session")  # stateless factories (hypothesis reuses them across examples)
def make_shield():
    return lambda **overrides: Shield(config_from_params(build_params(**overrides)))
