import numpy as np
import pytest

from vla_policy.inputs import (LANGUAGE, STATE, InputCache, InputError, InputSpec, embedding_input, image_input,
                               state_vector)

TOP = "observation.images.top"
SPECS = {TOP: InputSpec(TOP, (96, 96, 3), "video"), STATE: InputSpec(STATE, (4,), "float32"),
         LANGUAGE: InputSpec(LANGUAGE, (384,), "float32")}


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
    (dict(names=["a", "b"], positions=[1.0, 1e39], velocities=[1.0, 1.0]), "non-finite"),  # inf as float32
])
def test_state_vector_errors(kwargs, fragment):
    with pytest.raises(InputError, match=fragment):
        state_vector(efforts=[], joints=("a", "b"), fields=("position", "velocity"), **kwargs)


@pytest.mark.parametrize("feature,value,reason,fragment", [
    (LANGUAGE, np.zeros(0, np.float32), "empty", "empty, the policy needs [384] values"),
    (LANGUAGE, np.zeros(383, np.float32), "shape", "383 values, the policy expects shape [384]"),
    (LANGUAGE, np.full(384, np.nan, np.float32), "non_finite", "non-finite values at [0, 1, 2"),
    (STATE, np.array([1.0, 2.0, 3.0, 1e39]), "non_finite", "as float32"),
    (STATE, np.array(["a", "b", "c", "d"]), "dtype", "the policy takes float32 numbers"),
    (STATE, np.zeros((2, 2), np.float32), "shape", "shape [2, 2], the policy expects shape [4]"),
    (TOP, np.zeros((1, 1, 3), np.uint8), "shape", "a 1x1x3 image, the policy expects 96x96x3"),
    (TOP, np.zeros((96, 96, 3), np.float32), "dtype", "a float32 image, the policy takes uint8 RGB"),
])
def test_inputs_are_checked_against_the_artifacts_declaration(feature, value, reason, fragment):
    with pytest.raises(InputError) as err:
        SPECS[feature].check(value)
    assert err.value.reason == reason and fragment in str(err.value)
    assert "publish" in str(err.value), "the message says how to fix it"


def test_a_bad_input_drops_the_feature_so_nothing_older_is_used():
    cache = InputCache()
    cache.expect(SPECS)
    cache.offer(LANGUAGE, np.ones(384, np.float32), None)
    cache.offer(STATE, np.zeros(4), 10.0)
    assert cache.stale([LANGUAGE, STATE], now=10.1, max_age=0.5) == []
    with pytest.raises(InputError):
        cache.offer(LANGUAGE, np.zeros(0, np.float32), None)
    with pytest.raises(InputError):
        cache.offer(STATE, np.zeros(3), 10.2)
    assert cache.stale([LANGUAGE, STATE], now=10.2, max_age=0.5) == [LANGUAGE, STATE]
    assert "empty" in cache.refused[LANGUAGE] and "3 values" in cache.refused[STATE]
    cache.offer(STATE, np.zeros(4), 10.3)
    assert cache.stale([STATE], now=10.3, max_age=0.5) == [] and STATE not in cache.refused


def test_a_new_policy_rechecks_kept_inputs():
    cache = InputCache()
    cache.offer(LANGUAGE, np.ones(383, np.float32), None)  # no policy yet: kept as it is
    cache.offer(TOP, np.zeros((96, 96, 3), np.uint8), 1.0)
    dropped = cache.expect(SPECS)
    assert [e.reason for e in dropped] == ["shape"] and LANGUAGE not in cache.samples and TOP in cache.samples


def test_future_stamps_are_stale_and_the_instruction_holds():
    cache = InputCache()
    cache.put(STATE, np.zeros(4), stamp=100.0)
    cache.put(LANGUAGE, np.zeros(384), stamp=None)
    assert cache.stale([STATE, LANGUAGE], now=10.0, max_age=0.5) == [STATE]
    assert cache.stale([STATE, LANGUAGE], now=99.8, max_age=0.5) == []


def test_drop_keeps_only_what_is_asked():
    cache = InputCache()
    cache.put(STATE, np.zeros(4), 1.0)
    cache.put(LANGUAGE, np.zeros(384), None)
    cache.drop(keep=(LANGUAGE,))
    assert list(cache.samples) == [LANGUAGE]


def test_embedding_input_refuses_other_encoders_and_the_rejected_instruction():
    with pytest.raises(InputError, match="trained with 'minilm'") as err:
        embedding_input([0.0] * 384, "other", "minilm")
    assert err.value.reason == "encoder"
    with pytest.raises(InputError, match="rejected instruction ''") as err:
        embedding_input([], "minilm", "minilm", text="")
    assert err.value.reason == "empty"
    assert embedding_input([0.5] * 384, "minilm", None).dtype == np.float32


@pytest.mark.parametrize("data,h,w,encoding,step", [
    (b"\x00" * 3, 1, 1, "yuv422_weird", 3),
    (b"\x00" * 2, 1, 1, "rgb8", 3),
    (b"", 96, 96, "rgb8", 288),
])
def test_image_input_refuses_bad_encodings_and_sizes(data, h, w, encoding, step):
    with pytest.raises(InputError) as err:
        image_input(data, h, w, encoding, step)
    assert err.value.reason == "encoding"
