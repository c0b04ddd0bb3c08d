"""Fixtures: real policy artifacts (vla_policy.fixtures) in a temporary registry."""
import pytest

from vla_policy.fixtures import make_artifact


@pytest.fixture
def models(tmp_path):
    return tmp_path / "models"


@pytest.fixture(name="make_artifact")
def make_artifact_fixture():
    return make_artifact
