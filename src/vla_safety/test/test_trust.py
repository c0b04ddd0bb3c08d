"""What the shield trusts: time on two clocks (a stray /clock cannot stretch a timeout), hard limits from the
robot contract (tuning only tightens them), and the supervisor that must be present and active."""
from pathlib import Path

import numpy as np
import pytest
from vla_core.contract import RobotContract
from vla_core.errors import ConfigError

from vla_safety.clock import ClockWatch, Instant
from vla_safety.config import loosened
from vla_safety.hard_limits import hard_limits

WS = Path(__file__).resolve().parents[3]
TABLETOP = WS / "params" / "robots" / "tabletop_sim.yaml"
FRANKA = WS / "params" / "robots" / "isaac_sim_franka.yaml"
BACK = [-0.2, 0.0, 0.0, 0.0, 0.0, 0.0]


def at(steady, ros):
    return Instant(steady, ros)


def drive(s, steady, ros, command=BACK, source="policy"):
    s.offer_command(source, command, at(steady, ros))
    return s.step(at(steady, ros))


# ---- time -----------------------------------------------------------------------------------------------
def test_a_frozen_ros_clock_cannot_keep_a_silent_source_fresh(make_shield):
    s = make_shield()
    cmd, _ = drive(s, 0.0, 50.0)
    assert cmd[0] < 0
    # /clock stands still (or was stretched) while 0.6 s pass on the steady clock: the command is stale.
    cmd, report = s.step(at(0.6, 50.01))
    assert np.all(cmd == 0) and report.rules[0][0] == "watchdog"


def test_a_command_stamped_at_a_forged_clock_is_stale_once_the_clock_returns(make_shield):
    """The reported attack: /clock = 1e6 s while commanding, then the only source goes silent."""
    s = make_shield()
    drive(s, 0.0, 50.0)
    cmd, report = drive(s, 0.02, 1e6)  # the forged clock: a jump, stop, held commands forgotten
    assert np.all(cmd == 0) and report.rules == [("clock_jump", pytest.approx(0.1))] and "ahead" in report.why
    cmd, report = drive(s, 0.04, 1e6)  # a command received under the forged clock moves again ...
    assert cmd[0] < 0
    cmd, report = s.step(at(0.06, 50.06))  # ... but the real clock returns: back in time, stop
    assert np.all(cmd == 0) and report.rules[0][0] == "clock_jump" and "back" in report.why
    for k in range(1, 30):  # silence: nothing old is forwarded again, whatever the ROS clock says
        cmd, report = s.step(at(0.06 + k * 0.1, 50.06 + k * 0.1))
        assert np.all(cmd == 0), (k, report.rules)
    assert s.counters.rules["clock_jump"] == 2


def test_a_sim_faster_than_real_time_keeps_its_timeouts_in_simulated_seconds(make_shield):
    s = make_shield()
    for k in range(20):  # 10x real time: 0.1 s simulated per 0.01 s steady, a command every step
        cmd, report = drive(s, k * 0.01, k * 0.1)
        assert "clock_jump" not in dict(report.rules)
    assert cmd[0] == pytest.approx(-0.2)
    cmd, report = s.step(at(0.26, 2.5))  # 0.6 simulated seconds of silence (0.07 s steady): stale
    assert np.all(cmd == 0) and report.rules[0][0] == "watchdog"


def test_clock_watch_bounds_the_lead_over_the_steady_clock():
    watch = ClockWatch(max_jump=1.0)
    assert watch.jumped(at(0.0, 10.0)) is None
    assert watch.jumped(at(0.1, 10.9)) is None      # 9x real time between two steps: a lead of 0.8 s
    assert "ahead" in watch.jumped(at(0.2, 12.1))   # a lead of 1.1 s
    assert "back" in watch.jumped(at(0.3, 12.0))
    assert watch.jumped(at(0.4, 12.0)) is None      # a paused sim is no jump


def test_future_stamped_obstacle_data_is_not_fresh(make_shield):
    zones = "[{name: near, type: stop, points: [[0.0, -0.2], [0.3, -0.2], [0.3, 0.2], [0.0, 0.2]], min_points: 1}]"
    s = make_shield(zones=zones, scan_topic="scan")
    s.offer_points("scan", np.array([[2.0, 0.0]]), at(0.0, 10.0))
    cmd, _ = drive(s, 0.0, 10.0, [0.1, 0, 0, 0, 0, 0])
    assert cmd[0] > 0
    s.offer_points("scan", np.array([[2.0, 0.0]]), at(0.1, 1e6))  # a header stamp from a forged clock
    cmd, report = drive(s, 0.1, 10.1, [0.1, 0, 0, 0, 0, 0])
    assert np.all(cmd == 0) and report.rules[-1][0] == "zone.source_timeout:scan"


def test_a_lock_timeout_runs_on_the_steady_clock_too(make_shield):
    s = make_shield(locks="[{name: heartbeat, priority: 100, timeout: 0.5}]")
    s.set_lock("heartbeat", False, at(0.0, 5.0))
    cmd, _ = drive(s, 0.0, 5.0)
    assert cmd[0] < 0
    cmd, report = drive(s, 0.6, 5.05)  # its publisher died 0.6 s ago; the ROS clock says 0.05 s
    assert np.all(cmd == 0) and report.rules[0][0] == "lock:heartbeat"


# ---- hard limits ------------------------------------------------------------------------------------------
def test_the_tabletop_contract_forbids_every_axis_but_x_and_y():
    hard = hard_limits(RobotContract.from_yaml(TABLETOP), "twist")
    assert list(hard.velocity) == [0.25, 0.25, 0.0, 0.0, 0.0, 0.0]
    assert list(hard.accel) == [5.0, 5.0, 0.0, 0.0, 0.0, 0.0]
    with pytest.raises(ValueError, match="sends std_msgs/msg/Float64MultiArray or trajectory_msgs/msg/JointTrajectory, but the contract .*/Twist"):
        hard_limits(RobotContract.from_yaml(TABLETOP), "joint_position")


def test_parameters_beyond_the_hard_limits_fail_naming_both(config):
    hard = hard_limits(RobotContract.from_yaml(TABLETOP), "twist")
    with pytest.raises(ValueError, match=r"max_velocity exceeds .*tabletop_sim.yaml \(linear.x 100 > hard limit "
                                         r"0.25, linear.y 100 > hard limit 0.25, linear.z 100 > hard limit 0"):
        config(hard, max_velocity=[100.0] * 6)
    with pytest.raises(ValueError, match=r"angular.z 1.5 > hard limit 0\b"):  # forbidden stays forbidden
        config(hard, max_velocity=[0.25, 0.25, 0, 0, 0, 1.5])
    tuned = config(hard, max_velocity=[-1.0], max_accel=[2.0, 2.0, 0, 0, 0, 0], max_decel=[-1.0])
    assert list(tuned.twist.max_velocity) == [0.25, 0.25, 0, 0, 0, 0]  # -1: the hard limit
    assert list(tuned.twist.max_decel) == [5.0, 5.0, 0, 0, 0, 0]


def test_joint_limits_come_from_the_contract_and_only_tighten(config):
    hard = hard_limits(RobotContract.from_yaml(FRANKA), "joint_position")
    with pytest.raises(ValueError, match="declares no acceleration for panda_joint1"):
        config(hard, command_type="joint_position")
    cfg = config(hard, command_type="joint_position", joint_max_accel=[10.0], joint_position_margin=[0.01])
    assert cfg.joints.lower[0] == pytest.approx(-2.8873) and cfg.joints.upper[8] == pytest.approx(0.03)
    assert list(cfg.joints.max_velocity) == list(hard.velocity)
    with pytest.raises(ValueError, match=r"panda_joint5 3 > hard limit 2.61"):
        config(hard, command_type="joint_position", joint_max_accel=[10.0], joint_max_velocity=[3.0])


def test_run_time_changes_may_not_loosen_what_the_contract_does_not_bound(config):
    configured = config(policy_timeout=0.5, max_jerk=[5.0, 5.0, 0, 0, 0, 0])
    assert loosened(config(policy_timeout=0.3, max_jerk=[4.0, 5.0, 0, 0, 0, 0]), configured) == []
    assert "policy_timeout 10 > 0.5 configured" in loosened(config(policy_timeout=10.0,
                                                                   max_jerk=[5.0, 5.0, 0, 0, 0, 0]), configured)[0]
    assert "max_jerk" in loosened(config(policy_timeout=0.5), configured)[0]  # jerk limit switched off


def test_contract_limits_are_validated():
    data = {"robot": "r", "fps": 10, "state": {"topic": "joint_states", "joints": ["a"]},
            "action": {"topic": "cmd_vel", "type": "geometry_msgs/msg/Twist", "fields": ["linear.x"],
                       "low": [-1.0], "high": [1.0], "max_acceleration": [2.0, 3.0]}}
    with pytest.raises(ConfigError, match=r"action.max_acceleration = \[2.0, 3.0\]: expected 1 finite"):
        RobotContract.from_dict(data)


# ---- supervisor ------------------------------------------------------------------------------------------
def test_the_supervisor_must_be_heard_and_active(make_shield):
    s = make_shield(supervisor="lifecycle_manager", supervisor_timeout=0.5)
    cmd, report = drive(s, 0.0, 0.0)
    assert np.all(cmd == 0) and report.rules == [("supervisor", 0.0)] and "no status" in report.why
    s.supervisor_input(True, "active", "", at(0.05, 0.05))
    cmd, report = drive(s, 0.1, 0.1)
    assert cmd[0] < 0 and report.source == "policy"
    s.supervisor_input(False, "stopping", "heartbeat lost from /policy", at(0.15, 0.15))
    cmd, report = s.step(at(0.15, 0.15))  # the step on that very status message
    assert np.all(cmd == 0) and report.rules[0][0] == "supervisor" and "heartbeat lost" in report.why
    assert np.all(drive(s, 0.2, 0.2)[0] == 0)
    s.supervisor_input(True, "active", "", at(0.3, 0.3))
    assert drive(s, 0.35, 0.35)[0][0] < 0
    # Silent for longer than the timeout on the steady clock, however little the ROS clock moved.
    cmd, report = drive(s, 0.85, 0.36)
    assert np.all(cmd == 0) and "silent for 0.55 s" in report.why
    assert s.counters.rules["supervisor"] == 4


def test_a_lost_supervisor_holds_joint_positions(make_shield, limits):
    s = make_shield(limits([-1.0], [1.0], [1.0], [100.0]), command_type="joint_position", supervisor="m")
    s.supervisor_input(True, "active", "", 0.0)
    s.set_position([0.0], 0.0)
    assert s.offer_command("policy", [0.5], 0.0) is None
    held = s.step(0.0)[0]
    assert held[0] > 0
    cmd, report = s.step(2.0)  # silent for 2 s
    assert cmd == pytest.approx(held) and report.rules[0][0] == "supervisor"


def test_no_supervisor_named_means_not_supervised(make_shield):
    s = make_shield(supervisor="")
    assert drive(s, 0.0, 0.0)[0][0] < 0 and s.supervisor_problem(at(100.0, 0.0)) is None
