import numpy as np
import pytest

from vla_policy.inputs import InputCache, state_vector


def test_stale_missing_and_refused_inputs_are_named():
    cache = InputCache()
    cache.put("observation.state", np.zeros(4), stamp=10.0)
    cache.put("observation.images.top", np.zeros((96, 96, 3), np.uint8), stamp=9.0)
    cache.refuse("observation.language", "encoder x is not y")
    feats = ["observation.state", "observation.images.top", "observation.language"]
    assert cache.stale(feats, now=10.2, max_age=0.5) == ["observation.images.top", "observation.language"]
    assert cache.refused["observation.language"] == "encoder x is not y"


def test_feeds_use_the_trainers_image_conversion():
    cache = InputCache()
    img = np.full((96, 96, 3), 255, np.uint8)
    cache.put("observation.images.top", img, 0.0)
    cache.put("observation.state", np.arange(4), 0.0)
    feeds = cache.feeds({"observation.images.top": "image", "observation.state": "state"})
    assert feeds["image"].shape == (1, 3, 96, 96) and feeds["image"].dtype == np.float32
    assert float(feeds["image"].max()) == 1.0
    assert feeds["state"].shape == (1, 4) and feeds["state"].dtype == np.float32


def test_state_vector_follows_the_contract_order():
    vec = state_vector(["b", "a"], [2.0, 1.0], [20.0, 10.0], [], ("a", "b"), ("position", "velocity"))
    assert vec.tolist() == [1.0, 10.0, 2.0, 20.0]


@pytest.mark.parametrize("kwargs,fragment", [
    (dict(names=["a"], positions=[1.0], velocities=[1.0]), "joint 'b' is missing"),
    (dict(names=["a", "b"], positions=[1.0, 2.0], velocities=[1.0]), "no velocity for 'b'"),
    (dict(names=["a", "b"], positions=[1.0, np.nan], velocities=[1.0, 1.0]), "non-finite"),
])
def test_state_vector_errors(kwargs, fragment):
    with pytest.raises(ValueError, match=fragment):
        state_vector(efforts=[], joints=("a", "b"), fields=("position", "velocity"), **kwargs)
