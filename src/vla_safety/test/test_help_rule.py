"""The shield's help rule: while the policy asks for help its commands are slowed (help.slow) or held
(help.hold), counted like every rule; the operator's commands never are; run-time changes only tighten it."""
import numpy as np
import pytest

from vla_safety.config import loosened

FWD = [0.2, 0.0, 0.0, 0.0, 0.0, 0.0]


def drive(s, source, command, t0, steps, dt=0.1):
    out = None
    for k in range(steps):
        s.offer_command(source, command, t0 + k * dt)
        out = s.step(t0 + k * dt)
    return out


def test_help_slows_the_policy_under_the_rate_limits_and_is_counted(make_shield):
    s = make_shield(help_scale=0.5)
    cmd, report = drive(s, "policy", FWD, 0.0, 5)
    assert cmd[0] == pytest.approx(0.2) and not report.rules
    s.help_input(True, 0.45)
    cmd, report = drive(s, "policy", FWD, 0.5, 1)
    assert [r for r, _ in report.rules] == ["help.slow"] and report.rules[0][1] == pytest.approx(0.1)
    assert cmd[0] == pytest.approx(0.1)  # within max_decel 2 m/s^2 x 0.1 s of 0.2
    assert not report.stopped
    cmd, report = drive(s, "policy", FWD, 0.6, 3)
    assert cmd[0] == pytest.approx(0.1) and s.counters.rules["help.slow"] == 4
    s.help_input(False, 0.85)
    cmd, report = drive(s, "policy", FWD, 0.9, 2)
    assert cmd[0] == pytest.approx(0.2) and "help.slow" not in dict(report.rules)
    assert s.counters.rules["help.slow"] == 4


def test_help_scale_zero_holds_at_once_as_a_stop(make_shield):
    s = make_shield(help_scale=0.0)
    drive(s, "policy", FWD, 0.0, 3)
    s.help_input(True, 0.25)
    cmd, report = drive(s, "policy", FWD, 0.3, 1)
    assert np.all(cmd == 0) and report.stopped and report.rules[0][0] == "help.hold"
    assert report.rules[0][1] == pytest.approx(0.2)  # the speed the stop took away
    assert s.counters.rules["help.hold"] == 1


def test_the_operator_is_never_slowed_by_the_policys_request(make_shield):
    s = make_shield(help_scale=0.0)
    s.help_input(True, 0.0)
    cmd, report = drive(s, "teleop", FWD, 0.0, 3)
    assert cmd[0] == pytest.approx(0.2) and report.source == "teleop"
    assert not {"help.hold", "help.slow"} & set(s.counters.rules)


def test_joint_position_help_steps_part_of_the_way_and_holds_in_place(make_shield, limits):
    arm = limits([-1.0, -1.0], [1.0, 1.0], [10.0, 10.0], [1000.0, 1000.0])
    s = make_shield(arm, command_type="joint_position", help_scale=0.25)
    s.set_position([0.0, 0.0], 0.0)
    s.offer_command("policy", [0.0, 0.0], 0.0)
    s.step(0.0)
    s.help_input(True, 0.05)
    s.set_position([0.0, 0.0], 0.1)
    s.offer_command("policy", [0.4, -0.2], 0.1)
    cmd, report = s.step(0.1)
    assert cmd == pytest.approx([0.1, -0.05]) and report.rules[0][0] == "help.slow"
    held = make_shield(arm, command_type="joint_position", help_scale=0.0)
    held.set_position([0.3, -0.1], 0.0)
    held.help_input(True, 0.0)
    held.offer_command("policy", [0.4, -0.2], 0.0)
    cmd, report = held.step(0.0)
    assert cmd == pytest.approx([0.3, -0.1]) and report.rules[0][0] == "help.hold"  # holds, never zeros


def test_help_scale_is_validated_and_only_tightens_at_run_time(config):
    configured = config(help_scale=0.5)
    assert not loosened(config(help_scale=0.2), configured)
    assert "help_scale 0.8 > 0.5" in loosened(config(help_scale=0.8), configured)[0]
    with pytest.raises(ValueError, match="help_scale 1.5"):
        config(help_scale=1.5)
