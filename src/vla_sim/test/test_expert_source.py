"""The scripted expert as a command source, and the arm against its robot contract (no ROS)."""
from pathlib import Path

import numpy as np
import pytest

from vla_core.contract import RobotContract
from vla_sim.backends import PRESETS, make_backend
from vla_sim.contract_check import contract_mismatches
from vla_sim.expert_source import ExpertSource

ARM_CONTRACT = RobotContract.from_yaml(Path(__file__).resolve().parents[3] / "params" / "robots" / "sim_arm.yaml")


@pytest.fixture(scope="module")
def arm():
    b = make_backend(PRESETS["arm"])
    yield b
    b.close()


def test_the_expert_source_commands_what_the_backend_takes_and_stops_on_stale_state(arm):
    arm.reset(seed=1)
    source = ExpertSource("arm", timeout=0.5)
    assert source.command(0.0) is None  # nothing observed yet
    source.observe(arm.privileged_state(), episode=0, now=1.0)
    command = source.command(1.2)
    assert command.shape == (7,) and command[6] == pytest.approx(0.08)  # the gripper open, in m
    assert np.all(command >= arm.action_low) and np.all(command <= arm.action_high)
    assert source.command(1.6) is None  # the state is 0.6 s old
    with pytest.raises(ValueError, match="empty or not finite"):
        source.observe([np.nan, 1.0], episode=0, now=2.0)


def test_a_preset_without_an_expert_is_refused_naming_those_with_one():
    with pytest.raises(ValueError, match=r"preset 'pusht' has no scripted expert; use one of \['tabletop'"):
        ExpertSource("pusht")


def test_the_arm_satisfies_its_contract_and_a_wrong_command_type_names_both(arm):
    kwargs = dict(fps=arm.fps, cameras={c: arm.image_shape for c in arm.camera_names}, joint_names=arm.joint_names,
                  action_dim=len(arm.action_names), action_names=arm.action_names)
    assert contract_mismatches(ARM_CONTRACT, command_type="float64_multiarray", **kwargs) == []
    np.testing.assert_allclose(ARM_CONTRACT.action.low, arm.action_low, atol=1e-6)
    np.testing.assert_allclose(ARM_CONTRACT.action.high, arm.action_high, atol=1e-6)
    problems = contract_mismatches(ARM_CONTRACT, command_type="joint_trajectory", **kwargs)
    assert problems == ["command: the contract's action is std_msgs/msg/Float64MultiArray, but this robot takes "
                        "trajectory_msgs/msg/JointTrajectory (command_type joint_trajectory); set command_type to "
                        "float64_multiarray"]
    problems = contract_mismatches(ARM_CONTRACT, command_type="float64_multiarray",
                                   **{**kwargs, "cameras": {"scene": (64, 64, 3)}})
    assert any("'scene': the environment renders 64x64" in p for p in problems)
    assert any("cameras ['wrist'] of the contract are not published" in p for p in problems)
    from dataclasses import replace
    delta = replace(ARM_CONTRACT, action=replace(ARM_CONTRACT.action, mode="delta"))
    problems = contract_mismatches(delta, command_type="float64_multiarray", **kwargs)
    assert problems == ["action.mode delta: this simulated robot takes absolute targets; set mode absolute in the "
                        "contract"]


def test_scripted_demonstrations_of_the_arm_record_both_cameras_and_joint_targets(tmp_path):
    from vla_core.dataset.reader import DatasetReader
    from vla_sim.demos import record_scripted_demos
    counts = record_scripted_demos(tmp_path / "arm", ARM_CONTRACT, preset="arm", episodes=1)
    assert counts["episodes"] == 1 and counts["expert_failures"] == 0
    reader = DatasetReader(tmp_path / "arm")
    assert sorted(reader.camera_keys) == ["observation.images.scene", "observation.images.wrist"]
    first = reader[0]
    scene, wrist = (np.asarray(first[k]) for k in sorted(reader.camera_keys))
    assert scene.shape == wrist.shape and not np.array_equal(scene, wrist)
    action = np.asarray(first["action"])
    assert action.shape == (7,) and action[6] == pytest.approx(0.08)  # the gripper's opening in m


def test_the_corrector_takes_over_from_a_stalled_policy_and_hands_back(arm):
    """A policy that only holds the arm still: after ``patience`` s without progress the expert drives for
    ``takeover`` s, then hands back; with takeovers as long as a whole demonstration the cube is placed."""
    from vla_sim.corrector import TakeoverRule
    rule = TakeoverRule(patience=1.0, takeover=2.0, mode="on_error")
    source = ExpertSource("arm", timeout=0.5, rule=rule)
    frame = arm.reset(seed=3)
    driven = []
    for step in range(60):
        now = step * arm.dt
        source.observe(arm.privileged_state(), episode=0, now=now)
        command = source.command(now)
        driven.append(command is not None)
        frame = arm.step(arm.hold_action() if command is None else command)
    # Held still for 1 s (10 ticks), the expert drives for 2 s (20 ticks) and hands back; the arm then stays
    # where the expert left it, which is progress, so the next takeover waits for another second of no progress.
    assert driven[:10] == [False] * 10 and driven[10:30] == [True] * 20 and not driven[30]
    assert rule.takeovers >= 1 and rule.episode_takeovers == rule.takeovers
    # A new episode hands back at once and restarts the patience timer.
    arm.reset(seed=3)
    source.observe(arm.privileged_state(), episode=1, now=100.0)
    assert source.command(100.0) is None and rule.episode_takeovers == 0

    long_rule = TakeoverRule(patience=0.5, takeover=30.0, mode="on_error")
    source = ExpertSource("arm", timeout=0.5, rule=long_rule)
    frame = arm.reset(seed=4)
    for step in range(120):
        now = step * arm.dt
        source.observe(arm.privileged_state(), episode=0, now=now)
        command = source.command(now)
        frame = arm.step(arm.hold_action() if command is None else command)
        if frame.is_success:
            break
    assert frame.is_success and long_rule.takeovers == 1


def test_the_arms_progress_falls_through_a_demonstration(arm):
    """The corrector's progress measure on the expert's own episode: it ends near zero, and no stretch without
    1 cm of progress comes near the default patience (3 s)."""
    from vla_sim.corrector import ArmTaskDistance
    distance = ArmTaskDistance()
    arm.reset(seed=5)
    expert = arm.make_expert()
    d = [distance(arm.privileged_state())]
    for _ in range(150):
        frame = arm.step(expert.act(arm.privileged_state()))
        d.append(distance(arm.privileged_state()))
        if frame.is_success:
            break
    assert frame.is_success and d[-1] < 0.05 < d[0]
    longest, reference, since = 0, d[0], 0
    for i, value in enumerate(d):
        if value <= reference - 0.01:
            reference, since = value, i
        longest = max(longest, i - since)
    assert longest * arm.dt < 2.0, f"{longest} ticks without progress"
