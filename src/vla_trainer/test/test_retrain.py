import json

import numpy as np
import pytest

from vla_core.dataset import DatasetWriter
from vla_trainer.retrain import RetrainTrigger, count_episodes

FEATURES = {"observation.state": {"dtype": "float32", "shape": [2], "names": ["x", "y"]},
            "action": {"dtype": "float32", "shape": [2], "names": ["vx", "vy"]}}


def _save(writer: DatasetWriter, frames: int = 3) -> None:
    ep = writer.begin_episode("push the red block")
    for i in range(frames):
        ep.add_frame({"observation.state": np.full(2, i, np.float32), "action": np.zeros(2, np.float32),
                      "timestamp": i / 10.0, "intervention": True, "late": False, "valid": True})
    ep.save(success=True)


def test_trigger_counts_episodes_saved_after_arming_and_restarts_at_each_run(tmp_path):
    a, b = tmp_path / "a", tmp_path / "b"
    writer_a = DatasetWriter(a, 10.0, FEATURES)
    _save(writer_a)
    trigger = RetrainTrigger([str(a), str(b)])
    assert trigger.arm() == 1 and not trigger.due(3)  # what was there before does not count
    _save(writer_a)
    writer_b = DatasetWriter(b, 10.0, FEATURES)  # a dataset that appears later counts too
    _save(writer_b)
    assert trigger.pending() == 2 and not trigger.due(3)
    _save(writer_b)
    assert trigger.due(3)
    assert trigger.started() == 4 and trigger.pending() == 0 and not trigger.due(3)
    for _ in range(3):
        _save(writer_a)
    assert trigger.due(3)
    assert not trigger.due(0)  # off
    assert not RetrainTrigger([]).due(1)  # nothing to count


def test_count_episodes_is_zero_before_the_first_and_names_a_bad_info_file(tmp_path):
    assert count_episodes(tmp_path / "not_yet") == 0
    (tmp_path / "meta").mkdir()
    (tmp_path / "meta" / "info.json").write_text(json.dumps({"fps": 10}))
    with pytest.raises(ValueError, match=r"info\.json: no total_episodes .* Fix retrain_datasets"):
        count_episodes(tmp_path)
