import numpy as np
import pytest

from pathlib import Path

from vla_core.artifact import Artifact, ArtifactError
from vla_core.contract import RobotContract
from vla_policy.engines import make_engine
from vla_policy.fixtures import BAD_ARTIFACTS, make_bad_artifact
from vla_policy.inputs import InputSpec
from vla_policy.runtime import (LoadedPolicy, PolicyOutputError, PolicySlot, _check_on_golden, engine_input_problems,
                                load_policy)

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


@pytest.mark.parametrize("case", sorted(BAD_ARTIFACTS))
def test_spoilt_artifacts_are_rejected_with_the_reason_never_an_other_error(models, case):
    make_bad_artifact(models, "bad", case)
    with pytest.raises(ArtifactError) as err:
        load(models, "tiny/bad")
    assert BAD_ARTIFACTS[case] in str(err.value)


def test_a_nan_tolerance_cannot_pass_a_mismatched_model(models, make_artifact):
    """Past the manifest check, a NaN atol (or a NaN difference) still fails the golden comparison."""
    art = make_bad_artifact(models, "bad", "atol_nan")  # golden outputs off by 1.0
    manifest = dict(art.manifest, golden={**art.manifest["golden"], "atol": float("nan")})
    engine, _ = make_engine(art.path / "policy.onnx", CPU)
    policy = LoadedPolicy(Artifact(art.path, manifest), engine, 0.0)
    with pytest.raises(ArtifactError, match="differs by 1 > atol nan"):
        _check_on_golden(policy, warmup=0)


def test_a_spec_too_long_for_the_file_system_is_rejected(models):
    with pytest.raises(ArtifactError, match="5000 characters"):
        load(models, "n" * 5000)
    with pytest.raises(ArtifactError, match="contains '..'"):
        load(models, "../x")


def test_the_model_must_take_what_the_manifest_declares():
    specs = {"observation.state": InputSpec("observation.state", (4,), "float32"),
             "observation.images.top": InputSpec("observation.images.top", (96, 96, 3), "video")}
    names = {"observation.state": "state", "observation.images.top": "image"}
    fits = {"state": ((1, 4), np.float32), "image": (("batch", 3, 96, 96), np.float32)}
    assert engine_input_problems(specs, names, fits) == []
    problems = engine_input_problems(specs, names, {"state": ((1, 5), np.float32), "image": ((1, 3, 64, 64),
                                                                                          np.float32),
                                                    "extra": ((1,), np.int64)})
    text = "\n".join(problems)
    assert len(problems) == 3, text
    for fragment in ("'extra' is fed by no feature", "observation.state is fed as [1, 4], the model's 'state' "
                     "takes [1, 5]", "fed as [1, 3, 96, 96], the model's 'image' takes [1, 3, 64, 64]"):
        assert fragment in text


def test_an_engine_failure_is_a_dropped_output_not_a_crash(models, make_artifact):
    make_artifact(models, "a", bias=0.1)
    policy = load(models, "tiny/a")
    with pytest.raises(PolicyOutputError, match="failed on onnxruntime-cpu"):
        policy.infer({"state": np.zeros((1, 4), np.float32), "language": np.zeros((1, 383), np.float32)})


def test_a_camera_policy_declares_its_image_input(models, make_artifact):
    make_artifact(models, "cam", bias=0.1, camera=True)
    policy = load(models, "tiny/cam")
    assert policy.input_specs["observation.images.top"] == InputSpec("observation.images.top", (96, 96, 3), "video")
    feeds = dict(FEEDS, image_top=np.zeros((1, 3, 96, 96), np.float32))
    np.testing.assert_allclose(policy.infer(feeds), np.full((4, 2), 0.1), atol=1e-6)
