"""The exploring actor's noise: bounded by the contract's limits, the size asked for, refused above its maximum."""
import numpy as np
import pytest

from vla_policy.exploration import check_exploration, explore

LOW, HIGH = np.array([-0.25, -1.0]), np.array([0.25, 1.0])


def test_noise_has_the_asked_spread_per_dimension_and_zero_is_no_noise():
    rng = np.random.default_rng(0)
    action = np.zeros(2)
    out = np.array([explore(action, 0.1, LOW, HIGH, rng)[0] for _ in range(4000)])
    # 10% of each half range: 0.025 and 0.1 (a noise scaled by the full range or not at all fails)
    assert out.std(0) == pytest.approx([0.025, 0.1], rel=0.08)
    assert np.abs(out.mean(0)).max() < 0.01
    same, clamped = explore(np.array([0.1, -0.2]), 0.0, LOW, HIGH, rng)
    assert same.tolist() == [0.1, -0.2] and clamped == 0


def test_noisy_actions_stay_within_the_contract_and_clamps_are_counted():
    rng = np.random.default_rng(1)
    total = 0
    for _ in range(2000):
        out, clamped = explore(HIGH * 0.99, 1.0, LOW, HIGH, rng)
        assert np.all(out >= LOW) and np.all(out <= HIGH)
        total += clamped
    assert 1000 < total < 3000  # about half of the 2 x 2000 draws from the edge go past it


@pytest.mark.parametrize("std, fragment", [(0.5, "above max_exploration_std 0.3"), (-0.1, ">= 0"),
                                           (float("nan"), "finite")])
def test_exploration_above_its_maximum_or_not_a_level_is_refused(std, fragment):
    with pytest.raises(ValueError, match=fragment):
        check_exploration(std, 0.3)
    check_exploration(0.3, 0.3)
