"""`vla demo --preset arm` end to end, small: the scripted expert records demonstrations through the arm's ROS graph
(both cameras, the joint command sent), the trainer trains a 2-camera policy (3 steps: quality is not the point)
and hot-swaps it into the running policy node, which alone drives the evaluation on unseen seeds and phrasings.
Success is not asserted here; `vla demo --preset arm` with its defaults measures it."""
import json
from pathlib import Path

import pytest

from vla_core.artifact import verify_artifact
from vla_core.dataset import DatasetReader
from vla_sim.envs.arm_instructions import arm_templates, format_arm_instruction, parse_arm_instruction

pytestmark = pytest.mark.ros


@pytest.mark.slow  # the whole loop in real processes (bring-up, recording, a training process, evaluation): ~90 s
def test_arm_demo_records_trains_hot_swaps_and_evaluates_through_the_graph(vla, tmp_path):
    out = tmp_path / "demo"
    demo = vla("demo", "--preset", "arm", "--demos", "2", "--eval-episodes", "1", "--policy", "mlp", "--steps", "3",
               "--real-time-factor", "6", "--out", str(out), "--train-set", "train.batch_size=8",
               "--train-set", f"output.models_dir={tmp_path / 'models'}", timeout=600)
    assert demo.wait(600) == 0, demo.output
    summary = json.loads(demo.lines[-1])
    report = json.loads((out / "report.json").read_text())
    assert report["config"]["train_config"] == "params/train/arm_act.yaml"  # the arm's recipe, not the tabletop's
    names = [s["name"] for s in report["stages"]]
    assert names[:5] == ["bring-up", "wait for the graph", "record demonstrations", "round 0: train + deploy",
                         "round 0: evaluate"]
    # Recorded through the graph: both cameras and the 7 joint targets the shield sent.
    data = DatasetReader(out / "data" / "robot", decode_images=False)
    assert data.num_episodes == 2 and all(data.episode(i)["success"] for i in range(2))
    assert {"observation.images.scene", "observation.images.wrist"} <= set(data.features)
    assert data.features["action"]["shape"] == [7]
    # The deployed artifact is a verified 2-camera policy, and it was serving (ticks measured) in the evaluation.
    (rnd,) = report["rounds"]
    artifact = verify_artifact(Path(rnd["artifact"]))
    assert {"observation.images.scene", "observation.images.wrist"} <= set(artifact.manifest["onnx"]["inputs"])
    assert rnd["episodes"] == 1 and 0.0 <= rnd["ci95"][0] <= rnd["success_rate"] <= rnd["ci95"][1] <= 1.0
    (episode,) = report["episodes"]
    assert episode["seed"] >= 100_000  # never a recorded seed
    task = parse_arm_instruction(episode["instruction"])
    assert episode["instruction"] in {format_arm_instruction(t, task) for t in arm_templates(task.skill, "heldout")}
    assert report["latency_ms"] and summary["latency_p99_ms"] > 0
    assert "success" in demo.output and "95%" in demo.output


def test_arm_demo_refuses_continual_rounds(vla, tmp_path):
    demo = vla("demo", "--preset", "arm", "--rounds", "1", "--out", str(tmp_path / "demo"))
    assert demo.wait(60) == 2, demo.output
    assert "--rounds 1: the arm has no scripted corrector yet" in demo.output
