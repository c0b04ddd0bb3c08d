"""The policy node in real processes: it drives the sim robot, hot-swaps under load without a missed tick,
rejects bad artifacts while the running policy keeps serving, and rolls back."""
from __future__ import annotations

import time
from pathlib import Path

import numpy as np
import pytest
from geometry_msgs.msg import Twist
from sensor_msgs.msg import JointState
from std_srvs.srv import Trigger

from vla_interfaces.msg import InstructionEmbedding, PolicyStatus
from vla_interfaces.srv import LoadPolicy
from vla_policy.fixtures import make_artifact
from vla_ros import node_qos

pytestmark = pytest.mark.ros
WS = Path(__file__).resolve().parents[1]


def profile(tmp_path, with_sim: bool, artifact: str) -> list[str]:
    models = tmp_path / "models"
    sim = f"""
  - name: sim_robot
    package: vla_sim
    executable: sim_robot
    params: [{WS / 'params' / 'sim_robot.yaml'}]""" if with_sim else ""
    path = tmp_path / "policy_test.yaml"
    path.write_text(f"""
description: policy node test
use_sim_time: false
manager: {{params: {WS / 'params' / 'lifecycle_manager.yaml'}}}
nodes:{sim}
  - name: policy
    package: vla_policy
    executable: policy
    params: [{WS / 'params' / 'policy.yaml'}]
    remap: {{policy/cmd_vel: cmd_vel}}
""")
    return [str(path), "--quiet", "--set", f"policy.models_dir={models}", "--set", f"policy.artifact={artifact}",
            "--set", "policy.engines=[onnxruntime-cpu]", "--set", "sim_robot.publish_clock=false"][: 8 if not with_sim else 10]


def publish_embedding(probe, encoder="minilm"):
    pub = probe.node.create_publisher(InstructionEmbedding, "/instruction/embedding", node_qos.LATCHED)
    msg = InstructionEmbedding(text="push the red block into the purple zone", encoder_id=encoder,
                               embedding=[0.0] * 384)
    pub.publish(msg)
    return pub


def test_policy_drives_the_sim_robot(probe, vla, tmp_path):
    make_artifact(tmp_path / "models", "a", bias=0.05)
    joints = probe.collect(JointState, "/joint_states", node_qos.SENSOR_SUB)
    status = probe.collect(PolicyStatus, "/policy/status", 10)
    publish_embedding(probe)
    up = vla("up", *profile(tmp_path, with_sim=True, artifact="tiny/a"))
    up.wait_line(r"all \d+ nodes active", 90)
    probe.wait_for(lambda: len(joints) > 20, 20, "joint states")
    time.sleep(1.5)
    recent = [j for t, j in joints if t > time.monotonic() - 1.0]
    assert np.mean([j.velocity[0] for j in recent]) == pytest.approx(0.05, abs=0.01)
    probe.wait_for(lambda: status and status[-1][1].proposing, 10, "a proposing status")
    s = status[-1][1]
    assert (s.policy, s.version, s.engine) == ("tiny", "a", "onnxruntime-cpu")


def test_hot_swap_under_load_rejections_and_rollback(probe, vla, tmp_path):
    models = tmp_path / "models"
    for version, bias in (("a", 0.1), ("b", 0.2)):
        make_artifact(models, version, bias=bias)
    art = make_artifact(models, "corrupt", bias=0.3)
    with open(art.path / "policy.onnx", "r+b") as f:
        f.seek(64)
        f.write(b"\xff\xfe")
    make_artifact(models, "nan", bias=0.3, poison=True)
    make_artifact(models, "wide", bias=0.3, action_dim=3)

    commands = probe.collect(Twist, "/cmd_vel", node_qos.COMMAND)
    publish_embedding(probe)
    joints = probe.node.create_publisher(JointState, "/joint_states", node_qos.SENSOR_PUB)
    up = vla("up", *profile(tmp_path, with_sim=False, artifact="tiny/a"))
    up.wait_line(r"all \d+ nodes active", 90)

    def feed(seconds):
        end = time.monotonic() + seconds
        while time.monotonic() < end:
            msg = JointState(name=["gantry_x", "gantry_y"], position=[0.0, 0.0], velocity=[0.0, 0.0])
            msg.header.stamp = probe.node.get_clock().now().to_msg()
            joints.publish(msg)
            time.sleep(0.02)

    status = probe.collect(PolicyStatus, "/policy/status", 10)
    probe.wait_for(lambda: joints.get_subscription_count() > 0, 20, "the policy's joint_states subscription")
    deadline = time.monotonic() + 15
    while not commands and time.monotonic() < deadline:
        feed(0.5)
    assert commands, "no command proposed"
    probe.wait_for(lambda: status and status[-1][1].proposed > 0, 5, "a status after the first commands")
    at_start = status[-1][1]

    def load(spec):
        return probe.call(LoadPolicy, "/policy/load_policy", LoadPolicy.Request(artifact=spec), timeout=30)

    import threading
    feeder = threading.Thread(target=feed, args=(8.0,))
    feeder.start()
    time.sleep(0.5)
    swap_call = time.monotonic()
    result = load("tiny/b")
    assert result.success, result.message
    for spec, fragment in (("tiny/corrupt", "checksum"), ("tiny/nan", "non-finite"), ("tiny/wide", "shape [3]"),
                           ("tiny/missing", "no policy artifact")):
        bad = load(spec)
        assert not bad.success and fragment in bad.message and "still serving tiny/b" in bad.message, bad.message
    loads_done = time.monotonic()
    # The window closes on a status sent after the last load, while inputs are still being fed.
    probe.wait_for(lambda: status[-1][0] > loads_done + 0.1, 5, "a status after the loads")
    final = status[-1][1]
    feeder.join()
    values = [(t, round(m.linear.x, 3)) for t, m in commands]
    before = [v for t, v in values if t < swap_call]
    after = [v for t, v in values if t > swap_call + 1.0]
    assert set(before) == {0.1} and set(after) == {0.2}
    swap_points = [i for i in range(1, len(values)) if values[i][1] != values[i - 1][1]]
    assert len(swap_points) == 1, "exactly one switch from A to B"
    # No tick without a command across the swap and the four rejected loads: counted by the node itself.
    assert final.ticks - at_start.ticks >= 10  # the window spans the swap and the four rejected loads
    assert final.proposed - at_start.proposed == final.ticks - at_start.ticks
    timeline = [(round(t - swap_call, 2), m.ticks, m.proposed, m.stale_ticks) for t, m in status]
    assert (final.missed_ticks, final.stale_ticks - at_start.stale_ticks, final.dropped_outputs) == (0, 0, 0), timeline

    rollback = probe.call(Trigger, "/policy/rollback", Trigger.Request(), timeout=30)
    assert rollback.success and "tiny/a" in rollback.message
    n = len(commands)
    feed(1.0)
    assert {round(m.linear.x, 3) for _, m in commands[n + 2:]} == {0.1}
