import numpy as np
import pytest

from vla_policy.chunking import ChunkExecutor


def chunk(value, k=4, dim=2):
    return np.full((k, dim), float(value))


def test_temporal_ensemble_weights_older_predictions_more():
    ex = ChunkExecutor(4, 2, "temporal_ensemble", ensemble_coeff=0.5)
    ex.push(0, chunk(0.0))
    np.testing.assert_allclose(ex.action(0), [0, 0])
    ex.push(1, chunk(1.0))
    w = np.exp(-0.5 * np.arange(2))
    expected = (w[0] * 0.0 + w[1] * 1.0) / w.sum()
    np.testing.assert_allclose(ex.action(1), [expected, expected])
    assert ex.needs_inference(2) and ex.at_boundary()


def test_temporal_ensemble_drops_chunks_that_no_longer_cover_the_tick():
    ex = ChunkExecutor(2, 1, "temporal_ensemble", ensemble_coeff=0.0)
    ex.push(0, chunk(5.0, k=2, dim=1))
    ex.push(1, chunk(1.0, k=2, dim=1))
    ex.push(2, chunk(3.0, k=2, dim=1))
    np.testing.assert_allclose(ex.action(2), [2.0])  # chunk from tick 0 covers 0..1 only
    assert ex.action(9) is None


def test_receding_horizon_executes_steps_then_asks_again():
    ex = ChunkExecutor(4, 1, "receding_horizon", receding_steps=2)
    assert ex.needs_inference(0) and ex.at_boundary()
    ex.push(0, np.arange(4.0).reshape(4, 1))
    assert ex.action(0).tolist() == [0.0] and not ex.at_boundary() and not ex.needs_inference(1)
    assert ex.action(1).tolist() == [1.0]
    assert ex.at_boundary() and ex.needs_inference(2)
    ex.push(2, np.arange(10.0, 14.0).reshape(4, 1))
    assert ex.action(2).tolist() == [10.0] and ex.position == 1


def test_reset_forgets_predictions():
    ex = ChunkExecutor(4, 2, "temporal_ensemble")
    ex.push(0, chunk(1.0))
    ex.reset()
    assert ex.action(0) is None


@pytest.mark.parametrize("kwargs", [dict(execution="random"), dict(execution="receding_horizon", receding_steps=9)])
def test_bad_configuration(kwargs):
    with pytest.raises(ValueError):
        ChunkExecutor(4, 2, **kwargs)


def test_plan_is_the_rest_of_the_newest_chunk_under_a_receding_horizon():
    ex = ChunkExecutor(4, 1, "receding_horizon", receding_steps=2)
    assert ex.plan(0) is None
    ex.push(0, np.arange(4.0).reshape(4, 1))
    assert ex.action(0).tolist() == [0.0]
    assert ex.plan(0)[:, 0].tolist() == [0.0, 1.0, 2.0, 3.0]  # the whole chunk, not only the steps executed
    assert ex.plan(1)[:, 0].tolist() == [1.0, 2.0, 3.0] and ex.position == 1  # plan does not advance
    assert ex.plan(4) is None


def test_plan_under_temporal_ensembling_averages_every_prediction_per_tick():
    ex = ChunkExecutor(3, 1, "temporal_ensemble", ensemble_coeff=0.0)
    ex.push(0, np.array([[0.0], [1.0], [2.0]]))
    ex.push(1, np.array([[3.0], [5.0], [7.0]]))
    plan = ex.plan(1)
    np.testing.assert_allclose(plan[:, 0], [2.0, 3.5, 7.0])  # ticks 1, 2 (two predictions each), 3 (one)
    np.testing.assert_allclose(plan[0], ex.action(1))
