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
