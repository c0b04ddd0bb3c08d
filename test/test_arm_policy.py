"""A trained 2-camera policy drives the simulated arm through the ROS graph, in real processes (vla up arm_policy):
sim -> perception (both cameras) -> policy (feeds from both, the contract's joint command) -> safety shield -> sim.

The policy is trained here, in a subprocess, by the workspace's own trainer: one scripted demonstration (both
cameras) and 3 optimisation steps of an mlp, exported to ONNX (about 10 s). Its quality is not the point (it does
not solve the task); its commands are real outputs of a 2-camera model that the node serves. Stops hold position:
with no policy, on e-stop, and when the policy doubts an input (it then proposes nothing and the watchdog holds).
"""
from __future__ import annotations

import json
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
from diagnostic_msgs.msg import DiagnosticArray
from sensor_msgs.msg import Image, JointState
from std_msgs.msg import Bool, Float64MultiArray
from std_srvs.srv import Trigger

from vla_core.contract import RobotContract
from vla_interfaces.msg import InstructionEmbedding, PolicyStatus, ShieldState
from vla_interfaces.srv import LoadPolicy
from vla_ros import node_qos

WS = Path(__file__).resolve().parents[1]
pytestmark = pytest.mark.ros

CONTRACT = RobotContract.from_yaml(WS / "params" / "robots" / "sim_arm.yaml")
JOINTS = CONTRACT.state.joints
LOW, HIGH = np.array(CONTRACT.action.low), np.array(CONTRACT.action.high)
CAMERAS = ("scene", "wrist")

# Runs in its own process: MuJoCo renders the demonstration, then torch trains (torch._dynamo must be loaded
# before EGL renders, docs/bench_arm.md).
TRAIN = """
import sys
from pathlib import Path
import torch._dynamo  # noqa: F401
from vla_core.contract import RobotContract
from vla_core.paths import workspace_path
from vla_sim.demos import record_scripted_demos
from vla_trainer.config import build_config
from vla_trainer.train import Trainer
out, policy, steps, execution, receding = Path(sys.argv[1]), sys.argv[2], int(sys.argv[3]), sys.argv[4], int(sys.argv[5])
contract = RobotContract.from_yaml(workspace_path("params/robots/sim_arm.yaml"))
record_scripted_demos(out / "demos", contract, preset="arm", episodes=1, seed_start=0)
cfg = build_config({"policy": {"type": policy, "chunk_size": 5, "image_downsample": 2},
    "data": {"paths": [str(out / "demos")], "cache_dir": str(out / "cache"), "paraphrase": "none"},
    "train": {"max_steps": steps, "epochs": 100000, "lr": 1e-3, "warmup_steps": 1, "time_budget_s": 600,
              "batch_size": 8},
    "output": {"models_dir": str(out / "models"), "run_dir": str(out / "run"), "name": "arm-tiny", "version": "1",
               "execution": execution, "receding_steps": receding, "log": ["csv"]}})
print(Trainer(cfg, lambda event: None).run()["artifact"])
"""


def train_tiny_arm_policy(out: Path, execution: str = "receding_horizon", receding_steps: int = 1) -> Path:
    """A 2-camera mlp trained for 3 steps on one scripted demonstration; returns the models directory."""
    done = subprocess.run([sys.executable, "-c", TRAIN, str(out), "mlp", "3", execution, str(receding_steps)],
                          cwd=WS, capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    return out / "models"


@pytest.fixture(scope="module")
def arm_models(tmp_path_factory) -> Path:
    # A receding horizon of the whole chunk (5 actions): a chunk sent as one trajectory then runs to its end.
    return train_tiny_arm_policy(tmp_path_factory.mktemp("arm_policy"), "receding_horizon", 5)


def latest(messages):
    return messages[-1][1]


def positions(msg: JointState) -> np.ndarray:
    assert tuple(msg.name) == JOINTS
    return np.array(msg.position)


def assert_holds(probe, joints, sent, what: str):
    """The shield sends the measured position (never zeros) and the arm stays there."""
    time.sleep(0.5)
    held = np.array(latest(sent).data)
    now = positions(latest(joints))
    assert np.all(np.abs(held - now) < 0.03), (what, held, now)
    assert not np.allclose(held[:6], 0.0), what
    time.sleep(0.6)
    assert np.all(np.abs(positions(latest(joints)) - now) < 0.02), (what, now, positions(latest(joints)))


def test_a_trained_two_camera_policy_drives_the_arm_through_the_shield_and_every_stop_holds(probe, vla, arm_models):
    manifest = json.loads((arm_models / "arm-tiny" / "1" / "manifest.json").read_text())
    assert set(manifest["onnx"]["inputs"]) >= {f"observation.images.{c}" for c in CAMERAS}
    images = {c: probe.collect(Image, f"/observation/images/{c}", node_qos.SENSOR_SUB) for c in CAMERAS}
    joints = probe.collect(JointState, "/joint_states", node_qos.SENSOR_SUB)
    proposed = probe.collect(Float64MultiArray, "/policy/cmd", node_qos.COMMAND)
    sent = probe.collect(Float64MultiArray, "/cmd", node_qos.COMMAND)
    shield = probe.collect(ShieldState, "/safety_shield/state", 10)
    status = probe.collect(PolicyStatus, "/policy/status", 10)
    embeddings = probe.collect(InstructionEmbedding, "/instruction/embedding", node_qos.LATCHED)
    up = vla("up", "arm_policy", "--quiet", "--set", f"policy.models_dir={arm_models}",
             "--set", "policy.engines=[onnxruntime-cpu]", "--set", "sim_robot.max_episode_steps=100000",
             "--set", "policy.status_period=0.2")
    up.wait_line(r"all 5 nodes active", 90)

    # Perception serves both cameras, model-ready, and they differ.
    probe.wait_for(lambda: all(len(images[c]) > 3 for c in CAMERAS) and len(joints) > 3 and embeddings, 20,
                   "both model-ready cameras, joint_states and the instruction embedding")
    for c in CAMERAS:
        image = latest(images[c])
        assert (image.height, image.width, image.encoding) == (96, 96, "rgb8")
    assert bytes(latest(images["scene"]).data) != bytes(latest(images["wrist"]).data)

    # No policy yet: nothing is proposed, and the shield holds the arm where it is.
    probe.wait_for(lambda: shield and "watchdog" in latest(shield).rules and sent, 10, "the shield's hold")
    assert not proposed
    assert_holds(probe, joints, sent, "no policy")
    start = positions(latest(joints))

    # A trained 2-camera policy is loaded and drives: its joint commands reach the sim through the shield.
    result = probe.call(LoadPolicy, "/policy/load_policy", LoadPolicy.Request(artifact="arm-tiny/1"), timeout=60)
    assert result.success, result.message
    probe.wait_for(lambda: len(proposed) > 10 and latest(shield).active_source == "policy", 20,
                   "policy commands through the shield")
    assert all(len(m.data) == len(JOINTS) and np.all(np.isfinite(m.data)) for _, m in proposed)
    probe.wait_for(lambda: np.max(np.abs(positions(latest(joints)) - start)) > 0.05, 20, "the arm moving")
    s = latest(status)
    assert s.proposing and (s.policy, s.version, s.engine) == ("arm-tiny", "1", "onnxruntime-cpu"), s
    assert all(np.all((np.array(m.data) >= LOW - 1e-9) & (np.array(m.data) <= HIGH + 1e-9)) for _, m in sent)

    # E-stop: the arm holds its measured position although the policy keeps proposing; reset gives it back.
    estop = probe.node.create_publisher(Bool, "/safety/estop", 10)
    probe.publish_until(estop, Bool(data=True), lambda: latest(shield).estop, 10, "the e-stop")
    assert_holds(probe, joints, sent, "e-stop")
    assert latest(status).proposing
    estop.publish(Bool(data=False))
    assert probe.call(Trigger, "/safety_shield/reset", Trigger.Request()).success
    probe.wait_for(lambda: latest(shield).active_source == "policy" and not latest(shield).estop, 10,
                   "the policy driving again after the reset")

    # The policy doubts its instruction (an embedding from another encoder): it proposes nothing, the watchdog
    # holds the arm; the language node's embedding again, and it drives.
    good = latest(embeddings)
    foreign = probe.node.create_publisher(InstructionEmbedding, "/instruction/embedding", node_qos.LATCHED)
    bad = InstructionEmbedding(text=good.text, encoder_id="another-encoder", embedding=list(good.embedding))
    probe.publish_until(foreign, bad, lambda: not latest(status).proposing, 10, "the policy to stop proposing")
    assert "observation.language" in latest(status).stale_inputs
    probe.wait_for(lambda: "watchdog" in latest(shield).rules, 5, "the shield's watchdog")
    assert_holds(probe, joints, sent, "watchdog")
    probe.publish_until(foreign, good, lambda: latest(status).proposing, 10, "the policy proposing again")

    # A wrist image the policy cannot use is dropped and counted under the wrist camera's feature: the node
    # builds its feeds from both cameras.
    diags = probe.collect(DiagnosticArray, "/diagnostics", 10)
    wrist = probe.node.create_publisher(Image, "/observation/images/wrist", node_qos.SENSOR_PUB)
    small = Image(height=1, width=1, encoding="rgb8", step=3, data=bytes(3))
    probe.publish_until(wrist, small, lambda: probe.count(diags, "policy: policy",
                                                          "rejected: observation.images.wrist shape") > 0, 10,
                        "the wrist image rejected")

    up.interrupt()
    assert up.wait(30) == 0, up.output


def test_the_policy_sends_its_chunk_as_one_trajectory_and_the_shield_follows_every_point(probe, vla, arm_models):
    from trajectory_msgs.msg import JointTrajectory

    from vla_ros.convert import array_to_joint_trajectory, joint_trajectory_chunk
    joints = probe.collect(JointState, "/joint_states", node_qos.SENSOR_SUB)
    proposed = probe.collect(JointTrajectory, "/policy/cmd", node_qos.COMMAND)
    sent = probe.collect(JointTrajectory, "/cmd", node_qos.COMMAND)
    shield = probe.collect(ShieldState, "/safety_shield/state", 10)
    status = probe.collect(PolicyStatus, "/policy/status", 10)
    # The arm as a JointTrajectoryController arm, the policy sending its chunks as trajectories
    # (params/robots/sim_arm_trajectory.yaml, params/policy_arm_trajectory.yaml).
    up = vla("up", "arm_policy_trajectory", "--quiet", "--set", f"policy.models_dir={arm_models}",
             "--set", "policy.artifact=arm-tiny/1", "--set", "policy.engines=[onnxruntime-cpu]",
             "--set", "policy.status_period=0.2", "--set", "sim_robot.max_episode_steps=100000")
    up.wait_line(r"all 5 nodes active", 90)
    probe.wait_for(lambda: len(proposed) >= 6 and joints, 30, "six trajectories from the policy")
    start_ticks = latest(status).proposed if status else 0

    # Each inference goes out as one trajectory of the chunk: 5 points at 0.1 .. 0.5 s, to the contract's joints.
    for _, msg in list(proposed):
        assert tuple(msg.joint_names) == JOINTS
        assert [p.time_from_start.sec + 1e-9 * p.time_from_start.nanosec for p in msg.points] == \
            pytest.approx([0.1, 0.2, 0.3, 0.4, 0.5])
    # ... once per chunk (a horizon of 5 ticks), not once per tick.
    n0 = len(proposed)
    probe.wait_for(lambda: latest(status).proposed >= start_ticks + 20, 20, "20 more ticks")
    ticks, trajectories = latest(status).proposed - start_ticks, len(proposed) - n0
    assert trajectories <= ticks / 3 + 1, (trajectories, ticks)

    # The shield follows every point as it falls due: what it sends (one point per control period) is, where no
    # limit acted, one of the chunk's points, and over a chunk it sends several different points in turn.
    chunks = [joint_trajectory_chunk(m, JOINTS)[0] for _, m in list(proposed)]
    followed = set()
    for _, state in list(shield):
        if state.active_source != "policy" or any(r.startswith(("limit", "watchdog", "reject")) for r in state.rules):
            continue
        for c, chunk in enumerate(chunks):
            hits = np.flatnonzero(np.all(np.abs(chunk - np.array(state.command)) < 1e-9, axis=1))
            if hits.size:
                followed.add((c, int(hits[0])))
    assert len({i for _, i in followed}) >= 3, sorted(followed)
    assert all(len(m.points) == 1 for _, m in sent)  # the robot gets one point per control period
    start = positions(joints[0][1])
    probe.wait_for(lambda: np.max(np.abs(positions(latest(joints)) - start)) > 0.05, 20, "the arm moving")

    # A trajectory with one bad point (NaN at its fourth) is rejected whole, and the arm holds.
    rejected = latest(shield).rejected
    plan = np.tile(positions(latest(joints)), (5, 1))
    bad = array_to_joint_trajectory(plan, JOINTS, dt=0.1)
    bad.points[3].positions[2] = float("nan")
    teleop = probe.node.create_publisher(JointTrajectory, "/teleop/cmd", node_qos.COMMAND)
    probe.publish_until(teleop, bad, lambda: latest(shield).rejected >= rejected + 3, 10,
                        "trajectories with a NaN point rejected")
    assert any(r.startswith("reject") for r in latest(shield).rules)
    assert all(np.all(np.isfinite(m.points[0].positions)) for _, m in sent)

    up.interrupt()
    assert up.wait(30) == 0, up.output


def test_chunk_as_trajectory_needs_a_trajectory_contract(vla):
    up = vla("up", "arm_policy", "--quiet", "--set", "policy.chunk_as_trajectory=true")
    assert up.wait(60) == 1, up.output
    assert "chunk_as_trajectory needs a contract whose action is trajectory_msgs/msg/JointTrajectory" in up.output, \
        up.output
