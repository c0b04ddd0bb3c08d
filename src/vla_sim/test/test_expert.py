"""Tests of the scripted expert: success rates, action delay, edges, and its contract.

Run: cd src/vla_sim && PYTHONPATH=. python -m pytest test -q
"""

from __future__ import annotations

import gymnasium as gym
import numpy as np
import pytest

from vla_sim.envs import TabletopPushEnv
from vla_sim.expert import ScriptedExpert

ENVS = {
    "default": ({}, 0.95),
    "hard": ({"num_blocks": 4, "num_zones": 3}, 0.90),
}
SEEDS = range(200)


class ActionDelay(gym.Wrapper):
    """Applies the action given at step t at step t+delay (zeros until then), like a ROS graph with latency."""

    def __init__(self, env: gym.Env, delay: int = 1):
        super().__init__(env)
        self.delay = delay
        self._queue: list[np.ndarray] = []

    def reset(self, **kwargs):
        self._queue = [np.zeros(2, np.float32)] * self.delay
        return self.env.reset(**kwargs)

    def step(self, action):
        self._queue.append(np.asarray(action, np.float32))
        return self.env.step(self._queue.pop(0))


def run_episode(env, expert, seed: int) -> tuple[bool, int]:
    env.reset(seed=seed)
    expert.reset()
    for t in range(1, 10_000):
        # The expert gets nothing but a copy of the flat vector, as across a process boundary.
        action = expert.act(env.unwrapped.privileged_state().copy())
        _, _, term, trunc, info = env.step(action)
        if term or trunc:
            return bool(info["is_success"]), t
    raise AssertionError("episode never ended")


@pytest.mark.parametrize("delay", [0, 1])
@pytest.mark.parametrize("name", list(ENVS))
def test_expert_success_rate(name, delay):
    kwargs, threshold = ENVS[name]
    env = TabletopPushEnv(image_size=(16, 16), **kwargs)  # small image: only the expert's speed matters
    if delay:
        env = ActionDelay(env, delay)
    expert = ScriptedExpert()
    results = [run_episode(env, expert, seed) for seed in SEEDS]
    rate = np.mean([ok for ok, _ in results])
    assert len(results) >= 100
    assert rate >= threshold, f"{name} delay={delay}: success {rate:.3f} < {threshold}"
    # Every episode ends within the env's time limit (the env truncates at 200).
    assert max(n for _, n in results) <= 200


def test_expert_goes_around_the_target_instead_of_through_it():
    """While approaching (before the first push), the target block must not be disturbed."""
    env = TabletopPushEnv(num_blocks=4, num_zones=3, image_size=(16, 16))
    expert = ScriptedExpert()
    disturbed = 0
    for seed in range(100):
        env.reset(seed=seed)
        expert.reset()
        start = env.decode_privileged(env.privileged_state())
        for _ in range(200):
            action = expert.act(env.privileged_state())
            if expert.mode == ScriptedExpert.PUSH:
                break
            env.step(action)
        now = env.decode_privileged(env.privileged_state())
        moved = np.hypot(*(now.target_block_pos - start.target_block_pos))
        disturbed += moved > 0.005
    assert disturbed <= 2


@pytest.mark.parametrize("delay", [0, 1])
def test_expert_recovers_a_block_pushed_flat_against_the_edge(delay):
    """A block on the edge opposite its zone leaves no room behind it: slide it off the edge first."""
    env = TabletopPushEnv(image_size=(16, 16))
    if delay:
        env = ActionDelay(env, delay)
    expert = ScriptedExpert()
    results = []
    for seed in range(60):
        env.reset(seed=seed)
        expert.reset()
        u = env.unwrapped
        s = u.decode_privileged(u.privileged_state())
        blocks = s.block_pos.copy()
        axis = seed % 2
        target = blocks[s.target_block]
        target[axis] = -np.sign(s.target_zone_pos[axis] or 1.0) * (0.25 - s.block_radius)
        target[1 - axis] = 0.5 * s.target_zone_pos[1 - axis]
        others = np.delete(blocks, s.target_block, axis=0)
        if np.min(np.hypot(*(others - target).T)) < 0.06 or np.hypot(*(target - s.pusher_pos)) < 0.05:
            continue
        u.set_state(block_positions=blocks)
        ok = False
        for _ in range(200):
            _, _, term, trunc, info = env.step(expert.act(u.privileged_state()))
            if term or trunc:
                ok = info["is_success"]
                break
        results.append(ok)
    assert len(results) >= 40
    assert np.mean(results) >= 0.9


def test_act_returns_bounded_float32_and_is_deterministic():
    env = TabletopPushEnv()
    env.reset(seed=0)
    vec = env.privileged_state()
    for max_speed in (0.25, 0.1):
        a1 = ScriptedExpert(max_speed=max_speed).act(vec)
        a2 = ScriptedExpert(max_speed=max_speed).act(vec)
        assert a1.dtype == np.float32 and a1.shape == (2,)
        np.testing.assert_array_equal(a1, a2)
        assert np.all(np.abs(a1) <= max_speed + 1e-7) and np.hypot(*a1) <= max_speed + 1e-6
        assert np.hypot(*a1) > 0.5 * max_speed  # it is going somewhere


def test_expert_respects_the_env_speed_limit_in_the_vector():
    env = TabletopPushEnv(max_speed=0.1)
    env.reset(seed=0)
    a = ScriptedExpert(max_speed=0.25).act(env.privileged_state())
    assert np.all(np.abs(a) <= 0.1 + 1e-7)


def test_expert_rejects_a_malformed_vector():
    with pytest.raises(ValueError):
        ScriptedExpert().act(np.zeros(7))
    with pytest.raises(ValueError):
        ScriptedExpert(max_speed=0.0)


def test_expert_works_with_a_slower_env():
    env = TabletopPushEnv(max_speed=0.15, image_size=(16, 16), max_episode_steps=300)
    expert = ScriptedExpert(max_speed=0.15)
    rate = np.mean([run_episode(env, expert, seed)[0] for seed in range(40)])
    assert rate >= 0.95


def test_demonstration_noise_perturbs_commands_around_the_experts_own():
    env = TabletopPushEnv()
    env.reset(seed=0)
    vec = env.privileged_state()
    clean = ScriptedExpert(max_speed=0.1).act(vec)
    noisy = ScriptedExpert(max_speed=0.1, noise_std=0.03, seed=1)
    draws = np.array([noisy.act(vec) for _ in range(2000)])
    assert np.all(np.abs(draws) <= 0.1 + 1e-7)  # still within the speed limit
    # The noise is there, about its size, on the axis far from the limit (the other one is clipped at 0.1).
    assert abs(clean[0]) < 0.05 and 0.025 < draws[:, 0].std() < 0.035
    # Zero-mean before the limit: the mean command stays near the expert's (clipping shortens it a little).
    assert np.hypot(*(draws.mean(axis=0) - clean)) < 0.015
    # DART's label: every noisy command comes with the expert's own, the same at every draw.
    np.testing.assert_allclose(noisy.clean_action, clean, atol=1e-7)
    same = ScriptedExpert(max_speed=0.1, noise_std=0.03, seed=1)
    np.testing.assert_array_equal(same.act(vec), draws[0])  # seeded: reproducible
    with pytest.raises(ValueError, match="noise_std"):
        ScriptedExpert(noise_std=-0.1)


def test_noisy_demonstrations_still_succeed():
    env = TabletopPushEnv(image_size=(16, 16))
    expert = ScriptedExpert(noise_std=0.08, seed=0)
    rate = np.mean([run_episode(env, expert, seed)[0] for seed in range(60)])
    assert rate >= 0.9, f"the expert with 0.08 m/s noise succeeds in {rate:.2f} of episodes"
