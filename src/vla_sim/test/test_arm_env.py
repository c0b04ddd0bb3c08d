"""Tests of the MuJoCo arm environment, its instruction language, kinematics and scripted expert.

Run: bash scripts/test.sh src/vla_sim/test/test_arm_env.py -q
Rendering is headless (MUJOCO_GL=egl unless set). Images are kept small; the
expert's 200-seed success rate is measured by ``python -m vla_sim.envs.arm_bench``.
"""

from __future__ import annotations

import itertools
import os

os.environ.setdefault("MUJOCO_GL", "egl")

import gymnasium as gym  # noqa: E402
import numpy as np  # noqa: E402
import pytest  # noqa: E402

import vla_sim.envs  # noqa: E402,F401  (registers the ids)
from vla_sim.arm_expert import ArmScriptedExpert  # noqa: E402
from vla_sim.envs import ARM_PICK_PLACE_HARD_ID, ARM_PICK_PLACE_ID  # noqa: E402
from vla_sim.envs.arm import CAMERA_NAMES, ArmPickPlaceEnv  # noqa: E402
from vla_sim.envs.arm_instructions import (  # noqa: E402
    BIN_COLOURS,
    CUBE_COLOURS,
    PLACE_HELDOUT_TEMPLATES,
    PLACE_TRAIN_TEMPLATES,
    STACK_HELDOUT_TEMPLATES,
    STACK_TRAIN_TEMPLATES,
    ArmTask,
    arm_templates,
    format_arm_instruction,
    parse_arm_instruction,
)
from vla_sim.envs.arm_kinematics import HOME_QPOS, ArmKinematics, top_down_rotation  # noqa: E402


@pytest.fixture
def env():
    e = ArmPickPlaceEnv(image_size=(32, 40))
    yield e
    e.close()


@pytest.fixture(scope="module")
def kinematics():
    return ArmKinematics()


def hold(obs, gripper: float = 1.0) -> np.ndarray:
    """Action that holds the arm where it is."""
    return np.append(obs["agent_pos"][:6], gripper).astype(np.float32)


# --------------------------------------------------------------------- instructions
def test_templates_ten_train_five_heldout_per_skill_and_disjoint():
    for train, heldout in ((PLACE_TRAIN_TEMPLATES, PLACE_HELDOUT_TEMPLATES),
                           (STACK_TRAIN_TEMPLATES, STACK_HELDOUT_TEMPLATES)):
        assert len(set(train)) == 10 and len(set(heldout)) == 5
        assert not set(train) & set(heldout)
    assert arm_templates("place", "all") == PLACE_TRAIN_TEMPLATES + PLACE_HELDOUT_TEMPLATES


@pytest.mark.parametrize("skill", ["place", "stack"])
def test_every_phrasing_parses_back_to_its_task(skill):
    pairs = (itertools.product(CUBE_COLOURS, BIN_COLOURS) if skill == "place"
             else itertools.permutations(CUBE_COLOURS, 2))
    for (cube, target), template in itertools.product(list(pairs), arm_templates(skill, "all")):
        task = ArmTask(skill, cube, target)
        assert parse_arm_instruction(format_arm_instruction(template, task)) == task, template


def test_parser_reads_the_relation_and_rejects_ambiguous_text():
    assert parse_arm_instruction("Put the RED cube in the cyan bowl") == ArmTask("place", "red", "teal")
    assert parse_arm_instruction("the blue cube should end up under the red cube") == ArmTask("stack", "red", "blue")
    for text in ("put the red cube in the bin", "put the red cube on the blue cube in the teal bin",
                 "stack red, green and blue", "put it in the purple and orange bins", 42):
        with pytest.raises(ValueError, match="cannot parse|must be a string"):
            parse_arm_instruction(text)
    with pytest.raises(ValueError, match="another cube"):
        format_arm_instruction(STACK_TRAIN_TEMPLATES[0], ArmTask("stack", "red", "red"))


# --------------------------------------------------------------------- registration, spaces
@pytest.mark.parametrize("env_id,nc,nb", [(ARM_PICK_PLACE_ID, 3, 2), (ARM_PICK_PLACE_HARD_ID, 4, 3)])
def test_registered_ids_make_envs_with_documented_spaces(env_id, nc, nb):
    env = gym.make(env_id, image_size=(24, 32))
    try:
        obs, info = env.reset(seed=3)
        assert set(obs["pixels"]) == set(CAMERA_NAMES) == {"scene", "wrist"}
        for image in obs["pixels"].values():
            assert image.shape == (24, 32, 3) and image.dtype == np.uint8
        assert obs["agent_pos"].shape == (7,) and obs["agent_vel"].shape == (7,)
        assert env.action_space.shape == (7,) and env.action_space.dtype == np.float32
        assert env.action_space.low[6] == 0.0 and env.action_space.high[6] == 1.0
        assert env.observation_space.contains(obs)
        assert len(info["cube_colours"]) == nc and len(info["bin_colours"]) == nb
        assert info["instruction"] == env.unwrapped.instruction and info["is_success"] is False
    finally:
        env.close()


def test_gymnasium_env_checker_passes():
    from gymnasium.utils.env_checker import check_env

    env = ArmPickPlaceEnv(image_size=(24, 24), render_mode="rgb_array")
    try:
        check_env(env, skip_render_check=False)
    finally:
        env.close()


# --------------------------------------------------------------------- determinism
def rollout(seed: int, actions: np.ndarray) -> tuple[list, np.ndarray, str]:
    env = ArmPickPlaceEnv(image_size=(24, 24))
    try:
        obs, info = env.reset(seed=seed)
        frames, states = [obs], [env.privileged_state()]
        for a in actions:
            obs, *_ = env.step(a)
            frames.append(obs)
            states.append(env.privileged_state())
        return frames, np.stack(states), info["instruction"]
    finally:
        env.close()


def random_joint_actions(seed: int, n: int) -> np.ndarray:
    rng = np.random.default_rng(seed)
    q = HOME_QPOS + rng.uniform(-0.3, 0.3, size=(n, 6))
    return np.column_stack([q, rng.uniform(0, 1, size=n)]).astype(np.float32)


def test_same_seed_and_actions_give_identical_observations():
    actions = random_joint_actions(0, 6)
    frames_a, states_a, text_a = rollout(11, actions)
    frames_b, states_b, text_b = rollout(11, actions)
    assert text_a == text_b
    np.testing.assert_array_equal(states_a, states_b)
    for fa, fb in zip(frames_a, frames_b):
        for cam in CAMERA_NAMES:
            np.testing.assert_array_equal(fa["pixels"][cam], fb["pixels"][cam])
        np.testing.assert_array_equal(fa["agent_pos"], fb["agent_pos"])
        np.testing.assert_array_equal(fa["agent_vel"], fb["agent_vel"])


def test_different_seeds_give_different_layouts(env):
    layouts = set()
    for seed in range(5):
        env.reset(seed=seed)
        layouts.add(env.privileged_state()[23:].round(6).tobytes())
    assert len(layouts) == 5


# --------------------------------------------------------------------- the instruction decides the task
def test_instruction_option_decides_target_cube_and_container(env):
    env.reset(seed=5)
    cubes, bins = env.cube_colours, env.bin_colours
    for cube, target in ((cubes[0], bins[1]), (cubes[2], bins[0])):
        text = format_arm_instruction(PLACE_HELDOUT_TEMPLATES[1], ArmTask("place", cube, target))
        _, info = env.reset(seed=5, options={"instruction": text})
        assert (info["skill"], info["target_cube"], info["target"]) == ("place", cube, target)
        state = env.decode_privileged(env.privileged_state())
        assert env.cube_colours[state.target_cube] == cube and env.bin_colours[state.target] == target
    _, info = env.reset(seed=5, options={"instruction": f"stack the {cubes[1]} cube on the {cubes[0]} cube"})
    state = env.decode_privileged(env.privileged_state())
    assert (info["skill"], info["target_cube"], info["target"]) == ("stack", cubes[1], cubes[0])
    assert (state.skill, state.target_cube, state.target) == ("stack", 1, 0)
    # The goal point moves with the named container.
    np.testing.assert_allclose(state.goal[:2], env.cube_position(cubes[0])[:2])


def test_instruction_naming_absent_objects_or_an_unoffered_skill_is_refused(env):
    env.reset(seed=5)
    before = env.privileged_state()
    missing_cube = next(c for c in CUBE_COLOURS if c not in env.cube_colours)
    with pytest.raises(ValueError, match="this layout has cubes"):
        env.reset(seed=5, options={"instruction": f"put the {missing_cube} cube in the {env.bin_colours[0]} bin"})
    np.testing.assert_array_equal(env.privileged_state(), before)  # the episode is intact
    only_place = ArmPickPlaceEnv(image_size=(16, 16), skills=("place",))
    try:
        with pytest.raises(ValueError, match="asks to stack"):
            only_place.reset(seed=5, options={"instruction": "stack the red cube on the blue cube"})
    finally:
        only_place.close()


def test_sampled_instructions_cover_both_skills_and_the_heldout_set(env):
    skills = set()
    for seed in range(12):
        _, info = env.reset(seed=seed, options={"instruction_set": "heldout"})
        skills.add(info["skill"])
        task = env.task
        assert parse_arm_instruction(info["instruction"]) == task
        heldout = {format_arm_instruction(t, task) for t in arm_templates(task.skill, "heldout")}
        assert info["instruction"] in heldout
    assert skills == {"place", "stack"}


# --------------------------------------------------------------------- rendering
def test_cameras_render_at_any_size_and_change_when_the_arm_moves(env):
    obs, _ = env.reset(seed=2)
    big = env.render_camera("scene", 480, 640)
    assert big.shape == (480, 640, 3) and big.dtype == np.uint8 and big.std() > 10
    assert env.render_camera("wrist", 96, 96).shape == (96, 96, 3)
    assert not np.array_equal(obs["pixels"]["scene"], obs["pixels"]["wrist"])
    moved = hold(obs)
    moved[0] += 0.5   # pan
    moved[1] -= 0.3   # lift the arm
    for _ in range(3):
        new, *_ = env.step(moved)
    for cam in CAMERA_NAMES:
        diff = np.abs(new["pixels"][cam].astype(int) - obs["pixels"][cam].astype(int)).mean()
        assert diff > 1.0, (cam, diff)
    with pytest.raises(ValueError, match="unknown camera"):
        env.render_camera("top", 32, 32)


def test_render_returns_the_scene_camera_at_render_size():
    env = ArmPickPlaceEnv(image_size=(24, 24), render_size=(60, 80), render_mode="rgb_array")
    try:
        obs, _ = env.reset(seed=0)
        assert env.render().shape == (60, 80, 3)
        assert obs["pixels"]["scene"].shape == (24, 24, 3)
    finally:
        env.close()


# --------------------------------------------------------------------- actions
def test_servos_track_joint_targets_and_the_gripper_command(env):
    obs, _ = env.reset(seed=4)
    target = np.append(HOME_QPOS + np.array([0.3, -0.2, 0.2, 0.1, -0.2, 0.5]), 0.5).astype(np.float32)
    for _ in range(8):
        obs, *_ = env.step(target)
    np.testing.assert_allclose(obs["agent_pos"][:6], target[:6], atol=0.01)
    assert obs["agent_pos"][6] == pytest.approx(0.04, abs=0.003)  # half open = 0.04 m between pads
    np.testing.assert_allclose(obs["agent_vel"][:6], 0.0, atol=0.05)


@pytest.mark.parametrize("bad,match", [
    (np.zeros(6), r"shape \(7,\)"),
    (np.zeros((1, 7)), r"shape \(7,\)"),
    (np.append(HOME_QPOS, np.nan), r"entries \[6\]"),
    (np.array([np.inf, *HOME_QPOS[1:], 1.0]), r"entries \[0\]"),
])
def test_bad_actions_raise_and_leave_the_state_unchanged(env, bad, match):
    env.reset(seed=1)
    before = env.privileged_state()
    with pytest.raises(ValueError, match=match):
        env.step(bad)
    np.testing.assert_array_equal(env.privileged_state(), before)


def test_targets_beyond_the_joint_limits_are_clipped_and_reported(env):
    obs, _ = env.reset(seed=1)
    action = hold(obs)
    action[0] = 10.0  # far beyond shoulder_pan's 2.9 rad
    action[6] = 1.5
    _, _, _, _, info = env.step(action)
    assert info["action_clipped"] is True
    assert env.data.ctrl[0] == pytest.approx(env.joint_upper[0])
    _, _, _, _, info = env.step(hold(obs))
    assert info["action_clipped"] is False


def test_constructor_rejects_bad_configuration():
    for kwargs, match in (({"num_cubes": 1}, "num_cubes"), ({"num_bins": 0}, "num_bins"),
                          ({"skills": ("push",)}, "skills"), ({"fps": 0}, "fps"), ({"fps": "30"}, "fps"),
                          ({"image_size": (8, 8)}, "image_size"), ({"instruction_set": "test"}, "instruction_set")):
        with pytest.raises(ValueError, match=match):
            ArmPickPlaceEnv(**kwargs)


# --------------------------------------------------------------------- kinematics
def test_ik_reaches_top_down_poses_across_the_workspace(kinematics):
    rng = np.random.default_rng(0)
    for _ in range(12):
        r = np.sqrt(rng.uniform(0.25**2, 0.53**2))
        bearing = rng.uniform(-0.96, 0.96)
        target = np.array([r * np.cos(bearing), r * np.sin(bearing), rng.uniform(0.02, 0.16)])
        yaw = np.pi + bearing + rng.uniform(-np.pi / 4, np.pi / 4)
        res = kinematics.ik(target, top_down_rotation(yaw), HOME_QPOS)
        assert res.converged, (target, yaw, res)
        pos, rot = kinematics.fk(res.qpos)
        np.testing.assert_allclose(pos, target, atol=1e-3)
        np.testing.assert_allclose(rot, top_down_rotation(yaw), atol=1e-2)
        assert np.all(res.qpos >= kinematics.lower) and np.all(res.qpos <= kinematics.upper)


def test_ik_reports_an_unreachable_target(kinematics):
    res = kinematics.ik([1.5, 0.0, 0.1], top_down_rotation(np.pi), HOME_QPOS)
    assert not res.converged and res.position_error > 0.5


def test_fk_matches_the_simulated_tcp(env, kinematics):
    obs, _ = env.reset(seed=0)
    site = env.data.site("tcp")
    pos, rot = kinematics.fk(obs["agent_pos"][:6])
    np.testing.assert_allclose(pos, site.xpos, atol=1e-9)
    np.testing.assert_allclose(rot, site.xmat.reshape(3, 3), atol=1e-9)


# --------------------------------------------------------------------- expert
def run_expert(env, expert, seed, options=None):
    env.reset(seed=seed, options=options)
    expert.reset()
    for t in range(1, 400):
        obs, _, terminated, truncated, info = env.step(expert.act(env.privileged_state().copy()))
        if terminated or truncated:
            return info, t
    raise AssertionError("episode never ended")


@pytest.mark.parametrize("seed", [0, 1, 2, 3])
def test_expert_succeeds_on_both_skills(seed):
    env = ArmPickPlaceEnv(image_size=(16, 16))
    expert = ArmScriptedExpert()
    try:
        for skill, text in (("place", None), ("stack", None)):
            env.reset(seed=seed)
            cubes, bins = env.cube_colours, env.bin_colours
            text = (f"put the {cubes[0]} cube in the {bins[-1]} bin" if skill == "place"
                    else f"stack the {cubes[1]} cube on the {cubes[-1]} cube")
            info, steps = run_expert(env, expert, seed, {"instruction": text})
            assert info["is_success"], (seed, text, info["distance"], expert.phase)
            # The success is real: the cube is where the instruction asked.
            cube = env.cube_position(info["target_cube"])
            if skill == "stack":
                base = env.cube_position(info["target"])
                assert np.hypot(*(cube[:2] - base[:2])) < 0.02 and 0.03 < cube[2] - base[2] < 0.05
            assert steps < 150
    finally:
        env.close()


def test_expert_with_dart_noise_still_succeeds_and_its_actions_differ():
    env = ArmPickPlaceEnv(image_size=(16, 16))
    try:
        clean, noisy = ArmScriptedExpert(), ArmScriptedExpert(noise_std=0.02, seed=1)
        env.reset(seed=7)
        state = env.privileged_state()
        a, b = clean.act(state), noisy.act(state)
        assert a[6] == b[6] and not np.allclose(a[:6], b[:6])
        assert np.all(b[:6] >= env.joint_lower) and np.all(b[:6] <= env.joint_upper)
        wins = sum(run_expert(env, ArmScriptedExpert(noise_std=0.02, seed=s), s)[0]["is_success"] for s in (7, 8))
        assert wins == 2
    finally:
        env.close()


def test_expert_rejects_a_foreign_state_vector():
    with pytest.raises(ValueError, match="arm privileged state"):
        ArmScriptedExpert().act(np.zeros(30))
    with pytest.raises(ValueError, match="noise_std"):
        ArmScriptedExpert(noise_std=-1.0)


def test_expert_approach_is_a_function_of_the_state_not_of_its_phase():
    """A policy without memory can copy the approach only if the expert's command there depends on the state
    alone: a fresh expert on the same state commands what the one mid-episode does (no hover point reached
    earlier, no threshold crossed in the past)."""
    env = ArmPickPlaceEnv(image_size=(16, 16))
    try:
        env.reset(seed=3)
        expert = ArmScriptedExpert(noise_std=0.02, seed=3)
        compared = 0
        for _ in range(150):
            state = env.privileged_state().copy()
            action = expert.act(state)
            if expert.phase in (expert.REACH, expert.DESCEND):
                fresh = ArmScriptedExpert()
                fresh.act(state)
                np.testing.assert_allclose(fresh.clean_action, expert.clean_action, atol=2e-3)
                compared += 1
            elif expert.phase == expert.LIFT:
                break
            env.step(action)
        assert compared > 5 and expert.phase == expert.LIFT
    finally:
        env.close()


def test_expert_gripper_delay_holds_changes_back_and_clean_action_is_the_command_without_noise():
    env = ArmPickPlaceEnv(image_size=(16, 16))
    try:
        env.reset(seed=7)
        expert = ArmScriptedExpert(noise_std=0.02, gripper_delay=0.9, seed=1)
        held = 0
        for _ in range(200):
            action = expert.act(env.privileged_state().copy())
            clean = expert.clean_action
            assert not np.allclose(action[:6], clean[:6])  # joint noise
            held += action[6] != clean[6]
            _, _, terminated, truncated, info = env.step(action)
            if terminated or truncated:
                break
        assert held >= 2 and info["is_success"]
        wins = sum(run_expert(env, ArmScriptedExpert(noise_std=0.02, gripper_delay=0.8, seed=s), s)[0]["is_success"]
                   for s in (8, 9))
        assert wins == 2
    finally:
        env.close()
    with pytest.raises(ValueError, match="gripper_delay"):
        ArmScriptedExpert(gripper_delay=1.0)
