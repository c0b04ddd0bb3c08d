import numpy as np
import pytest

from pathlib import Path

from vla_core.artifact import ArtifactError
from vla_core.contract import RobotContract
from vla_policy.runtime import PolicySlot, load_policy

CONTRACT = RobotContract.from_yaml(Path(__file__).resolve().parents[3] / "params" / "robots" / "tabletop_sim.yaml")
CPU = ["onnxruntime-cpu"]
FEEDS = {"state": np.zeros((1, 4), np.float32), "language": np.zeros((1, 384), np.float32)}


def load(models, spec, encoder="minilm"):
    return load_policy(spec, models, CONTRACT, encoder, CPU)


def test_load_verifies_and_infers(models, make_artifact):
    make_artifact(models, "a", bias=0.1)
    policy = load(models, "tiny/a")
    assert policy.engine.name == "onnxruntime-cpu" and policy.load_time > 0
    np.testing.assert_allclose(policy.infer(FEEDS), np.full((4, 2), 0.1), atol=1e-6)


@pytest.mark.parametrize("case,fragment", [
    ("corrupt", "checksum verification failed"),
    ("encoder", "trained with encoder 'other'"),
    ("action_dim", r"expects shape \[3\], the contract serves \[2\]"),
    ("nan", "non-finite"),
])
def test_bad_artifacts_are_rejected_with_the_reason(models, make_artifact, case, fragment):
    if case == "corrupt":
        art = make_artifact(models, "b", bias=0.2)
        with open(art.path / "policy.onnx", "r+b") as f:
            f.seek(100)
            f.write(b"\x00\x01\x02")
    elif case == "encoder":
        make_artifact(models, "b", bias=0.2, encoder="other")
    elif case == "action_dim":
        make_artifact(models, "b", bias=0.2, action_dim=3)
    else:
        make_artifact(models, "b", bias=0.2, poison=True)
    with pytest.raises(ArtifactError, match=fragment):
        load(models, "tiny/b")


def test_slot_swaps_only_at_a_boundary_and_rolls_back(models, make_artifact):
    make_artifact(models, "a", bias=0.1)
    make_artifact(models, "b", bias=0.2)
    slot = PolicySlot()
    first = slot.stage(load(models, "tiny/a"))
    assert first.is_set() and slot.active.label == "tiny/a"
    done = slot.stage(load(models, "tiny/b"))
    assert slot.swap_if_staged(at_boundary=False) is None and not done.is_set()
    assert slot.active.label == "tiny/a"
    assert slot.swap_if_staged(at_boundary=True).label == "tiny/b" and done.is_set()
    assert slot.previous.label == "tiny/a"
    slot.stage_rollback()
    slot.swap_if_staged(at_boundary=True)
    assert slot.active.label == "tiny/a" and slot.previous.label == "tiny/b"


def test_rollback_without_previous_is_an_error():
    with pytest.raises(ArtifactError, match="no previous policy"):
        PolicySlot().stage_rollback()
