"""Scripted arm demonstrations with DART noise: the recorded label is the expert's command without the noise."""
import numpy as np
import pytest

from vla_core.contract import RobotContract
from vla_core.dataset import DatasetReader
from vla_core.paths import workspace_path
from vla_sim.backends import PRESETS, make_backend
from vla_sim.demos import record_scripted_demos

CONTRACT = RobotContract.from_yaml(workspace_path("params/robots/sim_arm.yaml"))


def test_clean_labels_are_the_experts_command_without_its_noise(tmp_path):
    kwargs = dict(preset="arm", episodes=1, seed_start=0, noise_std=0.02, expert_kwargs={"gripper_delay": 0.8})
    record_scripted_demos(tmp_path / "clean", CONTRACT, labels="clean", **kwargs)
    record_scripted_demos(tmp_path / "executed", CONTRACT, **kwargs)
    clean = DatasetReader(tmp_path / "clean", decode_images=False).episode_frames(0)["action"]
    executed = DatasetReader(tmp_path / "executed", decode_images=False).episode_frames(0)["action"]
    # Same seeds, same noise: the same episode, labelled two ways.
    assert clean.shape == executed.shape
    assert 0.01 < np.abs(clean[:, :6] - executed[:, :6]).mean() < 0.025  # 0.02 rad Gaussian: 0.016 on average
    assert np.any(clean[:, 6] != executed[:, 6])  # the gripper's delayed changes
    # The first clean label is what a noise-free expert commands in the first state.
    backend = make_backend(PRESETS["arm"])
    try:
        backend.reset(0)
        first = backend.make_expert().act(backend.privileged_state())
    finally:
        backend.close()
    np.testing.assert_allclose(clean[0], first, atol=1e-5)


def test_labels_must_be_executed_or_clean(tmp_path):
    with pytest.raises(ValueError, match="labels 'noisy'"):
        record_scripted_demos(tmp_path, CONTRACT, preset="arm", episodes=1, labels="noisy")
