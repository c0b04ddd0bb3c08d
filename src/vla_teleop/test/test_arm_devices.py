"""Arm teleop without ROS: the end-effector jog (damped least squares on the Jacobian of the arm's own MJCF), the
contract's limits and mode, and the leader arm's joint mapping.

Tool positions are checked with vla_sim's ArmKinematics (the simulator's kinematics), not with the jog's own
model, so a wrong chain, frame or sign in the jog fails here."""
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest

from vla_core.contract import RobotContract
from vla_sim.envs.arm_kinematics import ARM_MJCF_PATH, HOME_QPOS, ArmKinematics
from vla_teleop.arm_jog import ArmJoyDevice, ArmKeyboardDevice, EndEffectorJog, dls_step
from vla_core.kinematics import ArmModel, rotation_matrix, rotation_vector
from vla_teleop.joint_commands import JointLimits
from vla_teleop.leader_arm import LeaderArmDevice, LeaderMapping, LeaderMismatch

WS = Path(__file__).resolve().parents[3]
CONTRACT = RobotContract.from_yaml(WS / "params" / "robots" / "sim_arm.yaml")
NAMES = CONTRACT.action.names  # six arm joints, then the gripper
PERIOD = 0.1
SIM = ArmKinematics()


def make_jog(action=CONTRACT.action) -> EndEffectorJog:
    model = ArmModel(ARM_MJCF_PATH, "tcp", action.names, exclude=("gripper",))
    return EndEffectorJog(model, JointLimits.from_action(action), PERIOD, gripper=action.names.index("gripper"))


def start(offset=(0.0,) * 6, gripper=0.04) -> np.ndarray:
    return np.r_[HOME_QPOS + np.array(offset), gripper]


def run(jog, q, linear, angular=(0, 0, 0), gripper_rate=0.0, ticks=20):
    """``ticks`` jog steps on an arm that reaches every target (measured = last target); the targets."""
    out = []
    for _ in range(ticks):
        q = jog.step(q, np.array(linear, float), np.array(angular, float), gripper_rate)
        out.append(q)
    return np.array(out)


@pytest.mark.parametrize("offset", [(0, 0, 0, 0, 0, 0), (0.3, -0.2, 0.2, 0.1, -0.1, 0.4), (-0.5, 0.3, -0.3, 0, 0.2, 0)])
@pytest.mark.parametrize("axis", [0, 1, 2])
@pytest.mark.parametrize("sign", [1.0, -1.0])
def test_a_cartesian_jog_moves_the_tool_along_that_axis_and_keeps_its_orientation(offset, axis, sign):
    jog, q0 = make_jog(), start(offset)
    p0, r0 = SIM.fk(q0[:6])
    v = np.zeros(3)
    v[axis] = sign * 0.05
    targets = run(jog, q0, v, ticks=20)  # 2 s at 0.05 m/s: 0.1 m
    p1, r1 = SIM.fk(targets[-1][:6])
    expected = p0 + v * 20 * PERIOD
    np.testing.assert_allclose(p1, expected, atol=2e-3)
    assert np.linalg.norm(rotation_vector(r1 @ r0.T)) < np.radians(0.5)
    # Every tick moved the tool about one step's worth along the axis: a straight line, not a detour.
    steps = np.diff([SIM.fk(q[:6])[0] for q in np.vstack([q0, targets])], axis=0)
    assert np.all(sign * steps[:, axis] > 0.7 * 0.05 * PERIOD)
    assert np.all(np.abs(np.delete(steps, axis, axis=1)) < 1e-3)
    assert targets[-1][6] == q0[6]  # the gripper stays where it was
    assert jog.limits.commands_clipped == 0


def test_an_angular_jog_turns_the_tool_about_the_base_axis_in_place():
    jog, q0 = make_jog(), start()
    p0, r0 = SIM.fk(q0[:6])
    targets = run(jog, q0, (0, 0, 0), (0, 0, 0.3), ticks=10)  # yaw 0.3 rad
    p1, r1 = SIM.fk(targets[-1][:6])
    np.testing.assert_allclose(rotation_vector(r1 @ r0.T), [0, 0, 0.3], atol=0.01)
    np.testing.assert_allclose(p1, p0, atol=2e-3)


def test_a_jog_that_would_leave_a_joint_limit_is_clipped_and_counted():
    # shoulder_pan may turn 0.02 rad more; jogging left (+y) turns it positive.
    q0 = start()
    high = list(CONTRACT.action.high)
    high[0] = q0[0] + 0.02
    jog = make_jog(replace(CONTRACT.action, high=tuple(high)))
    targets = run(jog, q0, (0, 0.05, 0), ticks=20)
    assert np.all(targets[:, 0] <= high[0] + 1e-12)
    assert np.all((targets >= np.array(CONTRACT.action.low)) & (targets <= np.array(high)))
    assert jog.limits.clipped["shoulder_pan"] > 0 and jog.limits.commands_clipped > 0
    assert set(jog.limits.clipped) == {"shoulder_pan"}


def test_joint_steps_stay_within_the_contracts_max_velocity():
    jog, q0 = make_jog(), start()
    fast = run(jog, q0, (0.0, 0.0, -1.0), ticks=5)  # 1 m/s down: far beyond what the joints may do in a tick
    steps = np.abs(np.diff(np.vstack([q0, fast]), axis=0))[:, :6]
    assert np.all(steps <= np.array(CONTRACT.action.max_velocity[:6]) * PERIOD + 1e-9)


def test_the_gripper_moves_at_its_rate_stops_at_its_limits_and_keeps_its_target_across_jogs():
    jog, q0 = make_jog(), start(gripper=0.07)
    opened = run(jog, q0, (0, 0, 0), gripper_rate=0.04, ticks=5)
    np.testing.assert_allclose(opened[:, 6], [0.074, 0.078, 0.08, 0.08, 0.08])
    assert jog.limits.clipped["gripper"] == 3
    closed = run(jog, opened[-1], (0, 0, 0), gripper_rate=-0.04, ticks=30)
    assert closed[-1][6] == 0.0
    jog.release()  # the operator lets go holding a cube 0.03 m wide: the fingers stay commanded shut
    held = jog.step(np.r_[closed[-1][:6], 0.03], np.zeros(3), np.zeros(3))
    assert held[6] == 0.0


def test_the_target_never_runs_further_than_max_lead_ahead_of_the_measured_joints():
    jog, q0 = make_jog(), start()
    q = q0
    for _ in range(40):  # the arm does not move at all (blocked): measured stays q0
        q = jog.step(q0, np.array([0.0, 0.05, 0.0]), np.zeros(3), 0.0, max_lead=0.1)
    assert np.all(np.abs(q[:6] - q0[:6]) <= 0.1 + np.array(CONTRACT.action.max_velocity[:6]) * PERIOD)


def test_delta_mode_sends_the_increment_from_the_measured_joints():
    action = replace(CONTRACT.action, mode="delta", low=(-0.05,) * 7, high=(0.05,) * 7)
    jog = make_jog(action)
    assert jog.lower[0] == -2.9 and jog.upper[5] == 2.9  # positions: the model's joint ranges
    kb = ArmKeyboardDevice(jog=jog)
    q0 = start()
    kb.observe_joints(q0, now=0.0)
    assert kb.press("r", now=0.0)  # up
    inc = kb.command(0.05)
    target = jog._q
    np.testing.assert_allclose(inc, np.clip(target - q0, -0.05, 0.05))
    assert np.any(inc[:6] != 0) and inc[6] == 0
    p0, p1 = SIM.fk(q0[:6])[0], SIM.fk((q0 + inc)[:6])[0]
    assert p1[2] - p0[2] == pytest.approx(0.05 * PERIOD, abs=5e-4)
    # The gripper (no model joint) closes by at most one increment beyond the measured opening, never winds up.
    for t in np.arange(30) * PERIOD:  # 3 s closing at 0.04 m/s on fingers that do not move (a cube)
        kb.press(",", t)
        kb.observe_joints(q0, t)
        inc = kb.command(t)
    assert inc[6] == pytest.approx(-0.05) and jog.limits.clipped["gripper"] > 0
    kb.press(".", 3.0)  # opening starts at once
    kb.observe_joints(q0, 3.0)
    assert kb.command(3.0)[6] == pytest.approx(-0.05 + 0.04 * PERIOD)


def test_the_keyboard_commands_only_while_a_key_is_held_and_joint_states_are_fresh():
    kb = ArmKeyboardDevice(jog=make_jog(), linear_speed=0.05, hold_time=0.5, state_timeout=0.5)
    q0 = start()
    assert kb.press("w", 0.0) and kb.command(0.1) is None  # no joint_states yet
    kb.observe_joints(q0, 0.1)
    cmd = kb.command(0.2)
    assert cmd is not None and SIM.fk(cmd[:6])[0][0] > SIM.fk(q0[:6])[0][0]
    assert kb.command(0.7) is None  # released (hold_time)
    assert not kb.press("x", 0.7)
    kb.observe_joints(q0, 0.8)
    kb.press(" ", 0.8)  # space: held, engaged, no motion
    np.testing.assert_allclose(SIM.fk(kb.command(0.85)[:6])[0], SIM.fk(q0[:6])[0], atol=1e-3)
    assert kb.command(1.4) is None  # joint_states 0.6 s old
    with pytest.raises(ValueError, match="need 7 finite values"):
        kb.observe_joints(q0[:6], 1.0)
    with pytest.raises(ValueError, match="need 7 finite values"):
        kb.observe_joints(np.r_[q0[:6], np.nan], 1.0)


@pytest.mark.parametrize("key,axis,sign", [("w", 0, 1), ("s", 0, -1), ("a", 1, 1), ("d", 1, -1), ("r", 2, 1),
                                           ("f", 2, -1), ("\x1b[A", 0, 1), ("\x1b[C", 1, -1)])
def test_keys_jog_the_tool_along_base_link_axes(key, axis, sign):
    kb = ArmKeyboardDevice(jog=make_jog(), linear_speed=0.05)
    q0 = start()
    kb.observe_joints(q0, 0.0)
    kb.press(key, 0.0)
    d = SIM.fk(kb.command(0.1)[:6])[0] - SIM.fk(q0[:6])[0]
    assert sign * d[axis] == pytest.approx(0.005, abs=5e-4)


def test_joy_maps_sticks_to_the_tool_and_buttons_to_the_gripper_behind_the_deadman():
    joy = ArmJoyDevice(jog=make_jog(), linear_speed=0.05, gripper_speed=0.04, deadman_button=4)
    q0 = start()
    joy.observe_joints(q0, 0.0)
    axes = [0.0, 1.0, 0.0, 0.0, 0.0, 0.0]  # left stick up: +x
    assert joy.update(axes, [0, 0, 0, 0, 0], 0.0) is None
    assert joy.command(0.05) is None  # deadman released
    joy.update(axes, [0, 1, 0, 0, 1], 0.1)  # deadman and "open"
    cmd = joy.command(0.15)
    assert SIM.fk(cmd[:6])[0][0] - SIM.fk(q0[:6])[0][0] == pytest.approx(0.005, abs=5e-4)
    assert cmd[6] == pytest.approx(0.044)
    assert joy.command(0.7) is None  # stale Joy
    assert "need 5" in joy.update([0.0] * 4, [0] * 5, 1.0)
    assert "buttons" in joy.update([0.0] * 6, [0, 0], 1.0)
    assert "not finite" in joy.update([0.0, np.nan, 0, 0, 0, 0], [0] * 5, 1.0)
    with pytest.raises(ValueError, match="arm_joy_axes"):
        ArmJoyDevice(jog=make_jog(), axes=[1, 0, 4])


def test_the_arm_model_names_what_to_fix():
    with pytest.raises(ValueError, match="does not exist"):
        ArmModel(WS / "no_such_arm.urdf", "tcp", NAMES)
    with pytest.raises(ValueError, match="'flange' is neither a site nor a body"):
        ArmModel(ARM_MJCF_PATH, "flange", NAMES)
    with pytest.raises(ValueError, match="none of the action names"):
        ArmModel(ARM_MJCF_PATH, "tcp", ("data[0]", "data[1]"))
    with pytest.raises(ValueError, match="free or ball joints"):
        ArmModel(ARM_MJCF_PATH, "tcp", (*NAMES, "cube_red"))
    model = ArmModel(ARM_MJCF_PATH, "tcp", NAMES, exclude=("gripper",))
    assert model.joints == NAMES[:6]
    p, r = model.fk(start())
    p_sim, r_sim = SIM.fk(HOME_QPOS)
    np.testing.assert_allclose(p, p_sim)
    np.testing.assert_allclose(r, r_sim)


def test_rotation_helpers_and_the_damped_step():
    for w in ([0.0, 0.0, 0.0], [0.1, -0.2, 0.3], [0.0, 0.0, np.pi - 1e-9], [1.0, 1.0, 0.0]):
        np.testing.assert_allclose(rotation_vector(rotation_matrix(w)), w, atol=1e-6)
    jac = np.diag([1.0, 0.5, 0.0, 1.0, 1.0, 1.0])  # a singular direction: the damped step stays bounded
    dq = dls_step(jac, np.array([0.01, 0.01, 0.01, 0, 0, 0]), damping=0.05)
    np.testing.assert_allclose(dq[:3], [0.01 / (1 + 0.0025), 0.005 / (0.25 + 0.0025), 0.0])


# ---- leader arm ---------------------------------------------------------------------------------
def test_leader_joints_map_by_name_in_any_order():
    mapping = LeaderMapping.parse(NAMES, [""])
    leader = list(reversed(NAMES))
    order = mapping.order(leader)
    positions = np.arange(7.0)
    np.testing.assert_array_equal(positions[order], positions[::-1])


def test_a_leader_whose_names_do_not_match_lists_the_missing_and_extra_names():
    mapping = LeaderMapping.parse(NAMES, [])
    leader = ["shoulder_pan", "shoulder_lift", "elbow_flex", "wrist_flex", "wrist_roll", "gripper", "handle"]
    with pytest.raises(LeaderMismatch) as err:
        mapping.order(leader)
    assert err.value.missing == ["elbow", "forearm_roll", "wrist_pitch"]
    assert err.value.extra == ["elbow_flex", "wrist_flex", "handle"]
    text = str(err.value)
    assert "missing ['elbow', 'forearm_roll', 'wrist_pitch']" in text
    assert "extra ['elbow_flex', 'wrist_flex', 'handle']" in text and "leader_joint_map" in text
    with pytest.raises(LeaderMismatch, match=r"repeated \['elbow'\]"):
        mapping.order([*NAMES, "elbow"])
    # Mapped: the same leader mirrors.
    mapped = LeaderMapping.parse(NAMES, ["elbow_flex=elbow", "wrist_flex=wrist_pitch", "handle=",
                                         "wrist_yaw=forearm_roll"])
    order = mapped.order([*leader, "wrist_yaw"])
    assert [([*leader, "wrist_yaw"])[i] for i in order] == ["shoulder_pan", "shoulder_lift", "elbow_flex",
                                                             "wrist_yaw", "wrist_flex", "wrist_roll", "gripper"]


@pytest.mark.parametrize("pairs,fragment", [
    (["elbow"], "'elbow' is not 'leader_name=follower_name'"),
    (["a=elbow", "a=wrist_roll"], "leader joint 'a' is mapped twice"),
    (["a=knee"], "maps onto 'knee', which is not one of the follower's joints"),
    (["a=elbow", "b=elbow"], "follower joints ['elbow'] are mapped from more than one leader joint"),
])
def test_a_bad_leader_joint_map_is_refused(pairs, fragment):
    with pytest.raises(ValueError, match="leader_joint_map") as err:
        LeaderMapping.parse(NAMES, pairs)
    assert fragment in str(err.value)


def test_the_leader_device_mirrors_clips_and_stops_when_the_leader_goes_stale():
    leader = LeaderArmDevice(mapping=LeaderMapping.parse(NAMES, []), limits=JointLimits.from_action(CONTRACT.action),
                             timeout=0.5)
    assert not leader.needs_joint_states() and leader.command(0.0) is None
    q = start()
    leader.observe_leader(list(reversed(NAMES)), q[::-1], now=1.0)
    np.testing.assert_allclose(leader.command(1.2), q)
    beyond = q.copy()
    beyond[0], beyond[6] = 3.5, 0.1  # past shoulder_pan's 2.9 rad and the gripper's 0.08 m
    leader.observe_leader(NAMES, beyond, now=1.3)
    cmd = leader.command(1.4)
    assert cmd[0] == 2.9 and cmd[6] == 0.08
    assert leader.limits.clipped == {"shoulder_pan": 1, "gripper": 1}
    assert leader.command(1.81) is None  # stale: no command, the shield holds the arm
    with pytest.raises(LeaderMismatch):
        leader.observe_leader([*NAMES[:6], "finger"], q, now=2.0)
    with pytest.raises(ValueError, match="not finite"):
        leader.observe_leader(NAMES, np.r_[q[:6], np.nan], now=2.0)
    with pytest.raises(ValueError, match="6 positions for 7 names"):
        leader.observe_leader(NAMES, q[:6], now=2.0)
    assert leader.command(2.0) is None  # nothing bad was kept


def test_a_delta_leader_sends_the_increment_from_the_followers_measured_joints():
    action = replace(CONTRACT.action, mode="delta", low=(-0.1,) * 7, high=(0.1,) * 7)
    leader = LeaderArmDevice(mapping=LeaderMapping.parse(NAMES, []), limits=JointLimits.from_action(action))
    assert leader.needs_joint_states()
    q = start()
    leader.observe_leader(NAMES, q + 0.05, now=0.0)
    assert leader.command(0.1) is None  # no follower measurement yet
    leader.observe_joints(q, now=0.0)
    np.testing.assert_allclose(leader.command(0.1), np.full(7, 0.05))
    leader.observe_leader(NAMES, q + 0.5, now=0.2)
    np.testing.assert_allclose(leader.command(0.3), np.full(7, 0.1))  # the increment's bound
    assert leader.command(0.6) is None  # the follower's joint_states went stale
