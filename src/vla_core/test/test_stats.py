import pytest

from vla_core.stats import wilson_interval


@pytest.mark.parametrize("successes, n, low, high", [(13, 20, 0.4329, 0.8188), (0, 10, 0.0, 0.2775),
                                                      (10, 10, 0.7225, 1.0), (45, 50, 0.7864, 0.9565)])
def test_wilson_interval_matches_the_closed_form(successes, n, low, high):
    assert wilson_interval(successes, n) == pytest.approx((low, high), abs=1e-4)
    assert wilson_interval(0, 0) == (0.0, 1.0)
