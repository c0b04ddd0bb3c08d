"""`vla demo --preset arm` end to end, small: the scripted expert records demonstrations through the arm's ROS graph
(both cameras, the joint command sent), the trainer trains a 2-camera policy (3 steps: quality is not the point)
and hot-swaps it into the running policy node, which alone drives the evaluation on unseen seeds and phrasings;
then one continual round: the policy drives while the expert (sim_expert in mode on_error) takes over when it
stalls, the takeovers are recorded as interventions, and the policy is fine-tuned on them (HG-DAgger) and
evaluated again. Success is not asserted here; `vla demo --preset arm` with its defaults measures it."""
import json
from pathlib import Path

import pytest

from vla_core.artifact import verify_artifact
from vla_core.dataset import DatasetReader
from vla_sim.envs.arm_instructions import arm_templates, format_arm_instruction, parse_arm_instruction

pytestmark = pytest.mark.ros


@pytest.mark.slow  # the whole loop in real processes (bring-up, recording, two training processes, evaluations)
def test_arm_demo_records_trains_hot_swaps_evaluates_and_corrects_through_the_graph(vla, tmp_path):
    out = tmp_path / "demo"
    demo = vla("demo", "--preset", "arm", "--demos", "2", "--eval-episodes", "1", "--policy", "mlp", "--steps", "3",
               "--rounds", "1", "--round-episodes", "1", "--round-steps", "2",
               "--real-time-factor", "6", "--out", str(out), "--train-set", "train.batch_size=8",
               "--train-set", f"output.models_dir={tmp_path / 'models'}", timeout=600)
    assert demo.wait(600) == 0, demo.output
    summary = json.loads(demo.lines[-1])
    report = json.loads((out / "report.json").read_text())
    assert report["config"]["train_config"] == "params/train/arm_act.yaml"  # the arm's recipe, not the tabletop's
    names = [s["name"] for s in report["stages"]]
    assert names[:8] == ["bring-up", "wait for the graph", "record demonstrations", "round 0: train + deploy",
                         "round 0: evaluate", "round 1: record with corrections", "round 1: train + deploy",
                         "round 1: evaluate"]
    # Recorded through the graph: both cameras and the 7 joint targets the shield sent.
    data = DatasetReader(out / "data" / "robot", decode_images=False)
    assert data.num_episodes == 3 and all(data.episode(i)["success"] for i in range(2))
    # The round's episode: a 3-step policy stalls, and the expert took over (flagged per frame); the demonstrations
    # are flagged throughout (the expert drove every frame).
    (correction,) = report["corrections"]
    assert correction["episodes"] == 1 and correction["episodes_with_takeover"] == 1, correction
    assert 0 < correction["intervention_frames"] < correction["frames"], correction
    assert {"observation.images.scene", "observation.images.wrist"} <= set(data.features)
    assert data.features["action"]["shape"] == [7]
    # The deployed artifact is a verified 2-camera policy, and it was serving (ticks measured) in the evaluation.
    rnd, fine_tuned = report["rounds"]
    assert fine_tuned["round"] == 1 and fine_tuned["artifact"] != rnd["artifact"]
    artifact = verify_artifact(Path(rnd["artifact"]))
    assert {"observation.images.scene", "observation.images.wrist"} <= set(artifact.manifest["onnx"]["inputs"])
    assert rnd["episodes"] == 1 and 0.0 <= rnd["ci95"][0] <= rnd["success_rate"] <= rnd["ci95"][1] <= 1.0
    episode = report["episodes"][0]
    assert episode["seed"] >= 100_000  # never a recorded seed
    task = parse_arm_instruction(episode["instruction"])
    assert episode["instruction"] in {format_arm_instruction(t, task) for t in arm_templates(task.skill, "heldout")}
    assert report["latency_ms"] and summary["latency_p99_ms"] > 0
    assert "success" in demo.output and "95%" in demo.output
