"""Fixtures shared by the trainer's tests."""
from pathlib import Path

import numpy as np
import pytest

from vla_core.artifact import verify_artifact
from vla_core.contract import RobotContract

TABLETOP = RobotContract.from_yaml(Path(__file__).resolve().parents[3] / "params" / "robots" / "tabletop_sim.yaml")


@pytest.fixture
def act_as_deployed():
    """``act(artifact_dir, models_dir)``: load a trained tabletop artifact exactly as the policy node loads it
    (checksums, contract, golden pair), run it once on new input and return its action chunk (K, D)."""
    from vla_policy.runtime import load_policy

    def act(artifact_dir, models_dir) -> np.ndarray:
        manifest = verify_artifact(Path(artifact_dir)).manifest
        loaded = load_policy(str(artifact_dir), models_dir, TABLETOP,
                             manifest["features"]["observation.language"]["encoder_id"], ["onnxruntime-cpu"])
        feeds = {"image_top": np.random.default_rng(3).random((1, 3, 96, 96), dtype=np.float32),
                 "state": np.zeros((1, 4), np.float32), "language": np.full((1, 384), 0.05, np.float32)}
        return loaded.infer(feeds)
    return act
