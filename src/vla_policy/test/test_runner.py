"""The policy runner: the one path from observations to the action of a tick (node and evaluation)."""
from pathlib import Path

import numpy as np
import pytest

from vla_core.contract import RobotContract
from vla_core.features import LANGUAGE, STATE, image_key
from vla_core.observation import to_chw_float
from vla_policy.chunking import ChunkExecutor
from vla_policy.inputs import InputCache
from vla_policy.runner import PolicyRunner, model_feeds
from vla_policy.runtime import PolicyOutputError, load_policy

CONTRACT = RobotContract.from_yaml(Path(__file__).resolve().parents[3] / "params" / "robots" / "tabletop_sim.yaml")
TOP = image_key("top")


def observations(n: int, seed: int = 0) -> list[dict]:
    rng = np.random.default_rng(seed)
    return [{TOP: rng.integers(0, 256, (96, 96, 3), dtype=np.uint8),
             STATE: rng.standard_normal(4).astype(np.float32),
             LANGUAGE: rng.standard_normal(384).astype(np.float32)} for _ in range(n)]


@pytest.mark.parametrize("execution", ["temporal_ensemble", "receding_horizon"])
def test_the_runner_executes_chunks_as_the_manifest_says(models, make_artifact, execution):
    make_artifact(models, "a", bias=0.05, chunk=4, camera=True, seed=3, execution=execution)
    policy = load_policy("tiny/a", models, CONTRACT, "minilm", ["onnxruntime-cpu"])
    runner = PolicyRunner(policy)
    # What the node and the evaluation each wrote by hand before: feeds built inline, a ChunkExecutor per policy.
    by_hand = ChunkExecutor(4, 2, execution, 0.01, 4)
    obs = observations(11)
    for tick, o in enumerate(obs):
        got = runner.step(tick, o)
        if by_hand.needs_inference(tick):
            feeds = {"image_top": to_chw_float(o[TOP])[None], "state": o[STATE][None], "language": o[LANGUAGE][None]}
            by_hand.push(tick, policy.infer(feeds))
        np.testing.assert_array_equal(got, by_hand.action(tick))
    # The actions depend on every input (else this test could not tell two feeds apart).
    first = PolicyRunner(policy).step(0, obs[0])
    for feature in (TOP, STATE, LANGUAGE):
        assert not np.array_equal(PolicyRunner(policy).step(0, {**obs[0], feature: obs[1][feature]}), first)


def test_the_node_cache_and_a_plain_observation_give_the_same_feeds(models, make_artifact):
    make_artifact(models, "a", bias=0.05, camera=True, seed=3)
    policy = load_policy("tiny/a", models, CONTRACT, "minilm", ["onnxruntime-cpu"])
    cache = InputCache()
    cache.expect(policy.input_specs)
    o = observations(1)[0]
    for feature, value in o.items():
        cache.offer(feature, value, 0.0)
    runner = PolicyRunner(policy)
    node, plain = cache.feeds(runner.input_names), model_feeds(o, runner.input_names)
    assert node.keys() == plain.keys() == {"image_top", "state", "language"}
    for name in node:
        assert node[name].dtype == np.float32 and node[name].shape[0] == 1
        np.testing.assert_array_equal(node[name], plain[name])
    np.testing.assert_array_equal(PolicyRunner(policy).step(0, cache.observation(runner.features)),
                                  PolicyRunner(policy).step(0, o))


def test_an_unusable_output_forgets_the_chunks_in_flight(models, make_artifact):
    make_artifact(models, "a", bias=0.1, chunk=4, execution="temporal_ensemble")
    runner = PolicyRunner(load_policy("tiny/a", models, CONTRACT, "minilm", ["onnxruntime-cpu"]))
    good = {STATE: np.zeros(4, np.float32), LANGUAGE: np.zeros(384, np.float32)}
    np.testing.assert_allclose(runner.step(0, good), [0.1, 0.1], atol=1e-6)
    assert runner.chunks.action(1) is not None  # the chunk of tick 0 covers tick 1
    with pytest.raises(PolicyOutputError, match="failed on onnxruntime-cpu"):
        runner.step(1, {**good, LANGUAGE: np.zeros(383, np.float32)})
    assert runner.chunks.action(1) is None  # nothing older is sent in place of the dropped output
