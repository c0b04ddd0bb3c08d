from pathlib import Path

import pytest

from vla_core.contract import RobotContract
from vla_core.errors import ConfigError

WS = Path(__file__).resolve().parents[3]

GOOD = {
    "robot": "r",
    "fps": 10,
    "cameras": {"top": {"topic": "camera/top/image_raw", "height": 96, "width": 96}},
    "state": {"topic": "joint_states", "joints": ["a", "b"]},
    "action": {"topic": "cmd_vel", "type": "geometry_msgs/msg/Twist", "fields": ["linear.x", "linear.y"],
               "low": [-1, -1], "high": [1, 1]},
}


def test_features_follow_lerobot_names():
    c = RobotContract.from_dict(GOOD)
    feats = c.features()
    assert feats["observation.images.top"]["shape"] == [96, 96, 3]
    assert feats["observation.state"]["names"] == ["a.position", "a.velocity", "b.position", "b.velocity"]
    assert feats["action"]["shape"] == [2]
    assert c.cameras[0].info_topic == "camera/top/camera_info"


def test_every_problem_is_reported_at_once():
    bad = dict(GOOD, fps=0, colour="red")
    bad["action"] = dict(GOOD["action"], fields=["linear.q", "linear.y"])
    bad["cameras"] = {"top": {"topic": "t", "height": 2, "width": 96, "encoding": "yuv"}}
    with pytest.raises(ConfigError) as err:
        RobotContract.from_dict(bad, source="robots/bad.yaml")
    text = str(err.value)
    for fragment in ("unknown key 'colour'", "contract.fps = 0", "linear.q", "encoding = 'yuv'", "height = 2"):
        assert fragment in text
    assert text.startswith("robots/bad.yaml")


def test_action_bounds_must_match_fields():
    bad = dict(GOOD, action=dict(GOOD["action"], low=[-1]))
    with pytest.raises(ConfigError, match="one entry per action dimension"):
        RobotContract.from_dict(bad)


@pytest.mark.parametrize("path", sorted((WS / "params" / "robots").glob("*.yaml")), ids=lambda p: p.name)
def test_shipped_contracts_load(path):
    contract = RobotContract.from_yaml(path)
    assert contract.action.dim >= 1 and contract.fps > 0


JOINT_ACTION = {"topic": "cmd", "type": "std_msgs/msg/Float64MultiArray", "fields": ["data[0]", "data[1]"],
                "names": ["a", "b"], "low": [-1, -1], "high": [1, 1]}


def test_action_mode_defaults_to_absolute_and_takes_delta_for_joint_commands():
    assert RobotContract.from_dict(dict(GOOD, action=JOINT_ACTION)).action.mode == "absolute"
    assert RobotContract.from_dict(GOOD).action.mode == "absolute"  # contracts without the key load as before
    delta = RobotContract.from_dict(dict(GOOD, action=dict(JOINT_ACTION, mode="delta")))
    assert delta.action.mode == "delta"


@pytest.mark.parametrize("action,fragment", [
    (dict(JOINT_ACTION, mode="relative"), "action.mode = 'relative': expected absolute (joint targets) or delta"),
    (dict(JOINT_ACTION, mode=None), "action.mode = None: expected absolute"),
    (dict(GOOD["action"], mode="delta"), "action.mode = 'delta' applies to joint commands"),
])
def test_a_bad_action_mode_is_refused_naming_the_value_and_the_choices(action, fragment):
    with pytest.raises(ConfigError) as err:
        RobotContract.from_dict(dict(GOOD, action=action), source="robots/r.yaml")
    assert fragment in str(err.value)
