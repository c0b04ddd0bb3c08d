import math

import pytest

from vla_core.params import ParamSpec, defaults, validate

SPECS = (
    ParamSpec("fps", 10.0, "control rate", range=(1.0, 100.0), unit="Hz"),
    ParamSpec("episodes", 5, "episodes to run", range=(0, 1000)),
    ParamSpec("device", "expert", "teleop device", choices=("expert", "keyboard", "joy"), read_only=True),
    ParamSpec("publish_clock", False, "publish /clock"),
    ParamSpec("size", [96, 96], "image size", range=(8, 4096)),
)


def test_defaults_round_trip():
    assert validate(SPECS, defaults(SPECS), "here") == []


@pytest.mark.parametrize(
    "key,value,fragment",
    [
        ("fps", 0.0, "out of range"),
        ("fps", math.nan, "not finite"),
        ("fps", "fast", "expected a number"),
        ("episodes", 2.5, "expected an integer"),
        ("episodes", True, "expected an integer"),
        ("device", "mouse", "one of 'expert', 'keyboard', 'joy'"),
        ("publish_clock", 1, "true or false"),
        ("size", [96, 2], "out of range"),
        ("size", 96, "list"),
    ],
)
def test_bad_values_name_file_key_and_accepted(key, value, fragment):
    problems = validate(SPECS, {key: value}, "params/x.yaml: node")
    assert len(problems) == 1
    assert problems[0].startswith(f"params/x.yaml: node: parameter '{key}'")
    assert fragment in problems[0]


def test_unknown_key_suggests_close_match():
    (problem,) = validate(SPECS, {"fsp": 10.0}, "f")
    assert "unknown parameter 'fsp'" in problem and "did you mean 'fps'" in problem


def test_ros_builtins_are_accepted():
    assert validate(SPECS, {"use_sim_time": True}, "f") == []


def test_int_accepted_for_float():
    assert SPECS[0].coerce(10) == 10.0 and isinstance(SPECS[0].coerce(10), float)


def test_invalid_default_is_a_programming_error():
    with pytest.raises(ValueError):
        ParamSpec("x", 500.0, "bad", range=(0.0, 1.0))
