"""Tests of domain randomisation (vla_sim.randomization) in the tabletop env, and of the curriculum."""
from __future__ import annotations

import hashlib

import gymnasium as gym
import numpy as np
import pytest

import vla_sim.envs  # noqa: F401  (registers the ids)
from vla_sim.envs import TABLETOP_PUSH_ID, TabletopPushEnv
from vla_sim.envs.instructions import BLOCK_COLOURS, ZONE_COLOURS
from vla_sim.envs.tabletop import TABLE_HALF_SIZE, ZONE_RGB
from vla_sim.randomization import (
    DISTRACTOR_RGB,
    HUE_BANDS,
    LIMITS,
    PRESETS,
    ActionLatency,
    Curriculum,
    RandomizationRanges,
    hue_in_band,
    lighting_gains,
)

# sha256 of images, privileged states and instructions of the tabletop env before randomisation existed
# (the code of commit 1b15fe0), for the rollouts of ``_digest``.
NOMINAL_DIGEST = "15af5e1fcd1d50d0265c3083b87a505c92ab88693060df6becda073e44747567"


def _digest(**extra) -> str:
    h = hashlib.sha256()
    for kwargs in ({}, {"num_blocks": 4, "num_zones": 3, "image_size": (60, 80)}):
        env = TabletopPushEnv(**kwargs, **extra)
        for seed in (0, 1, 2):
            obs, info = env.reset(seed=seed)
            h.update(obs["pixels"].tobytes())
            h.update(env.privileged_state().tobytes())
            h.update(info["instruction"].encode())
            for a in np.random.default_rng(seed).uniform(-0.25, 0.25, size=(40, 2)):
                obs, _, term, trunc, _ = env.step(a)
                h.update(obs["pixels"].tobytes())
                h.update(env.privileged_state().tobytes())
                if term or trunc:
                    break
    return h.hexdigest()


@pytest.mark.parametrize("randomization", [None, "off", {}, RandomizationRanges(), PRESETS["full"].scaled(0.0)])
def test_zero_ranges_reproduce_the_nominal_env_bit_for_bit(randomization):
    assert _digest(randomization=randomization) == NOMINAL_DIGEST


def _first_image(ranges, seed=0, **kwargs):
    env = TabletopPushEnv(randomization=ranges, **kwargs)
    obs, _ = env.reset(seed=seed)
    return obs["pixels"], env


VISUAL = {
    "brightness": {"brightness": 0.3},
    "colour_temperature": {"colour_temperature": 2000.0},
    "shade": {"shade": 1.0},
    "table_texture": {"table_texture": 1.0},
    "distractors": {"distractors": 4},
    "camera_shift": {"camera_shift": 0.02},
    "camera_rotation": {"camera_rotation": 10.0},
    "camera_zoom": {"camera_zoom": 0.1},
}


@pytest.mark.parametrize("name", list(VISUAL))
def test_each_visual_randomization_changes_the_image_is_seeded_and_keeps_the_layout(name):
    nominal, env0 = _first_image(None, seed=3)
    changed = []
    for seed in (3, 4, 5):
        image, env = _first_image(VISUAL[name], seed=seed)
        again, _ = _first_image(VISUAL[name], seed=seed)
        np.testing.assert_array_equal(image, again)  # same seed, same scene
        base, _ = _first_image(None, seed=seed)
        changed.append(not np.array_equal(image, base))
        if seed == 3:  # the layout and task of a seed do not depend on the ranges
            np.testing.assert_array_equal(env.privileged_state(), env0.privileged_state())
            assert env.instruction == env0.instruction
            first = image
    assert any(changed), f"{name} never changed the image"
    other, _ = _first_image(VISUAL[name], seed=4)
    assert not np.array_equal(first, other) or name == "distractors"


def test_different_seeds_draw_different_scenes_and_one_range_does_not_shift_another():
    a = TabletopPushEnv(randomization="full")
    a.reset(seed=1)
    s1 = a.scene
    a.reset(seed=2)
    assert a.scene.gains != s1.gains and a.scene.camera != s1.camera
    only_light = TabletopPushEnv(randomization={"brightness": 0.3, "colour_temperature": 1000.0})
    only_light.reset(seed=1)
    full = TabletopPushEnv(randomization={**PRESETS["full"].to_dict(), "brightness": 0.3,
                                          "colour_temperature": 1000.0})
    full.reset(seed=1)
    assert only_light.scene.gains == full.scene.gains


def test_warm_light_is_redder_and_cool_light_bluer():
    warm, cool = lighting_gains(4500.0), lighting_gains(9000.0)
    assert warm[0] / warm[2] > 1.0 > cool[0] / cool[2]
    np.testing.assert_allclose(lighting_gains(6500.0), 1.0)


def test_shades_stay_within_their_colour_name():
    env = TabletopPushEnv(num_blocks=4, num_zones=3, randomization={"shade": 1.0})
    seen = {name: set() for name in BLOCK_COLOURS}
    for seed in range(40):
        env.reset(seed=seed)
        image = env.render()
        ps = env.decode_privileged(env.privileged_state())
        for cid, pos in zip(ps.block_colour_ids, ps.block_pos):
            name = BLOCK_COLOURS[cid]
            v = int(env._cv - pos[0] * env._scale)
            u = int(env._cu - pos[1] * env._scale)
            rgb = image[v, u]
            seen[name].add(tuple(rgb))
            assert hue_in_band(rgb, name, tolerance=1.0), (seed, name, rgb)
            others = [o for o in HUE_BANDS if o != name and hue_in_band(rgb, o)]
            assert not others, (name, rgb, others)
        for name in env.zone_colours:  # the zone outlines, in the shade they were drawn with
            assert hue_in_band(env.scene.shade(name, ZONE_RGB[name]), name, tolerance=1.0)
    assert all(len(v) > 5 for v in seen.values())  # the shades do vary


def test_distractors_never_overlap_task_objects_and_cannot_be_named_as_them():
    env = TabletopPushEnv(num_blocks=4, num_zones=3, randomization={"distractors": 8})
    counts = []
    for seed in range(60):
        env.reset(seed=seed)
        ps = env.decode_privileged(env.privileged_state())
        counts.append(len(env.distractors))
        for d in env.distractors:
            c = np.asarray(d.position)
            assert not any(word in d.name for word in BLOCK_COLOURS + ZONE_COLOURS), d.name
            assert d.name.split()[0] in DISTRACTOR_RGB
            assert np.all(np.abs(c) + d.radius <= TABLE_HALF_SIZE + 1e-9)
            for z in ps.zone_pos:
                assert np.max(np.abs(c - z)) >= ps.zone_half_size + d.radius
            for b in ps.block_pos:  # clear of the block's square (its circumscribed circle)
                assert np.hypot(*(c - b)) >= ps.block_radius * np.sqrt(2) + d.radius
            assert np.hypot(*(c - ps.pusher_pos)) >= ps.pusher_radius + d.radius
    assert max(counts) >= 4 and min(counts) == 0


def _push_and_release(ranges, seed=0, push_steps=6):
    """Put block 0 right in front of the pusher, push it along +x at top speed, stop; its travel after the stop."""
    env = TabletopPushEnv(num_blocks=1, num_zones=1, randomization=ranges)
    env.reset(seed=seed)
    env.set_state(agent_pos=[-0.15, 0.0], block_positions=[[-0.15 + 0.045 + 1e-3, 0.0]],
                  zone_positions=[[0.0, 0.2]])
    for _ in range(push_steps):
        env.step(np.array([0.25, 0.0]))
    at_stop = env.privileged_state()[15]
    for _ in range(10):
        env.step(np.zeros(2))
    return env.privileged_state()[15] - at_stop, env


def test_low_friction_makes_a_pushed_block_slide_on_and_is_seeded():
    nominal, _ = _push_and_release(None)
    assert nominal == pytest.approx(0.0, abs=1e-12)
    slides = [_push_and_release({"friction_slide": 0.1}, seed=s) for s in range(4)]
    travel = [t for t, _ in slides]
    assert all(t > 0.0 for t in travel)
    for t, env in slides:  # about the drawn slide distance (pushed at top speed)
        assert t == pytest.approx(env.scene.slide[0], rel=0.25, abs=2e-3)
    assert len({round(t, 9) for t in travel}) == 4  # seeds differ
    assert _push_and_release({"friction_slide": 0.1}, seed=2)[0] == travel[2]  # same seed, same slide


def test_a_heavier_block_slows_the_pusher_and_a_lighter_one_does_not_speed_it():
    def travelled(seed):
        env = TabletopPushEnv(num_blocks=1, num_zones=1, randomization={"mass": 0.8})
        env.reset(seed=seed)
        env.set_state(agent_pos=[-0.15, 0.0], block_positions=[[-0.15 + 0.045 + 1e-3, 0.0]],
                      zone_positions=[[0.0, 0.2]])
        for _ in range(4):
            env.step(np.array([0.25, 0.0]))
        return env.privileged_state()[11] + 0.15, env.scene.mass[0]
    nominal = 4 * 0.25 * 0.1
    results = [travelled(s) for s in range(8)]
    assert any(m > 1.2 for _, m in results) and any(m < 1.0 for _, m in results)
    for dist, m in results:
        if m > 1.0:
            assert dist < nominal - 1e-3 and dist > nominal / m - 0.01
        else:
            assert dist == pytest.approx(nominal, abs=1e-9)


@pytest.mark.parametrize("latency", [1, 3])
def test_latency_delays_the_action_by_the_drawn_steps(latency):
    env = TabletopPushEnv(randomization={"latency": latency})
    for seed in range(20):  # find an episode that drew the full latency
        env.reset(seed=seed)
        if env.scene.latency == latency:
            break
    assert env.scene.latency == latency
    start = env.privileged_state()[11:13].copy()
    command = np.array([0.1, 0.0])
    positions = [env.step(command)[0]["agent_pos"].copy() for _ in range(latency + 2)]
    for k in range(latency):
        np.testing.assert_allclose(positions[k], start)  # nothing moved yet
    assert positions[latency][0] > start[0] + 0.005


def test_action_latency_fifo():
    fifo = ActionLatency(2, np.zeros(1))
    assert [float(fifo(np.array([v]))[0]) for v in (1.0, 2.0, 3.0)] == [0.0, 0.0, 1.0]
    assert ActionLatency(0, np.zeros(1))(np.array([5.0]))[0] == 5.0


def test_full_randomization_is_seeded_over_a_trajectory_and_the_expert_still_succeeds_mostly():
    from vla_sim.expert import ScriptedExpert

    def run(seed):
        env = TabletopPushEnv(randomization="full")
        obs, _ = env.reset(seed=seed)
        expert = ScriptedExpert()
        images, info = [obs["pixels"]], {}
        for _ in range(200):
            obs, _, term, trunc, info = env.step(expert.act(env.privileged_state()))
            images.append(obs["pixels"])
            if term or trunc:
                break
        return np.stack(images), info["is_success"]
    a, ok = run(7)
    b, _ = run(7)
    np.testing.assert_array_equal(a, b)
    wins = sum(run(s)[1] for s in range(8)) + ok
    assert wins >= 6


def test_reset_option_and_gym_make_take_ranges_and_bad_ranges_are_refused():
    env = gym.make(TABLETOP_PUSH_ID, randomization={"brightness": 0.2})
    assert env.unwrapped.randomization.brightness == 0.2
    env.reset(seed=0, options={"randomization": "off"})
    assert not env.unwrapped.scene.lighting
    env.reset(seed=0)
    assert env.unwrapped.scene.lighting
    with pytest.raises(ValueError, match="brightness=2.0 is out of range"):
        RandomizationRanges(brightness=2.0)
    with pytest.raises(ValueError, match="unknown randomization keys \\['brightnes'\\]"):
        TabletopPushEnv(randomization={"brightnes": 0.1})
    with pytest.raises(ValueError, match="unknown randomization preset"):
        TabletopPushEnv(randomization="strong")
    with pytest.raises(ValueError, match="latency=1.5 must be an integer"):
        RandomizationRanges(latency=1.5)


def test_scaled_ranges_and_presets_stay_within_limits():
    full = PRESETS["full"]
    half = full.scaled(0.5)
    assert half.brightness == pytest.approx(full.brightness / 2) and half.latency == round(full.latency / 2)
    assert full.scaled(1.0) == full and not full.scaled(0.0).enabled
    for preset in PRESETS.values():
        for name, (low, high) in LIMITS.items():
            assert low <= getattr(preset, name) <= high
    with pytest.raises(ValueError, match="scale must be in"):
        full.scaled(1.5)


def test_curriculum_widens_on_success_and_narrows_on_failure():
    c = Curriculum(step=0.25, target=0.8, floor=0.5, window=10)
    assert c.update([True] * 5) == 0.0  # not enough evidence yet
    assert c.update([True] * 5) == 0.25
    assert c.update([True] * 9 + [False]) == 0.5
    assert c.update([True] * 6 + [False] * 4) == 0.5  # between floor and target: hold
    assert c.update([False] * 10) == 0.25
    for _ in range(10):
        c.update([True] * 10)
    assert c.scale == 1.0  # clamped at max_scale
    for _ in range(10):
        c.update([False] * 10)
    assert c.scale == 0.0
    with pytest.raises(ValueError, match="floor"):
        Curriculum(floor=0.9, target=0.8)


def test_sim_robot_parameters_and_the_preset_file_give_the_full_preset():
    from pathlib import Path

    import yaml

    from vla_core.params import defaults, validate
    from vla_sim.randomization import ranges_from_params
    from vla_sim.sim_params import SIM_ROBOT_PARAMS

    assert not ranges_from_params(defaults(SIM_ROBOT_PARAMS)).enabled  # off by default
    path = Path(__file__).resolve().parents[3] / "params" / "sim_robot_randomization.yaml"
    values = yaml.safe_load(path.read_text())["sim_robot"]["ros__parameters"]
    assert validate(SIM_ROBOT_PARAMS, values, str(path)) == []
    assert ranges_from_params({**defaults(SIM_ROBOT_PARAMS), **values}) == PRESETS["full"]
    half = ranges_from_params({**values, "randomization_scale": 0.5})
    assert half == PRESETS["full"].scaled(0.5)


def test_backend_takes_ranges_for_the_next_episode_and_the_node_config_refuses_them_for_other_presets():
    from vla_core.errors import ConfigError
    from vla_core.params import defaults
    from vla_sim.backends import PRESETS as BACKEND_PRESETS
    from vla_sim.backends import make_backend
    from vla_sim.sim_node import backend_config
    from vla_sim.sim_params import SIM_ROBOT_PARAMS

    backend = make_backend(BACKEND_PRESETS["tabletop"])
    nominal = backend.reset(3).image
    backend.set_randomization(PRESETS["visual"])
    randomised = backend.reset(3).image
    np.testing.assert_array_equal(randomised, _first_image("visual", seed=3)[0])
    assert not np.array_equal(nominal, randomised)
    backend.close()

    params = {**defaults(SIM_ROBOT_PARAMS), "randomization_latency": 2, "randomization_scale": 0.5}
    assert backend_config(params)["env_kwargs"]["randomization"]["latency"] == 1
    assert "randomization" not in backend_config(defaults(SIM_ROBOT_PARAMS))["env_kwargs"]
    assert backend_config({**params, "preset": "arm"})["env_kwargs"]["randomization"]["latency"] == 1
    with pytest.raises(ConfigError, match="preset 'pusht' takes no domain randomisation"):
        backend_config({**params, "preset": "pusht"})


def test_scripted_demonstrations_can_be_recorded_in_randomised_scenes(tmp_path):
    from vla_core.contract import RobotContract
    from vla_core.dataset import DatasetReader
    from vla_core.features import STATE
    from vla_core.paths import workspace_path
    from vla_sim.demos import record_scripted_demos

    contract = RobotContract.from_yaml(workspace_path("params/robots/tabletop_sim.yaml"))

    def states(name, randomization):
        record_scripted_demos(tmp_path / name, contract, episodes=1, seed_start=2, randomization=randomization)
        return DatasetReader(tmp_path / name, decode_images=False).episode_frames(0)[STATE]

    nominal = states("nominal", None)
    np.testing.assert_array_equal(states("off", "off"), nominal)
    slow = states("latency", {"latency": 3, "friction_slide": 0.05})
    assert slow.shape != nominal.shape or not np.array_equal(slow, nominal)
    with pytest.raises(ValueError, match="unknown randomization preset"):
        record_scripted_demos(tmp_path / "bad", contract, episodes=1, randomization="strong")


def test_under_full_lighting_and_shades_every_block_is_nearest_its_own_colour_name():
    """The presets' lighting moves hues a little beyond the shade band; a block must still look like its name."""
    from vla_sim.randomization import hue_degrees

    def distance(a, b):
        return abs((a - b + 180.0) % 360.0 - 180.0)

    ranges = {**PRESETS["visual"].to_dict(), "camera_shift": 0.0, "camera_rotation": 0.0, "camera_zoom": 0.0}
    env = TabletopPushEnv(num_blocks=4, num_zones=3, randomization=ranges)
    for seed in range(60):
        env.reset(seed=seed)
        image = env.render()
        ps = env.decode_privileged(env.privileged_state())
        for name, pos in zip(env.block_colours, ps.block_pos):
            hue = hue_degrees(image[int(env._cv - pos[0] * env._scale), int(env._cu - pos[1] * env._scale)])
            nearest = min(HUE_BANDS, key=lambda other: distance(hue, HUE_BANDS[other][0]))
            assert nearest == name, (seed, name, hue)


def test_single_perturbations_are_each_field_of_the_full_preset_alone():
    from vla_sim.randomization import PERTURBATIONS
    full = PRESETS["full"].to_dict()
    singles = {name: ranges for name, ranges in PERTURBATIONS.items() if name not in PRESETS}
    assert sorted(singles) == sorted(name for name, value in full.items() if value)
    for name, ranges in singles.items():
        assert {k: v for k, v in ranges.to_dict().items() if v} == {name: full[name]}
    assert all(PERTURBATIONS[name] == PRESETS[name] for name in PRESETS)
