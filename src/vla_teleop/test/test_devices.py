import gymnasium as gym
import numpy as np
import pytest

from vla_sim.envs import TABLETOP_PUSH_ID, TabletopPushEnv
from vla_sim.expert import ScriptedExpert
from vla_teleop.devices import DEVICES, CorrectorDevice, ExpertDevice, JoyDevice, KeyboardDevice, make_device


def test_registry_has_every_device_the_parameter_offers_and_rejects_unknown():
    from vla_teleop.teleop_params import DEVICE_NAMES
    assert set(DEVICES) == {"expert", "keyboard", "joy", "corrector", "arm_keyboard", "arm_joy", "leader_arm"}
    assert set(DEVICE_NAMES) == set(DEVICES)
    with pytest.raises(ValueError, match="accepted: arm_joy, arm_keyboard, corrector, expert, joy, keyboard, "
                                         "leader_arm"):
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


# ---- corrector: the rule on a synthetic state whose first element is the distance -----------------------------
def _corrector(**kwargs):
    takeovers = []
    dev = CorrectorDevice(policy=lambda s: np.array([1.0, s[0]]), distance=lambda s: float(s[0]),
                          on_takeover=lambda: takeovers.append(1), **kwargs)
    return dev, takeovers


def _engaged(dev, distances, *, episode=0, t0=0.0, dt=0.5):
    """Observe one distance per tick (``dt`` s apart from ``t0``); the ticks at which the corrector commands."""
    ticks = []
    for k, d in enumerate(distances):
        dev.observe(np.array([d]), episode, t0 + k * dt)
        if dev.command(t0 + k * dt) is not None:
            ticks.append(k)
    return ticks


@pytest.mark.parametrize("distances,first", [
    ([1.0] * 6, 4),                                       # still: patience 2 s = 4 ticks
    ([1.0 - 0.002 * k for k in range(6)], 4),             # creeping 0.008 m in 2 s is less than min_progress
    ([1.0, 1.0, 1.0, 0.99] + [0.99] * 5, 7),              # progress at tick 3 restarts the timer
    ([1.0, 1.1, 1.2, 1.0, 1.0, 1.0], 4),                  # losing ground and regaining it is no progress
])
def test_corrector_takes_over_after_patience_without_progress(distances, first):
    dev, takeovers = _corrector(patience=2.0, takeover=10.0, min_progress=0.01)
    ticks = _engaged(dev, distances)
    assert ticks == list(range(first, len(distances)))
    assert len(takeovers) == dev.takeovers == dev.episode_takeovers == 1
    np.testing.assert_allclose(dev.command(0.5 * (len(distances) - 1)), [1.0, distances[-1]])


def test_corrector_hands_back_and_restarts_patience_then_new_episode_resets():
    dev, takeovers = _corrector(patience=2.0, takeover=1.0)
    # 4 ticks of patience, 2 of takeover; the timer restarts at each hand-back (ticks 6 and 12)
    assert _engaged(dev, [1.0] * 13) == [4, 5, 10, 11]
    assert dev.takeovers == dev.episode_takeovers == len(takeovers) == 2
    assert _engaged(dev, [1.0] * 4, t0=6.5) == [3]        # a third takeover from t = 8 s ...
    assert _engaged(dev, [1.0] * 5, episode=1, t0=8.5) == [4]  # ... ends at once in a new episode
    assert (dev.takeovers, dev.episode_takeovers) == (4, 1)


def test_corrector_takeover_ends_on_the_clock_between_states():
    dev, _ = _corrector(patience=2.0, takeover=1.0, state_timeout=5.0)
    _engaged(dev, [1.0] * 5)                              # engaged from t = 2 s until t = 3 s
    assert dev.command(2.9) is not None
    assert dev.command(3.0) is None                       # no new state needed to hand back


def test_corrector_max_takeovers_per_episode():
    dev, _ = _corrector(patience=2.0, takeover=1.0, max_takeovers=1)
    assert _engaged(dev, [1.0] * 20) == [4, 5]
    assert _engaged(dev, [1.0] * 6, episode=1, t0=20.0) == [4, 5]
    assert (dev.takeovers, dev.episode_takeovers) == (2, 1)


def test_corrector_stops_on_stale_state_and_reset_hands_back():
    dev, _ = _corrector(patience=2.0, takeover=10.0, state_timeout=0.5)
    assert dev.command(0.0) is None                       # nothing observed yet
    _engaged(dev, [1.0] * 5)                              # engaged from t = 2 s
    assert dev.command(2.4) is not None
    assert dev.command(2.6) is None                       # state from t = 2 s is stale
    dev.reset()
    dev.observe(np.array([1.0]), 0, 2.6)
    assert dev.command(2.6) is None and not dev.engaged


def test_corrector_rejects_bad_settings_in_one_message():
    with pytest.raises(ValueError, match=r"patience=0.*takeover=-1.*min_progress=0.*max_takeovers=-1"):
        CorrectorDevice(policy=np.asarray, patience=0, takeover=-1, min_progress=0, max_takeovers=-1)


# ---- corrector on the real tabletop: a bad policy drives unless the corrector commands --------------------------
def _zero_policy(privileged):
    return np.zeros(2)


def _away_policy(privileged):
    """Drive the pusher straight away from the target block at full speed."""
    s = TabletopPushEnv.decode_privileged(privileged)
    away = s.pusher_pos - s.target_block_pos
    return s.max_speed * away / max(float(np.linalg.norm(away)), 1e-9)


def _episode(seed, policy, corrector=None, steps=200):
    """One TabletopPush-v0 episode at ``now = step * dt``: ``policy`` drives unless ``corrector`` commands.

    Returns (success, privileged states, corrector commands or None, one per step).
    """
    env = gym.make(TABLETOP_PUSH_ID, image_size=(32, 32), max_episode_steps=steps)
    env.reset(seed=seed)
    sim = env.unwrapped
    states, commands, success = [], [], False
    for step in range(steps):
        state, now = sim.privileged_state(), step * sim.dt
        command = None
        if corrector is not None:
            corrector.observe(state, episode=0, now=now)
            command = corrector.command(now)
        states.append(state)
        commands.append(command)
        _, _, success, truncated, _ = env.step(policy(state) if command is None else command)
        if success or truncated:
            break
    env.close()
    return success, states, commands


def _runs(flags):
    """(start, length) of each run of True in ``flags``."""
    runs, start = [], None
    for k, flag in enumerate(list(flags) + [False]):
        if flag and start is None:
            start = k
        elif not flag and start is not None:
            runs.append((start, k - start))
            start = None
    return runs


@pytest.mark.parametrize("policy,seed", [(_zero_policy, 1), (_zero_policy, 5), (_away_policy, 2),
                                         (_away_policy, 3)])
def test_corrector_rescues_a_bad_policy_with_the_experts_commands(policy, seed):
    assert not _episode(seed, policy)[0]
    dev = CorrectorDevice(policy=(expert := ScriptedExpert()).act, on_takeover=expert.reset, patience=2.0,
                          takeover=2.0)  # short patience: several takeovers fit in one 20 s episode
    success, states, commands = _episode(seed, policy, dev)
    assert success
    runs = _runs(c is not None for c in commands)
    assert len(runs) == dev.takeovers == dev.episode_takeovers >= 2
    patience = takeover = 20  # steps of 0.1 s
    last_end = 0
    for i, (start, length) in enumerate(runs):
        assert start - last_end >= patience  # policy in control for at least `patience` after start / hand-back
        assert length == takeover or (i == len(runs) - 1 and start + length == len(commands))  # hands back
        last_end = start + length
    if policy is _zero_policy:  # the block never moves under the policy: takeovers exactly on the clock
        assert [start for start, _ in runs] == [patience + k * (patience + takeover) for k in range(len(runs))]
    reference = ScriptedExpert()  # reset at every takeover and fed only the takeover ticks, like the corrector's
    for start, length in runs:
        reference.reset()
        for k in range(start, start + length):
            np.testing.assert_allclose(commands[k], reference.act(states[k]))


@pytest.mark.parametrize("seed", range(10))
def test_corrector_never_takes_over_a_policy_making_progress(seed):
    # The expert's first approach moves no block for up to 3.3 s (seeds 0-199), so patience must exceed it.
    dev = CorrectorDevice(policy=(expert := ScriptedExpert()).act, on_takeover=expert.reset, patience=4.0)
    success, _, commands = _episode(seed, ScriptedExpert().act, dev)
    assert success
    assert dev.takeovers == 0 and all(c is None for c in commands)


def test_corrector_modes_drive_always_or_never():
    from vla_teleop.devices import CorrectorDevice
    calls = []
    device = CorrectorDevice(policy=lambda s: np.array([0.1, -0.1]), on_takeover=lambda: calls.append(1),
                             distance=lambda s: 0.3, mode="always")
    device.observe(np.zeros(3), episode=0, now=0.0)
    np.testing.assert_allclose(device.command(0.0), [0.1, -0.1])  # from the first step: a demonstration
    assert calls == [1]  # the expert starts fresh for the episode
    device.mode = "off"
    for step in range(1, 60):  # no progress for 5.9 s: watching only, never a takeover command
        device.observe(np.zeros(3), episode=0, now=step * 0.1)
        assert device.command(step * 0.1) is None
    device.mode = "on_error"
    device.observe(np.zeros(3), episode=1, now=10.0)
    assert device.command(10.0) is None  # a new episode: the policy is in control until it stalls


def _engaged_with_help(dev, asked, *, distance=lambda k: 1.0 - 0.1 * k, dt=0.5):
    """One tick per entry of ``asked`` (whether the policy asks for help then); the distance falls by 0.1 m a
    tick (steady progress) unless ``distance`` says otherwise. Returns the ticks the corrector commands at."""
    ticks = []
    for k, help_now in enumerate(asked):
        dev.help_requested = help_now
        dev.observe(np.array([distance(k)]), 0, k * dt)
        if dev.command(k * dt) is not None:
            ticks.append(k)
    return ticks


def test_on_help_takes_over_while_the_policy_asks_even_when_it_progresses():
    dev, takeovers = _corrector(patience=2.0, takeover=1.0, mode="on_help")
    asked = [False, False, True, False, False, False, True, True, True, True, False, False]
    # tick 2 asks: engaged for 1 s (ticks 2-3); ticks 6-9 ask: taken over at 6, handed back at 8 and taken over
    # again at once, since the request still stands; handed back at 10, where it no longer does
    assert _engaged_with_help(dev, asked) == [2, 3, 6, 7, 8, 9]
    assert dev.takeovers == dev.help_takeovers == len(takeovers) == 3


def test_on_help_never_takes_over_for_a_stall_and_on_error_ignores_help():
    stalled = lambda k: 1.0  # noqa: E731 - no progress at all
    dev, _ = _corrector(patience=2.0, takeover=1.0, mode="on_help")
    assert _engaged_with_help(dev, [False] * 12, distance=stalled) == []
    dev, _ = _corrector(patience=2.0, takeover=1.0, mode="on_error")
    assert _engaged_with_help(dev, [True] * 3) == []  # progressing: the heuristic sees nothing wrong
    assert dev.help_takeovers == 0


def test_on_error_or_help_takes_over_for_either_and_counts_which():
    dev, _ = _corrector(patience=2.0, takeover=1.0, mode="on_error_or_help", max_takeovers=0)
    asked = [False, True, False, False] + [False] * 8
    # help at tick 1 (ticks 1-2); then no progress from tick 4 on (distance held): a stall after 2 s, at tick 7
    ticks = _engaged_with_help(dev, asked, distance=lambda k: 1.0 - 0.1 * min(k, 3))
    assert ticks[:2] == [1, 2] and 7 in ticks
    assert dev.help_takeovers == 1 and dev.takeovers >= 2


# ---- validation of the privileged state ------------------------------------------------------------------
from vla_teleop.devices import check_tabletop_state, finite_state  # noqa: E402


def _tabletop_state(seed: int = 0) -> np.ndarray:
    env = TabletopPushEnv()
    env.reset(seed=seed)
    state = env.privileged_state()
    env.close()
    return state


def _broken(state: np.ndarray, index: int, value: float) -> np.ndarray:
    out = state.copy()
    out[index] = value
    return out


@pytest.mark.parametrize("make_bad, words", [
    (lambda s: s[:1], "1 values|version"),                    # what crashed the teleop node: one value
    (lambda s: np.array([]), "0 values"),
    (lambda s: s[:-1], "expected"),                            # one value short for its block/zone counts
    (lambda s: _broken(s, 0, 2.0), "version"),
    (lambda s: _broken(s, 1, np.inf), "non-finite"),
    (lambda s: _broken(s, 1, 2.5), "whole numbers"),
    (lambda s: _broken(s, 2, -1.0), "whole numbers"),
    (lambda s: _broken(s, 3, 40.0), "target block 40"),
    (lambda s: _broken(s, 4, -1.0), "target zone -1"),
    (lambda s: _broken(s, 10, 0.0), "dt 0 is not positive"),
    (lambda s: _broken(s, 12, np.nan), "non-finite"),
    (lambda s: np.zeros(5000), "5000 values"),
])
def test_tabletop_check_refuses_states_the_expert_cannot_act_on(make_bad, words):
    with pytest.raises(ValueError, match=words):
        check_tabletop_state(make_bad(_tabletop_state()))


def test_expert_device_drops_a_bad_state_and_keeps_the_last_good_one():
    expert = ScriptedExpert()
    dev = ExpertDevice(policy=expert.act, on_episode=expert.reset, check=check_tabletop_state)
    good = _tabletop_state(3)
    dev.observe(good, episode=0, now=0.0)
    with pytest.raises(ValueError):
        dev.observe(np.array([1.0]), episode=0, now=0.1)
    command = dev.command(0.2)  # computed from the last good state: without the check this raised here
    np.testing.assert_allclose(command, ScriptedExpert().act(good))
    assert dev.command(0.6) is None  # no good state since 0.0: stale, the device stops commanding


def test_corrector_refuses_a_bad_state_before_reading_it():
    dev = CorrectorDevice(policy=ScriptedExpert().act, check=check_tabletop_state)
    with pytest.raises(ValueError, match="target block"):
        dev.observe(_broken(_tabletop_state(), 3, 9.0), episode=0, now=0.0)
    assert dev.command(0.0) is None


def test_every_state_the_check_passes_gives_a_finite_command():
    """Random corruptions of real states: the check refuses them, or the expert acts finitely on them."""
    rng = np.random.default_rng(0)
    passed = 0
    for trial in range(400):
        state = _tabletop_state(trial % 7)
        for _ in range(rng.integers(1, 4)):
            i = int(rng.integers(0, state.size))
            state[i] = rng.choice([0.0, -1.0, 1e-12, 1e12, float(rng.normal()), float(rng.integers(0, 4))])
        try:
            checked = check_tabletop_state(state)
        except ValueError:
            continue
        passed += 1
        assert np.all(np.isfinite(ScriptedExpert().act(checked))), state
    assert passed > 50  # the fuzz reached the expert, not only the check


def test_finite_state_is_the_generic_check():
    np.testing.assert_allclose(finite_state([1, 2]), [1.0, 2.0])
    with pytest.raises(ValueError, match="not a vector of numbers"):
        finite_state(["a"])
