"""Domain randomisation in the MuJoCo arm: every range changes what is rendered or simulated, draws are seeded and
leave the layout and task alone, zero ranges are the nominal scene bit for bit, and the scripted expert still
succeeds."""
import math

import mujoco
import numpy as np
import pytest

from vla_sim.arm_expert import ArmScriptedExpert
from vla_sim.envs.arm import CAMERA_NAMES, MAX_DISTRACTORS, ArmPickPlaceEnv
from vla_sim.randomization import PRESETS, RandomizationRanges


@pytest.fixture(scope="module")
def nominal():
    env = ArmPickPlaceEnv()
    obs, _ = env.reset(seed=4)
    yield env, obs
    env.close()


def _reset(ranges, seed=4, **kwargs):
    env = ArmPickPlaceEnv(randomization=ranges, **kwargs)
    obs, _ = env.reset(seed=seed)
    return env, obs


def _changed(a, b, camera):
    """The fraction of ``camera``'s pixels that differ between observations ``a`` and ``b``."""
    return float(np.any(a["pixels"][camera] != b["pixels"][camera], axis=-1).mean())


@pytest.mark.parametrize("ranges", [None, "off", RandomizationRanges(), PRESETS["full"].scaled(0.0)])
def test_zero_ranges_are_the_nominal_scene_bit_for_bit(nominal, ranges):
    env, obs = _reset(ranges)
    for cam in CAMERA_NAMES:
        np.testing.assert_array_equal(obs["pixels"][cam], nominal[1]["pixels"][cam])
    np.testing.assert_array_equal(env.data.qpos, nominal[0].data.qpos)
    env.close()


@pytest.mark.parametrize("field, value, cameras", [
    ("brightness", 0.5, CAMERA_NAMES), ("colour_temperature", 3000.0, CAMERA_NAMES), ("shade", 1.0, CAMERA_NAMES),
    ("table_texture", 1.0, ("scene",)), ("distractors", 8, ("scene",)), ("camera_shift", 0.05, ("scene",)),
    ("camera_rotation", 20.0, ("scene",)), ("camera_zoom", 0.3, ("scene",)),
])
def test_each_visual_range_changes_the_image_is_seeded_and_keeps_the_layout_and_task(nominal, field, value, cameras):
    env, obs = _reset({field: value})
    assert env.instruction == nominal[0].instruction
    np.testing.assert_array_equal(env.data.qpos, nominal[0].data.qpos)  # the layout is the seed's
    for cam in cameras:
        assert _changed(obs, nominal[1], cam) > 0.005, (field, cam)
    again, _ = env.reset(seed=4)
    for cam in CAMERA_NAMES:
        np.testing.assert_array_equal(again["pixels"][cam], obs["pixels"][cam])
    if field.startswith("camera"):  # the wrist camera is mounted: it does not move with the scene camera
        np.testing.assert_array_equal(obs["pixels"]["wrist"], nominal[1]["pixels"]["wrist"])
    env.close()


def test_a_randomised_episode_leaves_nothing_behind_for_the_next(nominal):
    env, _ = _reset("full")
    obs, _ = env.reset(seed=4, options={"randomization": "off"})
    for cam in CAMERA_NAMES:
        np.testing.assert_array_equal(obs["pixels"][cam], nominal[1]["pixels"][cam])
    env.close()


def test_distractors_lie_clear_of_the_cubes_and_bins_in_colours_no_instruction_names():
    env, _ = _reset({"distractors": 8})
    placed = [i for i in range(MAX_DISTRACTORS) if env.data.mocap_pos[env._distractor_mocap[i], 2] > -0.1]
    assert len(placed) >= 3
    state = env.decode_privileged(env.privileged_state())
    for i in placed:
        p = env.data.mocap_pos[env._distractor_mocap[i], :2]
        assert min(np.hypot(*(p - c[:2])) for c in state.cube_pos) >= 0.06
        assert min(np.max(np.abs(p - b)) for b in state.bin_pos) >= 0.09
        rgb = tuple(np.rint(env.model.geom_rgba[env._distractor_geoms[i], :3] * 255).astype(int))
        assert rgb in {(128, 128, 128), (121, 85, 61), (250, 250, 250)}
    env.close()


def test_friction_and_mass_are_drawn_per_cube_and_seeded():
    env, _ = _reset({"friction_slide": 0.2, "mass": 0.9})
    geoms = [env._cube_geoms[c] for c in env._cube_cids]
    bodies = [env._cube_bodies[c] for c in env._cube_cids]
    friction = env.model.geom_friction[geoms, 0].copy()
    mass = env.model.body_mass[bodies].copy()
    assert np.all(friction < 1.0) and len(set(friction.round(6))) == len(geoms)
    slide = np.array(env.scene.slide)
    np.testing.assert_allclose(friction, np.minimum(1.0, 0.25 / (2 * 9.81 * slide)))
    np.testing.assert_allclose(mass, 0.05 * np.array(env.scene.mass))
    env.reset(seed=4)
    np.testing.assert_array_equal(env.model.geom_friction[geoms, 0], friction)
    env.reset(seed=4, options={"randomization": "off"})
    assert np.all(env.model.geom_friction[geoms, 0] == 1.0) and np.all(env.model.body_mass[bodies] == 0.05)
    env.close()


def test_a_slippery_cube_slides_further_when_pushed():
    """The same push across the table: a cube on low friction travels further than the nominal one."""
    def pushed(ranges):
        env, _ = _reset(ranges)
        cid = env._cube_cids[0]
        a, v = env._cube_qadr[cid], env._cube_dadr[cid]
        start = env.data.qpos[a:a + 2].copy()
        env.data.qvel[v:v + 3] = [0.5, 0.0, 0.0]  # released at the reference speed
        hold = np.append(env.data.qpos[env._arm_qadr], 1.0)
        for _ in range(10):
            env.step(hold)
        travelled = float(np.hypot(*(env.data.qpos[a:a + 2] - start)))
        env.close()
        return travelled
    assert pushed({"friction_slide": 0.2}) > 2 * pushed(None)


def test_latency_delays_the_joint_targets_by_the_drawn_steps():
    env, obs = _reset({"latency": 10}, seed=2)
    steps = env.scene.latency
    assert steps >= 1
    target = obs["agent_pos"][:6] + 0.3
    held = env.data.ctrl[:6].copy()
    for _ in range(steps):
        env.step(np.append(target, 1.0))
        np.testing.assert_allclose(env.data.ctrl[:6], held)  # the idle action holds the reset pose
    env.step(np.append(target, 1.0))
    np.testing.assert_allclose(env.data.ctrl[:6], np.clip(target, env.joint_lower, env.joint_upper))
    env.close()


def test_the_scene_camera_turns_about_its_optical_axis_and_zooms():
    env, _ = _reset({"camera_rotation": 30.0, "camera_zoom": 0.5})
    cam = env._scene_cam
    shift_x, shift_y, degrees, zoom = env.scene.camera
    nominal = env._nominal
    axes = np.zeros(9)
    mujoco.mju_quat2Mat(axes, env.model.cam_quat[cam])
    axes0 = np.zeros(9)
    mujoco.mju_quat2Mat(axes0, nominal["cam_quat"][cam])
    np.testing.assert_allclose(axes.reshape(3, 3)[:, 2], axes0.reshape(3, 3)[:, 2], atol=1e-9)  # same axis
    turned = math.degrees(math.atan2(np.dot(np.cross(axes0.reshape(3, 3)[:, 0], axes.reshape(3, 3)[:, 0]),
                                            axes0.reshape(3, 3)[:, 2]),
                                     np.dot(axes0.reshape(3, 3)[:, 0], axes.reshape(3, 3)[:, 0])))
    assert turned == pytest.approx(degrees, abs=1e-6)
    tan_ratio = math.tan(math.radians(nominal["cam_fovy"][cam]) / 2) / math.tan(
        math.radians(env.model.cam_fovy[cam]) / 2)
    assert tan_ratio == pytest.approx(zoom, rel=1e-9)
    env.close()


def test_the_expert_still_succeeds_under_the_full_preset():
    env = ArmPickPlaceEnv(randomization="full")
    expert = ArmScriptedExpert()
    successes = 0
    for seed in range(6):
        env.reset(seed=seed)
        expert.reset()
        while True:
            _, _, terminated, truncated, info = env.step(expert.act(env.privileged_state()))
            if terminated or truncated:
                break
        successes += info["is_success"]
    env.close()
    assert successes >= 5
