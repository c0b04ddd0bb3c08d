"""Tests of the embedded tabletop environment and its instruction language.

Run: cd src/vla_sim && PYTHONPATH=. python -m pytest test -q
"""

from __future__ import annotations

import itertools
import time

import gymnasium as gym
import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import vla_sim.envs  # noqa: F401  (registers the ids)
from vla_sim.envs import TABLETOP_PUSH_HARD_ID, TABLETOP_PUSH_ID, TabletopPushEnv
from vla_sim.envs.instructions import (
    BLOCK_COLOURS,
    HELDOUT_TEMPLATES,
    TRAIN_TEMPLATES,
    ZONE_COLOURS,
    format_instruction,
    parse_instruction,
    templates,
)
from vla_sim.envs.tabletop import TABLE_HALF_SIZE

CONFIGS = {
    "default": {},
    "hard": {"num_blocks": 4, "num_zones": 3},
}


def random_actions(seed: int, n: int, max_speed: float = 0.25) -> np.ndarray:
    return np.random.default_rng(seed).uniform(-max_speed, max_speed, size=(n, 2)).astype(np.float32)


# --------------------------------------------------------------------- registration / spaces
@pytest.mark.parametrize("env_id,nb,nz", [(TABLETOP_PUSH_ID, 3, 2), (TABLETOP_PUSH_HARD_ID, 4, 3)])
def test_registered_ids_make_envs_with_documented_spaces(env_id, nb, nz):
    env = gym.make(env_id)
    obs, info = env.reset(seed=0)
    u = env.unwrapped
    assert (u.num_blocks, u.num_zones) == (nb, nz)
    assert obs["pixels"].shape == (96, 96, 3) and obs["pixels"].dtype == np.uint8
    assert obs["agent_pos"].dtype == np.float64 and obs["agent_pos"].shape == (2,)
    assert obs["agent_vel"].dtype == np.float64 and obs["agent_vel"].shape == (2,)
    assert env.action_space.shape == (2,) and env.action_space.dtype == np.float32
    np.testing.assert_allclose(env.action_space.high, 0.25)
    assert env.observation_space.contains(obs)
    assert set(info) >= {"instruction", "target_block", "target_zone", "is_success"}
    assert info["instruction"] == u.instruction
    assert len(set(info["block_colours"])) == nb and len(set(info["zone_colours"])) == nz


def test_gymnasium_env_checker_passes():
    from gymnasium.utils.env_checker import check_env

    check_env(gym.make(TABLETOP_PUSH_ID, render_mode="rgb_array").unwrapped, skip_render_check=False)


# --------------------------------------------------------------------- determinism
def rollout(env_kwargs, seed, actions, options=None):
    env = TabletopPushEnv(**env_kwargs)
    obs, info = env.reset(seed=seed, options=options)
    images, states = [obs["pixels"]], [env.privileged_state()]
    for a in actions:
        obs, _, term, trunc, info = env.step(a)
        images.append(obs["pixels"])
        states.append(env.privileged_state())
        if term or trunc:
            break
    return np.stack(images), np.stack(states), info["instruction"]


@pytest.mark.parametrize("name", list(CONFIGS))
@pytest.mark.parametrize("image_size", [(96, 96), (60, 80)])
def test_same_seed_gives_identical_images_and_trajectories(name, image_size):
    kwargs = dict(CONFIGS[name], image_size=image_size)
    actions = random_actions(7, 60)
    img_a, st_a, instr_a = rollout(kwargs, 123, actions)
    img_b, st_b, instr_b = rollout(kwargs, 123, actions)
    assert instr_a == instr_b
    np.testing.assert_array_equal(st_a, st_b)
    np.testing.assert_array_equal(img_a, img_b)


@pytest.mark.parametrize("name", list(CONFIGS))
def test_different_seeds_give_different_layouts(name):
    env = TabletopPushEnv(**CONFIGS[name])
    layouts = []
    for seed in range(30):
        env.reset(seed=seed)
        layouts.append(env.privileged_state()[11:].round(6).tobytes())
    assert len(set(layouts)) == 30


def test_layout_does_not_depend_on_the_instruction():
    env = TabletopPushEnv()
    env.reset(seed=5)
    base = env.privileged_state()
    blocks, zones = env.block_colours, env.zone_colours
    for block, zone in itertools.product(blocks, zones):
        env.reset(seed=5, options={"instruction": f"push the {block} block into the {zone} zone"})
        s = env.privileged_state()
        np.testing.assert_array_equal(s[11:], base[11:])  # pusher, blocks, zones, colours
        assert (env.block_colours[int(s[3])], env.zone_colours[int(s[4])]) == (block, zone)


@pytest.mark.parametrize("name", list(CONFIGS))
def test_sampled_layouts_respect_the_constraints(name):
    env = TabletopPushEnv(**CONFIGS[name])
    for seed in range(150):
        env.reset(seed=seed)
        s = env.decode_privileged(env.privileged_state())
        assert np.all(np.abs(s.block_pos) <= TABLE_HALF_SIZE - s.block_radius)
        assert np.all(np.abs(s.zone_pos) <= TABLE_HALF_SIZE - s.zone_half_size)
        for i, j in itertools.combinations(range(len(s.block_pos)), 2):
            assert np.hypot(*(s.block_pos[i] - s.block_pos[j])) >= 2 * s.block_radius
        for i, j in itertools.combinations(range(len(s.zone_pos)), 2):
            assert np.max(np.abs(s.zone_pos[i] - s.zone_pos[j])) >= 2 * s.zone_half_size
        for b in s.block_pos:  # no block starts in any zone (so not the target either)
            assert np.all(np.max(np.abs(b - s.zone_pos), axis=1) > s.zone_half_size + s.block_radius)
            assert np.hypot(*(b - s.pusher_pos)) >= s.block_radius + s.pusher_radius
        assert len(set(s.block_colour_ids)) == len(s.block_colour_ids)
        assert len(set(s.zone_colour_ids)) == len(s.zone_colour_ids)


# --------------------------------------------------------------------- success / reward / limits
def test_success_detection_terminates_with_reward_one():
    env = TabletopPushEnv()
    env.reset(seed=3)
    s = env.decode_privileged(env.privileged_state())
    blocks = s.block_pos.copy()
    # Just outside the zone: not yet a success, reward = -distance.
    blocks[s.target_block] = s.target_zone_pos + [s.zone_half_size + 0.004, 0.0]
    env.set_state(agent_pos=[-0.2, -0.2], block_positions=blocks)
    _, reward, term, trunc, info = env.step(np.zeros(2))
    assert not info["is_success"] and not term and not trunc
    assert reward == pytest.approx(-(s.zone_half_size + 0.004))
    # Centre just inside the zone: success, termination, reward 1.
    blocks[s.target_block] = s.target_zone_pos + [s.zone_half_size - 0.004, 0.0]
    env.set_state(block_positions=blocks)
    _, reward, term, trunc, info = env.step(np.zeros(2))
    assert info["is_success"] and term and not trunc and reward == 1.0


def test_other_block_in_zone_is_not_success():
    env = TabletopPushEnv()
    env.reset(seed=4)
    s = env.decode_privileged(env.privileged_state())
    other = (s.target_block + 1) % len(s.block_pos)
    blocks = s.block_pos.copy()
    blocks[other] = s.target_zone_pos
    env.set_state(agent_pos=[-0.22, -0.22], block_positions=blocks)
    _, _, term, _, info = env.step(np.zeros(2))
    assert not info["is_success"] and not term


def test_pushing_a_block_into_its_zone_succeeds():
    """Line the pusher up behind the target and drive straight: the physics must carry it in."""
    env = TabletopPushEnv(num_blocks=1, num_zones=1)
    env.reset(seed=0)
    s = env.decode_privileged(env.privileged_state())
    block, zone = np.array([-0.1, 0.0]), np.array([0.12, 0.0])
    env.set_state(
        agent_pos=block - [s.block_radius + s.pusher_radius + 0.01, 0.0],
        block_positions=block[None],
        zone_positions=zone[None],
    )
    for step in range(30):
        _, _, term, _, info = env.step(np.array([0.25, 0.0]))
        pos = env.decode_privileged(env.privileged_state())
        # The pusher never penetrates the block.
        assert np.hypot(*(pos.pusher_pos - pos.block_pos[0])) >= s.block_radius + s.pusher_radius - 1e-9
        if term:
            break
    assert info["is_success"], "pushed block never reached the zone"
    assert abs(pos.block_pos[0, 1]) < 1e-9, "a head-on push must not deflect the block"


@pytest.mark.parametrize("limit", [1, 7])
def test_time_limit_truncates(limit):
    env = TabletopPushEnv(max_episode_steps=limit)
    env.reset(seed=0)
    for i in range(limit):
        _, _, term, trunc, _ = env.step(np.zeros(2))
        assert not term
        assert trunc == (i == limit - 1)


def test_default_time_limit_is_200_steps_via_gym_make():
    env = gym.make(TABLETOP_PUSH_ID, image_size=(16, 16))
    env.reset(seed=0)
    for i in range(200):
        _, _, term, trunc, _ = env.step(np.zeros(2, np.float32))
        assert trunc == (i == 199) and not term


# --------------------------------------------------------------------- kinematics / physics
def test_pusher_follows_velocity_command_and_stays_on_table():
    env = TabletopPushEnv(num_blocks=1, num_zones=1)
    env.reset(seed=0)
    env.set_state(agent_pos=[0.0, 0.0], block_positions=[[0.2, 0.2]])
    obs, *_ = env.step(np.array([0.1, -0.05]))
    np.testing.assert_allclose(obs["agent_pos"], [0.01, -0.005], atol=1e-12)
    np.testing.assert_allclose(obs["agent_vel"], [0.1, -0.05], atol=1e-9)
    obs, *_ = env.step(np.array([9.0, -9.0]))  # clipped to max_speed per axis
    np.testing.assert_allclose(obs["agent_vel"], [0.25, -0.25], atol=1e-9)
    for _ in range(40):
        obs, *_ = env.step(np.array([0.25, -0.25]))
    lim = TABLE_HALF_SIZE - env.pusher_radius
    assert obs["agent_pos"][1] == pytest.approx(-lim)
    np.testing.assert_allclose(obs["agent_vel"][1], 0.0, atol=1e-9)  # blocked by the edge


@settings(max_examples=25, deadline=None)
@given(seed=st.integers(0, 10_000), action_seed=st.integers(0, 10_000))
def test_contacts_never_leave_interpenetration_or_leave_the_table(seed, action_seed):
    env = TabletopPushEnv(num_blocks=4, num_zones=3, image_size=(16, 16))
    env.reset(seed=seed)
    # Biased random walk so the pusher actually plows through blocks.
    actions = random_actions(action_seed, 80) * 0.5 + np.float32(0.12) * np.sign(random_actions(action_seed + 1, 1))
    for a in actions:
        env.step(a)
        s = env.decode_privileged(env.privileged_state())
        assert np.all(np.abs(s.block_pos) <= TABLE_HALF_SIZE - s.block_radius + 1e-12)
        assert np.all(np.abs(s.pusher_pos) <= TABLE_HALF_SIZE - s.pusher_radius + 1e-12)
        d = np.hypot(*(s.block_pos - s.pusher_pos).T)
        assert np.all(d >= s.block_radius + s.pusher_radius - 2e-3)


# --------------------------------------------------------------------- rendering
@pytest.mark.parametrize("size", [(96, 96), (480, 640), (64, 40)])
def test_image_size_and_render_mode(size):
    env = TabletopPushEnv(image_size=size, render_mode="rgb_array")
    obs, _ = env.reset(seed=1)
    assert obs["pixels"].shape == (*size, 3) and obs["pixels"].dtype == np.uint8
    np.testing.assert_array_equal(env.render(), obs["pixels"])
    obs, *_ = env.step(np.array([0.1, 0.1]))
    np.testing.assert_array_equal(env.render(), obs["pixels"])


def test_image_orientation_follows_rep103():
    """x forward = image up, y left = image left: the pusher appears where the frame says."""
    env = TabletopPushEnv(num_blocks=1, num_zones=1, image_size=(100, 100))
    env.reset(seed=0)
    env.set_state(block_positions=[[-0.2, -0.2]])
    dark = lambda img: np.argwhere(np.all(img == (45, 45, 50), axis=-1)).mean(axis=0)  # noqa: E731
    row_col = dark(env.set_state(agent_pos=[0.15, 0.10])["pixels"])
    # scale 200 px/m, centre (50, 50): row = 50 - 0.15 * 200 = 20, col = 50 - 0.10 * 200 = 30
    np.testing.assert_allclose(row_col, [20.0, 30.0], atol=1.0)


def test_block_and_zone_colours_are_drawn():
    env = TabletopPushEnv(num_blocks=4, num_zones=3, image_size=(200, 200))
    obs, _ = env.reset(seed=2)
    from vla_sim.envs.tabletop import BLOCK_RGB, ZONE_RGB

    img = obs["pixels"]
    for name in env.block_colours:
        assert np.any(np.all(img == BLOCK_RGB[name], axis=-1)), name
    for name in env.zone_colours:
        assert np.any(np.all(img == ZONE_RGB[name], axis=-1)), name


@pytest.mark.parametrize("size,min_fps", [((96, 96), 500.0), ((480, 640), 60.0)])
def test_step_and_render_are_fast(size, min_fps):
    """Loose floor (targets: > 2000 fps at 96x96, > 150 fps at 480x640) so shared CI does not flake."""
    env = TabletopPushEnv(image_size=size)
    env.reset(seed=0)
    actions = random_actions(0, 300)
    t0 = time.perf_counter()
    for a in actions:
        _, _, term, trunc, _ = env.step(a)
        if term or trunc:
            env.reset()
    fps = len(actions) / (time.perf_counter() - t0)
    assert fps > min_fps


# --------------------------------------------------------------------- privileged state
def test_privileged_state_round_trips_and_matches_observation():
    env = TabletopPushEnv(num_blocks=4, num_zones=3)
    obs, info = env.reset(seed=9)
    obs, *_ = env.step(np.array([0.1, 0.2]))
    vec = env.privileged_state()
    assert vec.dtype == np.float64 and vec.ndim == 1
    s = TabletopPushEnv.decode_privileged(vec.copy())
    np.testing.assert_array_equal(s.pusher_pos, obs["agent_pos"])
    np.testing.assert_array_equal(s.pusher_vel, obs["agent_vel"])
    assert s.block_pos.shape == (4, 2) and s.zone_pos.shape == (3, 2)
    assert BLOCK_COLOURS[s.block_colour_ids[s.target_block]] == info["target_block"]
    assert ZONE_COLOURS[s.zone_colour_ids[s.target_zone]] == info["target_zone"]
    assert s.dt == pytest.approx(0.1) and s.max_speed == pytest.approx(0.25)


@pytest.mark.parametrize("bad", [np.zeros(0), np.zeros(20), np.r_[2.0, np.zeros(14)]])
def test_decode_privileged_rejects_malformed_vectors(bad):
    with pytest.raises(ValueError):
        TabletopPushEnv.decode_privileged(bad)


# --------------------------------------------------------------------- actions
@pytest.mark.parametrize("action", [np.zeros(3), np.zeros((1, 2)), np.array(0.1), [np.nan, 0.0], [0.0, np.inf]])
def test_bad_actions_raise_and_leave_state_unchanged(action):
    env = TabletopPushEnv()
    env.reset(seed=0)
    before = env.privileged_state()
    with pytest.raises(ValueError, match=r"shape|finite"):
        env.step(action)
    np.testing.assert_array_equal(env.privileged_state(), before)


# --------------------------------------------------------------------- instructions
ALL_SETS = {"train": TRAIN_TEMPLATES, "heldout": HELDOUT_TEMPLATES}


def test_template_sets_are_large_enough_and_disjoint():
    assert len(TRAIN_TEMPLATES) >= 8 and len(HELDOUT_TEMPLATES) >= 4
    assert not set(TRAIN_TEMPLATES) & set(HELDOUT_TEMPLATES)
    assert len(set(TRAIN_TEMPLATES)) == len(TRAIN_TEMPLATES)
    assert templates("all") == TRAIN_TEMPLATES + HELDOUT_TEMPLATES
    assert not set(BLOCK_COLOURS) & set(ZONE_COLOURS)


@pytest.mark.parametrize(
    "set_name,template",
    [(name, t) for name, ts in ALL_SETS.items() for t in ts],
)
def test_every_template_parses_back_for_every_colour_pair(set_name, template):
    for block, zone in itertools.product(BLOCK_COLOURS, ZONE_COLOURS):
        text = format_instruction(template, block, zone)
        assert parse_instruction(text) == (block, zone)
        assert parse_instruction(text.upper()) == (block, zone)


@pytest.mark.parametrize(
    "text",
    [
        "push the block into the zone",  # no colours
        "push the red block into the green zone",  # green is a block colour: two blocks, no zone
        "push the pink block into the purple zone",  # unknown colour
        "push the red block into the purple or orange zone",  # ambiguous zone
        "",
    ],
)
def test_unparseable_instructions_raise_with_text_and_known_colours(text):
    with pytest.raises(ValueError) as err:
        parse_instruction(text)
    msg = str(err.value)
    assert repr(text) in msg and "red" in msg and "purple" in msg


def test_parser_accepts_synonyms_and_repeated_colours():
    assert parse_instruction("Violet zone please: the blue block, yes the BLUE one") == ("blue", "purple")
    assert parse_instruction("move yellow to cyan") == ("yellow", "teal")
    with pytest.raises(ValueError):
        parse_instruction(None)  # type: ignore[arg-type]


@pytest.mark.parametrize("instruction_set", ["train", "heldout", "all"])
def test_sampled_instructions_come_from_the_requested_set(instruction_set):
    allowed = set(templates(instruction_set))
    env = TabletopPushEnv(instruction_set="train")
    seen = set()
    for seed in range(60):
        _, info = env.reset(seed=seed, options={"instruction_set": instruction_set})
        filled = {format_instruction(t, info["target_block"], info["target_zone"]): t for t in allowed}
        assert info["instruction"] in filled
        seen.add(filled[info["instruction"]])
        assert parse_instruction(info["instruction"]) == (info["target_block"], info["target_zone"])
    assert len(seen) >= min(4, len(allowed))


@pytest.mark.parametrize("template", HELDOUT_TEMPLATES + TRAIN_TEMPLATES[:2])
def test_reset_with_instruction_sets_the_task(template):
    env = TabletopPushEnv(num_blocks=4, num_zones=3)
    _, info = env.reset(seed=11)
    block, zone = info["block_colours"][-1], info["zone_colours"][-1]
    text = format_instruction(template, block, zone)
    _, info = env.reset(seed=11, options={"instruction": text})
    assert (info["target_block"], info["target_zone"]) == (block, zone)
    assert info["instruction"] == text == env.instruction
    s = env.decode_privileged(env.privileged_state())
    assert env.block_colours[s.target_block] == block and env.zone_colours[s.target_zone] == zone


def test_instruction_naming_absent_colours_raises_and_keeps_episode():
    env = TabletopPushEnv()  # 3 of 4 block colours, 2 of 3 zone colours
    _, info = env.reset(seed=0)
    state, instruction = env.privileged_state(), env.instruction
    absent_block = next(c for c in BLOCK_COLOURS if c not in info["block_colours"])
    text = f"push the {absent_block} block into the {info['zone_colours'][0]} zone"
    with pytest.raises(ValueError) as err:
        env.reset(seed=0, options={"instruction": text})
    assert repr(text) in str(err.value) and info["block_colours"][0] in str(err.value)
    np.testing.assert_array_equal(env.privileged_state(), state)
    assert env.instruction == instruction
    with pytest.raises(ValueError, match="cannot parse"):
        env.reset(seed=0, options={"instruction": "do a barrel roll"})


def test_bad_reset_options_and_constructor_arguments_raise():
    env = TabletopPushEnv()
    with pytest.raises(ValueError, match="instruction_set"):
        env.reset(seed=0, options={"instruction_set": "test"})
    with pytest.raises(ValueError, match="unknown reset options"):
        env.reset(seed=0, options={"instrucion": "typo"})
    for kwargs in ({"num_blocks": 5}, {"num_zones": 0}, {"image_size": (8, 8)}, {"render_mode": "human"}):
        with pytest.raises(ValueError):
            TabletopPushEnv(**kwargs)
