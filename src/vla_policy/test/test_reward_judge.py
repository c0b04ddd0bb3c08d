"""The reward node's rclpy-free parts: at most one success per episode after success_frames in a row, none outside
an episode, and a reward model named by directory or NAME/VERSION (or a clear error)."""
from __future__ import annotations

import pytest

from vla_core.artifact import ArtifactError
from vla_policy.reward import SuccessJudge, resolve_reward_model


def test_success_needs_frames_in_a_row_inside_an_episode_and_comes_once():
    judge = SuccessJudge(3)
    assert [judge.judge(1.0) for _ in range(5)] == [False] * 5  # no episode open: rewards, no success
    judge.start()
    assert [judge.judge(r) for r in (1, 1, 0, 1, 1, 1, 1, 1)] == [False, False, False, False, False, True, False,
                                                                    False]
    judge.end()
    judge.start()  # a new episode may succeed again, counting from its own frames
    assert [judge.judge(1.0) for _ in range(3)] == [False, False, True]
    judge.start()
    judge.judge(1.0)
    judge.end()  # a TIMEOUT from the sim: the streak is gone
    assert not judge.judge(1.0) and judge.streak == 1
    with pytest.raises(ValueError, match="success_frames 0"):
        SuccessJudge(0)


def test_a_reward_model_by_path_or_name_and_a_clear_error(tmp_path):
    models = tmp_path / "models"
    (models / "success" / "2").mkdir(parents=True)
    (models / "success" / "2" / "manifest.json").write_text("{}")
    assert resolve_reward_model("success/2", models) == models / "success" / "2"
    assert resolve_reward_model(str(models / "success" / "2"), tmp_path / "elsewhere") == models / "success" / "2"
    with pytest.raises(ArtifactError, match="no reward model given: set model"):
        resolve_reward_model(" ", models)
    with pytest.raises(ArtifactError, match="no reward artifact at 'success/3'"):
        resolve_reward_model("success/3", models)
