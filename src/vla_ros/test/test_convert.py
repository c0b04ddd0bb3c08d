import pytest

from vla_ros.convert import seconds_to_time, time_to_seconds


@pytest.mark.parametrize("t", [0.0, 0.1, 12.9999999999, 13.0, 1795290453.602512339])
def test_stamps_round_trip(t):
    stamp = seconds_to_time(t)
    assert 0 <= stamp.nanosec < 1_000_000_000
    assert time_to_seconds(stamp) == pytest.approx(t, abs=1e-6)


def test_just_below_a_second_rounds_up_not_a_second_back():
    assert (seconds_to_time(12.9999999999).sec, seconds_to_time(12.9999999999).nanosec) == (13, 0)
