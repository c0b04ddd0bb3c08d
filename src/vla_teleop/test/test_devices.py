import numpy as np
import pytest

from vla_teleop.devices import DEVICES, ExpertDevice, JoyDevice, KeyboardDevice, make_device


def test_registry_has_three_devices_and_rejects_unknown():
    assert set(DEVICES) == {"expert", "keyboard", "joy"}
    with pytest.raises(ValueError, match="choose one of expert, joy, keyboard"):
        make_device("mouse")


@pytest.mark.parametrize("key,expected", [("w", [0.1, 0]), ("s", [-0.1, 0]), ("a", [0, 0.1]), ("d", [0, -0.1]),
                                          ("\x1b[A", [0.1, 0]), ("\x1b[C", [0, -0.1]), ("W", [0.1, 0])])
def test_keyboard_keys_follow_rep103(key, expected):
    kb = KeyboardDevice(speed=0.1, hold_time=0.5)
    assert kb.press(key, now=0.0)
    np.testing.assert_allclose(kb.command(0.2), expected)


def test_keyboard_releases_after_hold_time_and_ignores_other_keys():
    kb = KeyboardDevice(speed=0.1, hold_time=0.5)
    assert kb.command(0.0) is None
    assert not kb.press("x", 0.0)
    kb.press("w", 0.0)
    assert kb.command(0.6) is None
    kb.press(" ", 1.0)
    np.testing.assert_allclose(kb.command(1.1), [0, 0])


def test_joy_needs_deadman_and_fresh_input():
    joy = JoyDevice(max_speed=0.2, axis_x=1, axis_y=0, deadman_button=4, timeout=0.5)
    assert joy.update([0.0, 1.0], [0, 0, 0, 0, 0], now=0.0) is None
    assert joy.command(0.1) is None                      # deadman released
    joy.update([-0.5, 1.0], [0, 0, 0, 0, 1], now=1.0)
    np.testing.assert_allclose(joy.command(1.1), [0.2, -0.1])
    assert joy.command(1.6) is None                      # stale


@pytest.mark.parametrize("axes,buttons,fragment", [([0.0], [0] * 5, "axes"), ([0.0, 0.0], [0], "deadman_button"),
                                                   ([np.nan, 0.0], [0] * 5, "not finite")])
def test_joy_rejects_unusable_messages(axes, buttons, fragment):
    joy = JoyDevice()
    assert fragment in joy.update(axes, buttons, now=0.0)
    assert joy.command(0.0) is None


def test_expert_resets_on_new_episode_and_stops_on_stale_state():
    episodes = []
    dev = ExpertDevice(policy=lambda s: s[:2] * 2, on_episode=lambda: episodes.append(1), state_timeout=0.5)
    assert dev.command(0.0) is None
    dev.observe(np.array([0.1, 0.2, 9.0]), episode=0, now=0.0)
    dev.observe(np.array([0.1, 0.2, 9.0]), episode=0, now=0.1)
    np.testing.assert_allclose(dev.command(0.2), [0.2, 0.4])
    dev.observe(np.array([0.0, 0.0, 9.0]), episode=1, now=0.3)
    assert len(episodes) == 2
    assert dev.command(0.9) is None
