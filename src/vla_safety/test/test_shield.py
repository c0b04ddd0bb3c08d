"""The shield's filter, step by step: mux, takeover, locks, e-stop, watchdog, rejection, limits, zones."""
import numpy as np
import pytest

FWD = [1.0, 0.0, 0.0, 0.0, 0.0, 0.0]


def run(shield, t0, steps, dt=0.1):
    out = []
    for k in range(steps):
        out.append(shield.step(t0 + k * dt))
    return out


def test_ramps_to_the_velocity_limit_and_reports_it(make_shield):
    s = make_shield()
    s.offer_command("policy", FWD, 0.0)
    cmd, report = s.step(0.0)
    assert cmd[0] == pytest.approx(0.1)  # 1 m/s^2 x 0.1 s
    assert [r for r, _ in report.rules] == ["limit.velocity", "limit.acceleration"]
    assert dict(report.rules)["limit.velocity"] == pytest.approx(0.75)
    for t in (0.1, 0.2, 0.3):
        s.offer_command("policy", FWD, t)
        cmd, report = s.step(t)
    assert cmd[0] == pytest.approx(0.25) and report.source == "policy"
    assert np.all(cmd[1:] == 0)


def test_several_steps_in_one_period_share_one_reference(make_shield):
    s = make_shield()
    s.offer_command("teleop", FWD, 0.0)
    for _ in range(5):  # a timer tick and commands at the same simulated instant
        cmd, _ = s.step(0.0)
    assert cmd[0] == pytest.approx(0.1)


def test_operator_overrides_policy_and_raises_takeover(make_shield):
    s = make_shield()
    s.offer_command("policy", [0.1, 0, 0, 0, 0, 0], 0.0)
    _, report = s.step(0.0)
    assert report.source == "policy" and not report.takeover
    s.offer_command("teleop", [0, 0.05, 0, 0, 0, 0], 0.05)
    cmd, report = s.step(0.1)
    assert report.source == "teleop" and report.takeover and s.counters.takeovers == 1
    assert cmd[1] == pytest.approx(0.05)
    # The operator lets go (its timeout passes): the fresh policy is forwarded again, no takeover.
    s.offer_command("policy", [0.1, 0, 0, 0, 0, 0], 0.6)
    _, report = s.step(0.6)
    assert report.source == "policy" and not report.takeover


def test_stale_sources_stop_at_once(make_shield):
    s = make_shield()
    for k in range(3):
        s.offer_command("policy", FWD, k * 0.1)
        cmd, _ = s.step(k * 0.1)
    assert cmd[0] > 0.2
    cmd, report = s.step(0.2 + 0.51)
    assert np.all(cmd == 0) and report.source == "none" and report.rules[0][0] == "watchdog"
    assert report.rules[0][1] == pytest.approx(0.25)
    assert s.counters.stale_ticks == 1


def test_rejected_command_stops_counts_and_never_falls_through(make_shield):
    s = make_shield()
    s.offer_command("policy", [0.1, 0, 0, 0, 0, 0], 0.0)
    s.step(0.0)
    assert "non-finite" in s.offer_command("teleop", [np.nan, 0, 0, 0, 0, 0], 0.05)
    assert "takes 6" in s.offer_command("teleop", [0.1, 0.1], 0.06)
    cmd, report = s.step(0.1)
    assert np.all(cmd == 0) and report.rules == [("reject:teleop", pytest.approx(0.1))]
    assert s.counters.rejected == 2


def test_estop_is_zero_at_once_latched_and_reset_needs_release(make_shield):
    s = make_shield()
    for k in range(3):
        s.offer_command("teleop", FWD, k * 0.1)
        s.step(k * 0.1)
    s.estop_input(True, 0.25)
    cmd, report = s.step(0.25)
    assert np.all(cmd == 0) and report.estop and report.source == "estop"
    s.offer_command("teleop", FWD, 0.3)
    assert np.all(s.step(0.3)[0] == 0)
    ok, message = s.reset()
    assert not ok and "release" in message
    s.estop_input(False, 0.35)
    assert np.all(s.step(0.4)[0] == 0)  # False alone does not release the latch
    assert s.reset()[0]
    # Commands from before the reset are forgotten; a new one starts from zero under the limits.
    assert np.all(s.step(0.45)[0] == 0)
    s.offer_command("teleop", FWD, 0.5)
    assert s.step(0.5)[0][0] == pytest.approx(0.1)
    assert s.counters.estops == 1


def test_lock_blocks_lower_priorities(make_shield):
    s = make_shield(locks="[{name: pause, priority: 50}, {name: heartbeat, priority: 100, timeout: 0.5}]")
    s.set_lock("heartbeat", False, 0.0)
    s.set_lock("pause", True, 0.0)
    s.offer_command("policy", FWD, 0.0)
    cmd, report = s.step(0.0)
    assert np.all(cmd == 0) and report.rules[0][0] == "lock:pause"
    s.offer_command("teleop", FWD, 0.05)
    assert s.step(0.05)[1].source == "teleop"
    # The heartbeat lock goes silent for longer than its timeout: it locks the operator too.
    s.offer_command("teleop", FWD, 0.6)
    cmd, report = s.step(0.6)
    assert np.all(cmd == 0) and report.rules[0][0] == "lock:heartbeat"


def test_deadband_and_forbidden_axes(make_shield):
    s = make_shield(deadband=[0.02, 0.0, 0.0, 0.0, 0.0, 0.0])
    s.offer_command("policy", [0.01, 0.05, 0.3, 0.0, 0.0, 0.0], 0.0)
    cmd, report = s.step(0.0)
    assert cmd[0] == 0 and cmd[1] == pytest.approx(0.05) and cmd[2] == 0  # z is forbidden (max 0)
    assert {"limit.deadband", "limit.velocity"} <= {r for r, _ in report.rules}


def test_jerk_limit(make_shield):
    s = make_shield(max_jerk=[5.0, 5.0, 0, 0, 0, 0])
    s.offer_command("policy", FWD, 0.0)
    cmd, report = s.step(0.0)
    assert cmd[0] == pytest.approx(0.05)  # a <= 0.5 m/s^2 after one tick: dv <= 0.05
    assert "limit.jerk" in {r for r, _ in report.rules}


def test_workspace_box_stops_motion_out_of_it(make_shield):
    s = make_shield(workspace_enabled=True, workspace_min=[-0.2, -0.2], workspace_max=[0.2, 0.2])
    s.offer_command("policy", FWD, 0.0)
    cmd, report = s.step(0.0)
    assert np.all(cmd == 0) and report.rules[-1][0] == "no_position"  # no position known: stop
    s.set_position([0.195, 0.0], 0.1)
    s.offer_command("policy", FWD, 0.1)
    cmd, report = s.step(0.1)
    assert cmd[0] == pytest.approx(0.05) and "limit.workspace" in {r for r, _ in report.rules}  # 5 mm in 0.1 s
    s.set_position([0.25, 0.0], 0.2)  # outside: moving back in is allowed
    s.offer_command("policy", [-1.0, 0, 0, 0, 0, 0], 0.2)
    assert s.step(0.2)[0][0] < 0


def test_zones_stop_slowdown_and_sensor_timeout(make_shield):
    zones = ("[{name: near, type: stop, points: [[0.0, -0.2], [0.3, -0.2], [0.3, 0.2], [0.0, 0.2]], min_points: 2},"
             " {name: far, type: slowdown, slowdown_ratio: 0.5, points: [[0.0, -0.5], [1.0, -0.5], [1.0, 0.5],"
             " [0.0, 0.5]], min_points: 1}]")
    s = make_shield(zones=zones, scan_topic="scan")
    s.offer_command("policy", [0.1, 0, 0, 0, 0, 0], 0.0)
    cmd, report = s.step(0.0)
    assert np.all(cmd == 0) and report.rules[-1][0] == "zone.source_timeout:scan"
    s.offer_points("scan", np.array([[0.8, 0.0]]), 0.1)
    s.offer_command("policy", [0.1, 0, 0, 0, 0, 0], 0.1)
    cmd, report = s.step(0.1)
    assert cmd[0] == pytest.approx(0.05) and report.rules[-1] == ("zone.slowdown:far", pytest.approx(0.05))
    s.offer_points("scan", np.array([[0.8, 0.0], [0.2, 0.0]]), 0.2)  # one point: below min_points 2
    assert s.step(0.2)[1].rules[-1][0] == "zone.slowdown:far"
    s.offer_points("scan", np.array([[0.8, 0.0], [0.2, 0.0], [0.2, 0.1]]), 0.3)
    cmd, report = s.step(0.3)
    assert np.all(cmd == 0) and report.rules[-1][0] == "zone.stop:near"  # the most restrictive wins
    cmd, report = s.step(0.3 + 0.6)  # the scanner went silent
    assert report.rules[-1][0] in ("watchdog", "zone.source_timeout:scan")


def test_joint_position_limits_and_hold(make_shield, limits):
    s = make_shield(limits([-1.0, -1.0], [1.0, 1.0], [1.0, 1.0], [100.0, 100.0]), command_type="joint_position",
                    joint_max_step=[0.05, 0.5])
    cmd, report = s.step(0.0)
    assert cmd is None  # nothing sent and no joint_states: nothing can be held
    assert "takes 2" in s.offer_command("policy", [0.0] * 7, 0.0)
    s.set_position([0.0, 0.95], 0.05)
    s.offer_command("policy", [0.5, 2.0], 0.1)
    cmd, report = s.step(0.1)
    assert cmd == pytest.approx([0.05, 1.0])  # step limit on a, position limit on b
    assert {"limit.position", "limit.step"} <= {r for r, _ in report.rules}
    s.trigger_estop()
    # E-stop holds the positions measured when it began (never zeros), not the target still ahead.
    assert s.step(0.2)[0] == pytest.approx([0.0, 0.95])


def _arm_shield(make_shield, limits, **overrides):
    return make_shield(limits([-1.0, -1.0, 0.0], [1.0, 1.0, 0.08], [1.0, 1.0, 1.0], [100.0, 100.0, 100.0]),
                       command_type="joint_position", **overrides)


@pytest.mark.parametrize("stop", ["estop", "watchdog", "reject"])
def test_every_stop_holds_the_measured_position_latched_while_it_lasts(make_shield, limits, stop):
    s = _arm_shield(make_shield, limits)
    s.set_position([0.2, -0.3, 0.04], 0.0)
    s.offer_command("teleop", [0.25, -0.3, 0.04], 0.0)
    assert s.step(0.0)[0] == pytest.approx([0.25, -0.3, 0.04])
    s.set_position([0.22, -0.3, 0.04], 0.1)  # the arm is on its way
    if stop == "estop":
        s.trigger_estop()
        t = 0.1
    elif stop == "watchdog":
        t = 0.7  # teleop_timeout 0.5 s
        s.set_position([0.22, -0.3, 0.04], t)
    else:
        assert "non-finite" in s.offer_command("teleop", [np.nan, 0.0, 0.0], 0.1)
        t = 0.1
    cmd, report = s.step(t)
    assert cmd == pytest.approx([0.22, -0.3, 0.04]) and report.stopped
    # The arm sags under its hold: the hold stays where the stop began.
    s.set_position([0.21, -0.32, 0.04], t + 0.05)
    assert s.step(t + 0.1)[0] == pytest.approx([0.22, -0.3, 0.04])


def test_a_gripper_keeps_squeezing_and_a_hold_stays_within_the_limits(make_shield, limits):
    s = _arm_shield(make_shield, limits, hold_command_joints=["j2"])
    s.set_position([0.0, 0.0, 0.05], 0.0)
    s.offer_command("teleop", [0.0, 0.0, 0.0], 0.0)  # close on a 0.04 m cube: the fingers stop at 0.04
    assert s.step(0.0)[0] == pytest.approx([0.0, 0.0, 0.0])
    s.set_position([1.02, 0.0, 0.04], 0.05)  # overshot the joint's upper limit 1.0; the cube holds the fingers
    s.trigger_estop()
    assert s.step(0.1)[0] == pytest.approx([1.0, 0.0, 0.0])


def test_without_a_fresh_measurement_a_stop_holds_the_last_position_sent(make_shield, limits):
    s = _arm_shield(make_shield, limits)
    s.set_position([0.1, 0.1, 0.04], 0.0)
    s.offer_command("policy", [0.1, 0.1, 0.04], 0.0)
    s.step(0.0)
    s.trigger_estop()
    assert s.step(2.0)[0] == pytest.approx([0.1, 0.1, 0.04])  # joint_states stale since 0.0 (state_timeout 0.5)


def test_hold_command_joints_must_be_joints_of_the_commands(config):
    with pytest.raises(ValueError, match=r"hold_command_joints \['finger'\] are not joints"):
        config(command_type="joint_position", hold_command_joints=["finger"])
    with pytest.raises(ValueError, match="command_type is twist"):
        config(hold_command_joints=["j0"])


def test_joint_velocity_keeps_joints_inside_limits(make_shield, limits):
    s = make_shield(limits([-1.0], [1.0], [2.0], [100.0], "joint_velocity"), command_type="joint_velocity",
                    joint_max_step=[10.0])
    s.set_position([0.95], 0.0)
    s.offer_command("teleop", [2.0], 0.0)
    cmd, report = s.step(0.0)
    assert cmd == pytest.approx([0.5]) and report.rules[-1][0] == "limit.position"  # 0.05 m left in 0.1 s


@pytest.mark.parametrize("overrides, fragment", [
    (dict(zones="[{name: z, type: wall, points: [[0, 0], [1, 0], [0, 1]]}]"), "expected one of stop"),
    (dict(zones="[{name: z, type: stop, points: [[0, 0], [1, 0]]}]", scan_topic="scan"), "3 or more"),
    (dict(zones="[{name: z, type: stop, points: [[0, 0], [1, 0], [0, 1]]}]"), "no obstacle source"),
    (dict(max_accel=[0.0] * 6), "max_accel must be > 0"),
    (dict(command_type="joint_position", joint_names=["a", "b"]), "must be the contract's action names"),
    (dict(command_type="joint_position", joint_max_velocity=[1.0, 1.0]), "one per axis"),
    (dict(locks="[{name: 'bad name'}]"), "letters, digits"),
    (dict(min_height=3.0), "min_height"),
])
def test_bad_configuration_says_what_to_fix(config, overrides, fragment):
    with pytest.raises(ValueError, match=fragment):
        config(**overrides)


def test_limits_change_at_run_time_topology_does_not(make_shield, config):
    s = make_shield()
    s.update_limits(config(max_velocity=[0.1, 0.1, 0, 0, 0, 0]))
    s.offer_command("policy", FWD, 0.0)
    s.offer_command("policy", FWD, 0.1)
    s.step(0.0)
    assert s.step(0.1)[0][0] == pytest.approx(0.1)
    with pytest.raises(ValueError, match="topology"):
        s.update_limits(config(locks="[{name: pause}]"))


def test_a_trajectory_contract_bounds_joint_position_shields_only():
    import yaml
    from vla_core.contract import RobotContract
    from vla_safety.hard_limits import hard_limits
    contract = RobotContract.from_dict(yaml.safe_load("""
robot: trajectory_arm
fps: 10
state: {topic: joint_states, joints: [a, gripper]}
action: {topic: cmd, type: trajectory_msgs/msg/JointTrajectory, fields: [a, gripper], low: [-1.0, 0.0],
         high: [1.0, 0.08], max_velocity: [2.0, 1.0]}
"""))
    hard = hard_limits(contract, "joint_position")
    assert hard.names == ("a", "gripper") and hard.upper.tolist() == [1.0, 0.08]
    with pytest.raises(ValueError, match="joint_velocity sends std_msgs/msg/Float64MultiArray, but the contract"):
        hard_limits(contract, "joint_velocity")
    # Increments are not targets: a delta contract is refused, naming the fix.
    delta = RobotContract.from_dict(yaml.safe_load("""
robot: delta_arm
fps: 10
state: {topic: joint_states, joints: [a, gripper]}
action: {topic: cmd, type: trajectory_msgs/msg/JointTrajectory, fields: [a, gripper], low: [-0.1, -0.01],
         high: [0.1, 0.01], mode: delta}
"""))
    with pytest.raises(ValueError, match="action.mode delta: the shield checks absolute joint targets only"):
        hard_limits(delta, "joint_position")


# ---- the end-effector box of joint-position commands, through the robot model's forward kinematics ----------
GANTRY_MJCF = """<mujoco><worldbody><body name="carriage"><joint name="a" type="slide" axis="1 0 0"/>
<geom size="0.01"/><body name="lift"><joint name="b" type="slide" axis="0 0 1"/><geom size="0.01"/><site name="tip"/></body></body>
</worldbody></mujoco>"""


@pytest.fixture
def gantry_model(tmp_path):
    path = tmp_path / "gantry.xml"
    path.write_text(GANTRY_MJCF)
    return path


def test_a_step_that_would_leave_the_box_is_shortened_and_from_outside_only_moves_back(gantry_model):
    from vla_safety.kinematics import JointWorkspace, forward_kinematics
    from vla_safety.limits import WorkspaceBox
    fk = forward_kinematics(gantry_model, "tip", ("a", "b", "gripper"))  # the gripper is not in the model
    assert fk.joints == ("a", "b") and fk.position([0.3, 0.2, 0.08]).tolist() == [0.3, 0.0, 0.2]
    box = JointWorkspace(WorkspaceBox([-1.0, -1.0, 0.0], [1.0, 1.0, 1.0]), fk)
    q, rules = box.limit(np.array([0.2, -0.5, 0.0]), np.array([0.0, 0.5, 0.08]))
    assert q[1] == pytest.approx(0.0, abs=1e-3) and q[0] == pytest.approx(0.1, abs=1e-3)  # along the step
    assert rules[0][0] == "limit.workspace" and rules[0][1] == pytest.approx(np.linalg.norm([0.1, 0.5, 0.04]), abs=2e-3)
    inside = np.array([0.5, 0.5, 0.0])
    assert box.limit(inside, np.array([0.0, 0.5, 0.0])) == (pytest.approx(inside), [])
    # From below the box: further down is held, back up is allowed.
    below = np.array([0.0, -0.2, 0.0])
    assert box.limit(np.array([0.0, -0.3, 0.0]), below)[0] == pytest.approx(below, abs=1e-3)
    assert box.limit(np.array([0.0, -0.1, 0.0]), below) == (pytest.approx([0.0, -0.1, 0.0]), [])


@pytest.mark.parametrize("overrides,fragment", [
    (dict(workspace_link="tool"), "workspace_link 'tool' is neither a site nor a body"),
    (dict(workspace_model="missing.urdf"), r"workspace_model \S*missing.urdf does not exist; give the robot"),
    (dict(workspace_min=[0.0, 0.0], workspace_max=[1.0, 1.0]), "needs x, y, z"),
])
def test_a_joint_workspace_box_names_what_to_fix(config, gantry_model, overrides, fragment):
    from vla_safety.hard_limits import HardLimits
    hard = HardLimits("joint_position", ("a", "b"), np.full(2, 2.0), np.full(2, 50.0), np.full(2, -2.0),
                      np.full(2, 2.0))
    settings = dict(command_type="joint_position", workspace_enabled=True, workspace_model=str(gantry_model),
                    workspace_link="tip", workspace_min=[-1.0, -1.0, 0.0], workspace_max=[1.0, 1.0, 1.0])
    shield_config = config(hard, **settings)
    assert shield_config.joint_workspace is not None
    with pytest.raises(ValueError, match=fragment):
        config(hard, **{**settings, **overrides})


def test_the_shield_keeps_the_end_effector_in_its_box(make_shield, config, gantry_model):
    from vla_safety.hard_limits import HardLimits
    from vla_safety.shield import Shield
    hard = HardLimits("joint_position", ("a", "b"), np.full(2, 10.0), np.full(2, 500.0), np.full(2, -2.0),
                      np.full(2, 2.0))
    s = Shield(config(hard, command_type="joint_position", workspace_enabled=True, workspace_model=str(gantry_model),
                      workspace_link="tip", workspace_min=[-1.0, -1.0, 0.0], workspace_max=[1.0, 1.0, 1.0]))
    s.set_position([0.0, 0.1], 0.0)
    s.offer_command("policy", [0.0, -0.4], 0.0)
    cmd, report = s.step(0.0)
    assert cmd == pytest.approx([0.0, 0.0], abs=1e-3) and "limit.workspace" in [r for r, _ in report.rules]


def test_the_end_effector_box_is_drawn(config, gantry_model):
    from builtin_interfaces.msg import Time
    from visualization_msgs.msg import Marker

    from vla_safety.hard_limits import HardLimits
    from vla_safety.markers import shield_markers
    from vla_safety.shield import Shield
    hard = HardLimits("joint_position", ("a", "b"), np.full(2, 2.0), np.full(2, 50.0), np.full(2, -2.0),
                      np.full(2, 2.0))
    s = Shield(config(hard, command_type="joint_position", workspace_enabled=True, workspace_model=str(gantry_model),
                      workspace_link="tip", workspace_min=[-1.0, -0.5, 0.0], workspace_max=[1.0, 0.5, 1.0]))
    cubes = [m for m in shield_markers(s, None, Time()).markers if m.type == Marker.CUBE]
    assert len(cubes) == 1 and (cubes[0].scale.x, cubes[0].scale.y, cubes[0].scale.z) == (2.0, 1.0, 1.0)
    assert (cubes[0].pose.position.x, cubes[0].pose.position.z) == (0.0, 0.5)
