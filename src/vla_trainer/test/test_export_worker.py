"""The learner's export process (vla_trainer.rl.export_actor.ExportWorker): one process exports version after
version (each a verified policy artifact the policy node loads), a bad request fails only its own job with the
reason, and a killed worker is replaced by the next export."""
from __future__ import annotations

from pathlib import Path

import pytest

from vla_core.artifact import verify_artifact
from vla_core.contract import RobotContract
from vla_trainer.rl.export_actor import ExportWorker
from vla_trainer.rl.online import learner_agent
from vla_trainer.rl.pretrain import learner_params

WS = Path(__file__).resolve().parents[3]
CONTRACT = RobotContract.from_yaml(WS / "params" / "robots" / "tabletop_sim.yaml")


def test_one_process_exports_every_version_and_survives_a_bad_request(tmp_path):
    p = learner_params(None, ["hidden=16", "channels=8", "image_downsample=4"])
    p["demos"] = []
    agent, _ = learner_agent(CONTRACT, p)
    names = dict(fps=CONTRACT.fps, state_names=list(CONTRACT.state.names), action_names=list(CONTRACT.action.names),
                 encoder_id="all-MiniLM-L6-v2", training={"algorithm": "sac_online"})
    models = tmp_path / "models"
    worker = ExportWorker()
    try:
        for version in ("1", "2"):
            weights = tmp_path / f"agent-{version}.safetensors"
            agent.save(weights)
            job = worker.submit(weights, models, "sac", version, **names)
            job.wait(120)
            assert verify_artifact(models / "sac" / version).manifest["version"] == version
            assert not weights.exists()  # the snapshot is removed once exported
        assert worker.started_processes == 1
        bad = worker.submit(tmp_path / "missing.safetensors", models, "sac", "3", **names)
        with pytest.raises(RuntimeError, match="exporting sac/3 failed: .*missing.safetensors"):
            bad.wait(60)
        weights = tmp_path / "agent-3.safetensors"
        agent.save(weights)
        worker.submit(weights, models, "sac", "3", **names).wait(120)
        assert verify_artifact(models / "sac" / "3").manifest["version"] == "3" and worker.started_processes == 1
        # A job killed in flight takes its process with it; the next export starts another.
        agent.save(weights)
        worker.submit(weights, models, "sac", "4", **names).kill()
        agent.save(weights)
        worker.submit(weights, models, "sac", "5", **names).wait(120)
        assert worker.started_processes == 2 and verify_artifact(models / "sac" / "5")
    finally:
        worker.close()
    assert worker.proc is None
