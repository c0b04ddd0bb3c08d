"""Tests of the config-driven simulator backend (what the ROS sim-robot node calls).

Run: cd src/vla_sim && PYTHONPATH=. python -m pytest test -q
"""

from __future__ import annotations

import copy
import dataclasses
import importlib.util

import gymnasium as gym
import numpy as np
import pytest

from vla_sim.backends import CONFIG_KEYS, PRESETS, Frame, SimBackend, make_backend
from vla_sim.expert import ScriptedExpert



def _installed(module: str) -> bool:
    try:
        return importlib.util.find_spec(module) is not None
    except (ImportError, ValueError):
        return False


HAS_PUSHT = _installed("gym_pusht")
needs_pusht = pytest.mark.skipif(not HAS_PUSHT, reason="gym-pusht not installed (pip install gym-pusht)")
TABLETOP = ["tabletop", "tabletop_hard"]
ALL_PRESETS = TABLETOP + [pytest.param("pusht", marks=needs_pusht)]


def preset(name: str, **overrides) -> dict:
    cfg = copy.deepcopy(PRESETS[name])
    cfg.update(overrides)
    return cfg


@pytest.fixture
def backends():
    made: list[SimBackend] = []

    def make(config):
        b = make_backend(config)
        made.append(b)
        return b

    yield make
    for b in made:
        b.close()


# --------------------------------------------------------------------- a fake position-target env
class FakeTargetEnv(gym.Env):
    """Moves a point straight to the commanded absolute target (env units, x right / y down)."""

    metadata = {"render_modes": ["rgb_array"], "render_fps": 20}

    def __init__(self):
        self.observation_space = gym.spaces.Dict(
            {
                "pixels": gym.spaces.Box(0, 255, (24, 32, 3), np.uint8),
                "pos": gym.spaces.Box(0.0, 512.0, (2,), np.float64),
            }
        )
        self.action_space = gym.spaces.Box(0.0, 512.0, (2,), np.float32)
        self.pos = np.zeros(2)

    def _obs(self):
        return {"pixels": np.zeros((24, 32, 3), np.uint8), "pos": self.pos.copy()}

    def reset(self, *, seed=None, options=None):
        super().reset(seed=seed)
        self.pos = np.array([300.0, 200.0])
        return self._obs(), {}

    def step(self, action):
        self.pos = np.asarray(action, np.float64).copy()
        return self._obs(), 0.0, False, False, {}


FAKE_ID = "VlaSimFakeTarget-v0"
if FAKE_ID not in gym.registry:
    gym.register(id=FAKE_ID, entry_point=FakeTargetEnv)

FAKE_CONFIG = {
    "env_id": FAKE_ID,
    "joint_position_key": "pos",
    "action_mode": "position_target",
    "units_per_meter": 1000.0,
    "env_origin": [256.0, 256.0],
    "env_to_robot": [[0.0, -1.0], [-1.0, 0.0]],
    "max_speed": 0.2,
    "joint_names": ["gantry_x", "gantry_y"],
    "instruction": "go somewhere",
}


# --------------------------------------------------------------------- construction / presets
@pytest.mark.parametrize("name", ALL_PRESETS)
def test_presets_build_and_produce_frames_in_robot_units(name, backends):
    b = backends(preset(name))
    assert b.joint_names == ("gantry_x", "gantry_y")
    assert b.action_names == ("gantry_x_velocity", "gantry_y_velocity")
    assert b.fps == pytest.approx(10.0)
    np.testing.assert_allclose(b.action_high, [0.25, 0.25])
    np.testing.assert_allclose(b.action_low, [-0.25, -0.25])
    frame = b.reset(seed=0)
    assert isinstance(frame, Frame)
    assert frame.image.dtype == np.uint8 and frame.image.shape == b.image_shape == (96, 96, 3)
    assert frame.joint_positions.dtype == np.float64 and frame.joint_positions.shape == (2,)
    assert frame.joint_velocities.dtype == np.float64 and frame.joint_velocities.shape == (2,)
    assert np.all(np.abs(frame.joint_positions) <= 0.26)  # metres around the table centre
    assert isinstance(b.instruction, str) and b.instruction
    for _ in range(3):
        frame = b.step(np.array([0.1, 0.0]))
    assert not frame.terminated and not frame.truncated
    with pytest.raises(dataclasses.FrozenInstanceError):
        frame.reward = 2.0  # type: ignore[misc]


def test_make_backend_does_not_mutate_presets(backends):
    before = copy.deepcopy(PRESETS)
    backends(PRESETS["tabletop"]).reset(seed=0, instruction=None)
    assert PRESETS == before


# --------------------------------------------------------------------- action validation
BAD_ACTIONS = [
    np.zeros(3),
    np.zeros((2, 1)),
    np.zeros(1),
    np.float64(0.1),
    [np.nan, 0.0],
    [0.0, -np.inf],
    ["a", "b"],
    None,
]


@pytest.mark.parametrize("action", BAD_ACTIONS, ids=repr)
@pytest.mark.parametrize("name", ["tabletop", pytest.param("pusht", marks=needs_pusht)])
def test_bad_actions_raise_value_error_and_leave_the_env_unchanged(name, action, backends):
    b = backends(preset(name))
    b.reset(seed=1)
    b.step(np.array([0.05, -0.05]))
    state = b.privileged_state()
    agent = np.array(getattr(b.env.unwrapped, "agent", None).position) if name == "pusht" else None
    steps = b.steps
    with pytest.raises(ValueError) as err:
        b.step(action)
    assert "(2,)" in str(err.value)  # names the expected shape
    assert b.steps == steps
    np.testing.assert_array_equal(b.privileged_state(), state)
    if agent is not None:
        np.testing.assert_array_equal(np.array(b.env.unwrapped.agent.position), agent)
    # The backend is still usable afterwards.
    b.step(np.zeros(2))


def test_step_before_reset_raises(backends):
    b = backends(preset("tabletop"))
    with pytest.raises(RuntimeError):
        b.step(np.zeros(2))


def test_out_of_range_actions_are_clipped_to_the_limits(backends):
    b = backends(preset("tabletop"))
    b.reset(seed=0)
    frame = b.step(np.array([5.0, -5.0]))
    # The pusher may be stopped by a block or the edge, but never exceeds the limit.
    assert np.all(np.abs(frame.joint_velocities) <= 0.25 + 1e-9)


# --------------------------------------------------------------------- config -> behaviour
@pytest.mark.parametrize("size", [(48, 64), (120, 90)])
def test_image_shape_follows_config_tabletop(size, backends):
    b = backends(preset("tabletop", env_kwargs={"image_size": list(size)}))
    assert b.image_shape == (*size, 3)
    assert b.reset(seed=0).image.shape == (*size, 3)
    assert b.step(np.zeros(2)).image.shape == (*size, 3)


@needs_pusht
def test_image_shape_follows_config_pusht(backends):
    cfg = preset("pusht")
    cfg["env_kwargs"].update(observation_width=128, observation_height=64)
    b = backends(cfg)
    assert b.image_shape == (64, 128, 3)
    assert b.reset(seed=0).image.shape == (64, 128, 3)


@pytest.mark.parametrize("where", ["config", "env_kwargs"])
def test_time_limit_truncates(where, backends):
    cfg = preset("tabletop")
    if where == "config":
        cfg["max_episode_steps"] = 3
    else:
        cfg["env_kwargs"]["max_episode_steps"] = 3
    b = backends(cfg)
    assert b.max_episode_steps == 3
    b.reset(seed=0)
    flags = [b.step(np.zeros(2)).truncated for _ in range(3)]
    assert flags == [False, False, True]


def test_velocity_mode_reports_metres_and_metres_per_second(backends):
    b = backends(preset("tabletop", env_kwargs={"num_blocks": 1, "num_zones": 1}))
    b.reset(seed=0)
    b.env.unwrapped.set_state(agent_pos=[0.0, 0.0], block_positions=[[0.2, 0.2]])
    frame = b.step(np.array([0.1, -0.2]))
    np.testing.assert_allclose(frame.joint_positions, [0.01, -0.02], atol=1e-12)
    np.testing.assert_allclose(frame.joint_velocities, [0.1, -0.2], atol=1e-9)


def test_velocity_mode_frame_mapping_is_configuration(backends):
    """Swap the axes by config only: robot x is env y and vice versa."""
    cfg = preset("tabletop", env_kwargs={"num_blocks": 1, "num_zones": 1}, env_to_robot=[[0, 1], [1, 0]])
    b = backends(cfg)
    b.reset(seed=0)
    b.env.unwrapped.set_state(agent_pos=[0.05, -0.03], block_positions=[[0.2, 0.2]])
    frame = b.step(np.array([0.1, 0.0]))  # robot +x = env +y
    env_pos = b.env.unwrapped.privileged_state()[11:13]
    np.testing.assert_allclose(env_pos, [0.05, -0.02], atol=1e-12)
    np.testing.assert_allclose(frame.joint_positions, [-0.02, 0.05], atol=1e-12)
    np.testing.assert_allclose(frame.joint_velocities, [0.1, 0.0], atol=1e-9)


def test_position_target_mode_integrates_velocity_in_env_units(backends):
    b = backends(FAKE_CONFIG)
    assert b.fps == 20.0 and b.image_shape == (24, 32, 3)
    np.testing.assert_allclose(b.action_high, [0.2, 0.2])
    frame = b.reset(seed=0)
    # env (300, 200) px -> robot x = -(200 - 256) / 1000, y = -(300 - 256) / 1000
    np.testing.assert_allclose(frame.joint_positions, [0.056, -0.044])
    np.testing.assert_array_equal(frame.joint_velocities, [0.0, 0.0])
    frame = b.step(np.array([0.1, 0.0]))  # +x robot = up in the image = env y decreasing
    np.testing.assert_allclose(b.env.unwrapped.pos, [300.0, 195.0])
    np.testing.assert_allclose(frame.joint_positions, [0.061, -0.044])
    np.testing.assert_allclose(frame.joint_velocities, [0.1, 0.0], atol=1e-9)  # finite difference
    frame = b.step(np.array([0.0, 1.0]))  # clipped to 0.2 m/s: 10 px left in one 0.05 s step
    np.testing.assert_allclose(b.env.unwrapped.pos, [290.0, 195.0])
    np.testing.assert_allclose(frame.joint_velocities, [0.0, 0.2], atol=1e-9)


# --------------------------------------------------------------------- config errors
def test_unknown_config_key_lists_the_accepted_keys():
    with pytest.raises(ValueError) as err:
        make_backend(preset("tabletop", image_keys="pixels"))
    assert "image_keys" in str(err.value)
    for key in CONFIG_KEYS:
        assert key in str(err.value)


@pytest.mark.parametrize(
    "config,match",
    [
        ({}, "env_id"),
        ({"env_id": "vla_sim/NoSuchEnv-v0"}, "unknown env id"),
        ({"env_id": "no_such_pkg_xyz/Env-v0"}, "cannot be imported"),
        ({"env_id": "no_such_pkg_xyz/Env-v0", "install_hint": "pip install xyz-envs"}, "pip install xyz-envs"),
        ({"env_id": "gym_pusht/PushT-v0", "import_module": "gym_pusht_missing_xyz"}, "pip install gym-pusht"),
        ({"env_id": "vla_sim/TabletopPush-v0", "action_mode": "torque"}, "action_mode"),
        ({"env_id": "vla_sim/TabletopPush-v0", "units_per_meter": -1.0}, "units_per_meter"),
        ({"env_id": "vla_sim/TabletopPush-v0", "env_kwargs": {"colour": "red"}}, "env_kwargs"),
        ({"env_id": "vla_sim/TabletopPush-v0", "joint_names": ["a", "b", "c"]}, "joint_names"),
        ({"env_id": "vla_sim/TabletopPush-v0", "env_to_robot": [[1, 1], [0, 1]]}, "orthonormal"),
        ({"env_id": "vla_sim/TabletopPush-v0", "expert": "vla_sim.expert:ScriptedExpert"},
         "unknown scripted expert 'vla_sim.expert:ScriptedExpert'; accepted: arm, tabletop"),
        ({"env_id": "vla_sim/TabletopPush-v0", "expert": "tabletp"}, "did you mean 'tabletop'"),
        ({"env_id": "vla_sim/TabletopPush-v0", "joint_names": "gantry_x"}, "joint_names"),
        ({"env_id": "vla_sim/TabletopPush-v0", "instruction": 3}, "instruction"),
        ("not a dict", "must be a dict"),
    ],
)
def test_bad_configs_raise_value_error(config, match):
    with pytest.raises(ValueError, match=match):
        make_backend(config)


def test_missing_observation_key_is_reported(backends):
    b = backends(preset("tabletop", joint_position_key="qpos"))
    with pytest.raises(ValueError, match="qpos"):
        b.reset(seed=0)


# --------------------------------------------------------------------- instructions
def test_reset_instruction_sets_the_task(backends):
    b = backends(preset("tabletop"))
    frame = b.reset(seed=2)
    block, zone = frame.info["block_colours"][0], frame.info["zone_colours"][-1]
    text = f"could you guide the {block} piece toward the {zone} marker and leave it there?"
    frame = b.reset(seed=2, instruction=text)
    assert b.instruction == text == frame.info["instruction"]
    assert (frame.info["target_block"], frame.info["target_zone"]) == (block, zone)
    # None: the env samples one again.
    b.reset(seed=2)
    assert b.instruction != text


def test_configured_instruction_is_used_at_every_reset(backends):
    b0 = backends(preset("tabletop"))
    info = b0.reset(seed=4).info
    text = f"push the {info['block_colours'][1]} block into the {info['zone_colours'][0]} zone"
    b = backends(preset("tabletop", instruction=text))
    assert b.reset(seed=4).info["instruction"] == text
    assert b.instruction == text


def test_instruction_with_absent_colour_raises_and_keeps_episode(backends):
    b = backends(preset("tabletop"))
    frame = b.reset(seed=0)
    absent = next(c for c in ("red", "green", "blue", "yellow") if c not in frame.info["block_colours"])
    state, instruction = b.privileged_state(), b.instruction
    with pytest.raises(ValueError, match=absent):
        b.reset(seed=0, instruction=f"push the {absent} block into the teal zone")
    np.testing.assert_array_equal(b.privileged_state(), state)
    assert b.instruction == instruction


def test_fixed_task_env_rejects_other_instructions(backends):
    b = backends(FAKE_CONFIG)
    b.reset(seed=0, instruction="go somewhere")  # the configured text is fine
    assert b.instruction == "go somewhere"
    with pytest.raises(ValueError, match="fixed task"):
        b.reset(seed=0, instruction="push the red block into the teal zone")


# --------------------------------------------------------------------- determinism / expert
@pytest.mark.parametrize("name", TABLETOP)
def test_same_seed_same_frames_through_the_backend(name, backends):
    frames = []
    for _ in range(2):
        b = backends(preset(name))
        run = [b.reset(seed=8)]
        run += [b.step(np.array([0.2, -0.1])) for _ in range(15)]
        frames.append(run)
    for f1, f2 in zip(*frames):
        np.testing.assert_array_equal(f1.image, f2.image)
        np.testing.assert_array_equal(f1.joint_positions, f2.joint_positions)
        assert f1.reward == f2.reward and f1.info["instruction"] == f2.info["instruction"]


@pytest.mark.parametrize("name", TABLETOP)
def test_expert_through_the_backend_succeeds(name, backends):
    b = backends(preset(name, env_kwargs={"image_size": [16, 16]}))
    assert b.has_expert
    expert = b.make_expert()
    assert isinstance(expert, ScriptedExpert)
    successes = 0
    for seed in range(20):
        frame = b.reset(seed=seed)
        expert.reset()
        while not (frame.terminated or frame.truncated):
            frame = b.step(expert.act(b.privileged_state()))
        assert frame.is_success == frame.terminated
        successes += frame.is_success
    assert successes >= 19


def test_envs_without_privileged_state_have_no_expert(backends):
    b = backends(FAKE_CONFIG)
    assert not b.has_expert
    assert b.privileged_state().shape == (0,)
    with pytest.raises(ValueError, match="expert"):
        b.make_expert()


# --------------------------------------------------------------------- the real PushT adapter
@needs_pusht
def test_pusht_adapter_units_frame_and_velocity(backends):
    b = backends(preset("pusht", max_episode_steps=6))
    assert not b.has_expert and b.privileged_state().shape == (0,)
    frame = b.reset(seed=3)
    env_pos = np.asarray(frame.info["pos_agent"], np.float64)
    np.testing.assert_allclose(
        frame.joint_positions, [-(env_pos[1] - 256.0) / 1000.0, -(env_pos[0] - 256.0) / 1000.0]
    )
    positions = [frame.joint_positions]
    for i in range(6):
        frame = b.step(np.array([0.2, 0.0]))  # robot +x = image up = env y decreasing
        positions.append(frame.joint_positions)
        np.testing.assert_allclose(frame.joint_velocities, (positions[-1] - positions[-2]) * b.fps)
        assert frame.truncated == (i == 5)
    new_env_pos = np.asarray(frame.info["pos_agent"], np.float64)
    assert new_env_pos[1] < env_pos[1] - 10.0 and abs(new_env_pos[0] - env_pos[0]) < 1.0
    assert positions[-1][0] > positions[0][0] + 0.01
    assert frame.image.shape == (96, 96, 3) and frame.image.dtype == np.uint8
    assert b.instruction == "push the T-shaped block onto the target"
    with pytest.raises(ValueError, match="fixed task"):
        b.reset(seed=0, instruction="push the red block into the teal zone")


# ---- the arm: absolute joint positions, the gripper as a joint, two cameras ----------------------------------
ARM_JOINTS = ("shoulder_pan", "shoulder_lift", "elbow", "forearm_roll", "wrist_pitch", "wrist_roll", "gripper")


@pytest.fixture(scope="module")
def arm_backend():
    from vla_sim.backends import PRESETS as presets
    b = make_backend(presets["arm"])
    yield b
    b.close()


def test_the_arm_takes_joint_positions_in_the_units_of_its_joint_states(arm_backend):
    b = arm_backend
    assert b.position_controlled and b.joint_names == b.action_names == ARM_JOINTS
    assert b.camera_names == ("scene", "wrist") and b.image_shape == (96, 96, 3)
    # Limits: the MJCF's joint ranges (rad) and the gripper opening 0..0.08 m (the env's 0..1 / 12.5).
    np.testing.assert_allclose(b.action_low, [-2.9, -1.9, -2.6, -2.9, -2.1, -2.9, 0.0], atol=1e-6)
    np.testing.assert_allclose(b.action_high, [2.9, 1.9, 2.6, 2.9, 2.1, 2.9, 0.08], atol=1e-6)
    frame = b.reset(seed=3)
    assert set(frame.images) == {"scene", "wrist"} and frame.image is frame.images["scene"]
    assert not np.array_equal(frame.images["scene"], frame.images["wrist"])
    # Holding the measured positions keeps the arm (and the open gripper) where it is.
    hold = b.hold_action()
    for _ in range(5):
        frame = b.step(hold)
    np.testing.assert_allclose(frame.joint_positions, hold, atol=0.01)
    # A gripper target of 0.02 m (a quarter open) is a quarter open.
    target = hold.copy()
    target[6] = 0.02
    for _ in range(10):
        frame = b.step(target)
    assert frame.joint_positions[6] == pytest.approx(0.02, abs=0.004)


def test_the_arm_expert_speaks_the_backends_command_units(arm_backend):
    b = arm_backend
    b.reset(seed=0)
    expert = b.make_expert()
    expert.reset()
    action = expert.act(b.privileged_state())
    assert action.shape == (7,) and action[6] == pytest.approx(0.08)  # open: the opening in m, not the env's 1
    expert.noise_std = 0.01
    assert expert.noise_std == 0.01


@pytest.mark.parametrize("change,fragment", [
    ({"action_scale": [1.0] * 6}, "action_scale must be 7 finite numbers > 0"),
    ({"action_scale": [1.0] * 6 + [0.0]}, "action_scale must be 7 finite numbers > 0"),
    ({"cameras": ["scene", "side"]}, "cameras ['side'] are not among the cameras of 'vla_sim/ArmPickPlace-v0': ['scene', 'wrist']"),
    ({"env_to_robot": [[1.0]]}, "remove env_origin/env_to_robot"),
    ({"action_mode": "velocity"}, "action_scale applies to action_mode 'position'"),
])
def test_a_bad_arm_config_names_the_key(change, fragment):
    from vla_sim.backends import PRESETS as presets
    with pytest.raises(ValueError) as err:
        make_backend({**presets["arm"], **change})
    assert fragment in str(err.value)
