"""The policy node in real processes: it drives the sim robot, hot-swaps under load without a missed tick,
rejects bad artifacts while the running policy keeps serving, and rolls back."""
from __future__ import annotations

import threading
import time
from pathlib import Path

import numpy as np
import pytest
from diagnostic_msgs.msg import DiagnosticArray
from geometry_msgs.msg import Twist
from sensor_msgs.msg import Image, JointState
from std_srvs.srv import Trigger

from vla_interfaces.msg import EpisodeEvent, InstructionEmbedding, PolicyStatus
from vla_interfaces.srv import LoadPolicy
from vla_policy.fixtures import BAD_ARTIFACTS, make_artifact, make_bad_artifact
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


def diagnostic_values(diags, name: str) -> dict[str, str]:
    for _, array in reversed(list(diags)):
        for status in array.status:
            if status.name == name:
                return {kv.key: kv.value for kv in status.values}
    return {}


class Feeder:
    """Publishes joint_states and a 96x96 top image at 20 Hz, fresh-stamped; ``image`` can be swapped for a bad one."""

    def __init__(self, probe):
        self.probe = probe
        self.joints = probe.node.create_publisher(JointState, "/joint_states", node_qos.SENSOR_PUB)
        self.images = probe.node.create_publisher(Image, "/observation/images/top", node_qos.SENSOR_PUB)
        self.image = self.make_image(96, 96)
        self.running = True
        self.thread = threading.Thread(target=self._run, daemon=True)
        self.thread.start()

    @staticmethod
    def make_image(h, w):
        return Image(height=h, width=w, encoding="rgb8", step=w * 3, data=bytes(h * w * 3))

    def _run(self):
        while self.running:
            stamp = self.probe.node.get_clock().now().to_msg()
            joints = JointState(name=["gantry_x", "gantry_y"], position=[0.0, 0.0], velocity=[0.0, 0.0])
            joints.header.stamp = stamp
            image = self.image
            image.header.stamp = stamp
            self.joints.publish(joints)
            self.images.publish(image)
            time.sleep(0.05)

    def stop(self):
        self.running = False
        self.thread.join()


def test_bad_inputs_and_artifacts_are_dropped_counted_and_the_policy_keeps_serving(probe, vla, tmp_path):
    """The attacks that used to end the policy process: an empty (rejected) instruction embedding, a 383-value
    embedding with the right encoder id, a fresh 1x1 camera image, and six spoilt artifacts plus a 5,000-character
    name on ~/load_policy. Each is dropped or rejected with its reason and counted; the node stays up, proposes
    nothing while an input is bad, and proposes again once good inputs return."""
    models = tmp_path / "models"
    make_artifact(models, "cam", bias=0.1, camera=True)
    for case in BAD_ARTIFACTS:
        make_bad_artifact(models, f"bad_{case}", case)
    commands = probe.collect(Twist, "/cmd_vel", node_qos.COMMAND)
    status = probe.collect(PolicyStatus, "/policy/status", 10)
    diags = probe.collect(DiagnosticArray, "/diagnostics", 10)
    embedding = publish_embedding(probe)
    feeder = Feeder(probe)
    try:
        up = vla("up", *profile(tmp_path, with_sim=False, artifact="tiny/cam"), "--set", "policy.diagnostics_period=0.2")
        up.wait_line(r"all \d+ nodes active", 90)
        probe.wait_for(lambda: len(commands) > 3, 20, "commands from the camera policy")

        def proposing_again(after: float):
            probe.wait_for(lambda: [t for t, _ in commands if t > after + 0.2], 10, "commands again")

        def silent_while_bad(bad: float, good: float):
            sent = [t for t, _ in commands if bad + 0.3 < t < good]
            assert not sent, f"{len(sent)} commands proposed while an input was bad"

        def rejected(key: str) -> int:
            return int(diagnostic_values(diags, "policy: policy").get(f"rejected: {key}", 0))

        # A fresh-stamped 1x1 image on the camera topic.
        feeder.image = Feeder.make_image(1, 1)
        bad = time.monotonic()
        probe.wait_for(lambda: rejected("observation.images.top shape") >= 3, 10, "the 1x1 images counted")
        probe.wait_for(lambda: status[-1][0] > bad + 0.3 and not status[-1][1].proposing
                       and "observation.images.top" in status[-1][1].stale_inputs, 5, "a status naming the image")
        good = time.monotonic()
        feeder.image = Feeder.make_image(96, 96)
        silent_while_bad(bad, good)
        proposing_again(good)

        # The language node's "rejected instruction" message: an empty embedding. Then a 383-value one.
        for values, key in (([], "observation.language empty"), ([0.0] * 383, "observation.language shape")):
            embedding.publish(InstructionEmbedding(text="", encoder_id="minilm", embedding=values))
            bad = time.monotonic()
            probe.wait_for(lambda: rejected(key) == 1, 10, f"'{key}' counted")
            time.sleep(0.6)
            good = time.monotonic()
            embedding.publish(InstructionEmbedding(text="push the block", encoder_id="minilm", embedding=[0.0] * 384))
            silent_while_bad(bad, good)
            proposing_again(good)

        def load(spec):
            return probe.call(LoadPolicy, "/policy/load_policy", LoadPolicy.Request(artifact=spec), timeout=30)

        cases = {f"tiny/bad_{case}": fragment for case, fragment in BAD_ARTIFACTS.items()}
        cases["n" * 5000] = "5000 characters"
        for spec, fragment in cases.items():
            reply = load(spec)
            assert not reply.success and fragment in reply.message, (spec[:40], reply.message)
            assert "still serving tiny/cam" in reply.message
        after = time.monotonic()
        proposing_again(after)
        probe.wait_for(lambda: status[-1][0] > after and status[-1][1].proposing, 5, "a proposing status")
        final = status[-1][1]
        assert (final.policy, final.version) == ("tiny", "cam")
        assert final.rejected_inputs >= 5
        values = diagnostic_values(diags, "policy: policy")
        assert int(values["rejected_loads"]) == len(cases)
        assert diagnostic_values(diags, "policy: node")["callback_errors"] == "0", "every bad input was expected"
        assert up.proc.poll() is None, up.output
    finally:
        feeder.stop()


def test_input_wait_acts_once_on_each_new_observation(probe, vla, tmp_path):
    """With input_wait, a tick whose joint state is no newer than the previous tick's waits for the next one and
    acts on it at once: one proposal per observation, each from that observation (not the one before)."""
    # Random weights and one action per inference: each command depends on the state it was computed from.
    make_artifact(tmp_path / "models", "a", bias=0.0, seed=3, chunk=1)
    cmds = probe.collect(Twist, "/cmd_vel", node_qos.COMMAND)
    publish_embedding(probe)
    up = vla("up", *profile(tmp_path, with_sim=False, artifact="tiny/a"), "--set", "policy.input_wait=0.5")
    up.wait_line(r"all \d+ nodes active", 90)
    pub = probe.node.create_publisher(JointState, "/joint_states", node_qos.SENSOR_PUB)
    probe.wait_for(lambda: pub.get_subscription_count() > 0, 10, "the policy's joint_states subscription")
    sent = []
    for i in range(12):  # a new state every 0.3 s; the policy ticks at 10 Hz
        msg = JointState(name=["gantry_x", "gantry_y"], position=[0.02 * i, -0.01 * i], velocity=[0.0, 0.0])
        msg.header.stamp = probe.node.get_clock().now().to_msg()
        pub.publish(msg)
        sent.append(time.monotonic())
        time.sleep(0.3)
    answered = [(t, c) for t, c in cmds if t >= sent[2]]  # from the third state on (the policy is serving)
    assert 8 <= len(answered) <= 11, [round(t - sent[0], 2) for t, _ in cmds]  # without the wait: about 30
    values = [(round(c.linear.x, 6), round(c.linear.y, 6)) for _, c in answered]
    assert len(set(values)) == len(values), values  # each from a new state


def test_a_history_policy_sees_each_tick_and_forgets_the_past_at_an_episode_start(probe, vla, tmp_path):
    """An artifact with a 2-step state history adds the first joint's move between its two states to the action:
    with one proposal per new state (input_wait), each command is the step between consecutive states; after an
    episode START the history restarts from the next state, so that command sees no move."""
    make_artifact(tmp_path / "models", "h", bias=0.0, chunk=1, history=2)
    cmds = probe.collect(Twist, "/cmd_vel", node_qos.COMMAND)
    diags = probe.collect(DiagnosticArray, "/diagnostics", 10)
    publish_embedding(probe)
    # Inputs stay fresh across the pause at the START, so only the START can clear the history.
    up = vla("up", *profile(tmp_path, with_sim=False, artifact="tiny/h"), "--set", "policy.input_wait=0.5",
             "--set", "policy.max_observation_age=3.0", "--set", "policy.diagnostics_period=0.2")
    up.wait_line(r"all \d+ nodes active", 90)
    pub = probe.node.create_publisher(JointState, "/joint_states", node_qos.SENSOR_PUB)
    events = probe.node.create_publisher(EpisodeEvent, "/episode/events", node_qos.EVENTS)
    probe.wait_for(lambda: pub.get_subscription_count() > 0 and events.get_subscription_count() > 0, 10,
                   "the policy's joint_states and episode/events subscriptions")
    answered = []
    for i in range(10):  # a new state every 0.3 s, the first joint 0.02 m further each time
        if i == 6:
            start = EpisodeEvent(event=EpisodeEvent.START, episode_index=1)
            start.header.stamp = probe.node.get_clock().now().to_msg()
            events.publish(start)
            time.sleep(0.1)
        msg = JointState(name=["gantry_x", "gantry_y"], position=[0.02 * i, 0.0], velocity=[0.0, 0.0])
        msg.header.stamp = probe.node.get_clock().now().to_msg()
        before = time.monotonic()
        pub.publish(msg)
        probe.wait_for(lambda: [t for t, _ in cmds if t > before], 5, f"the command answering state {i}")
        answered.append(round(next(c for t, c in cmds if t > before).linear.x, 6))
        time.sleep(0.3)
    # state 0: padded with itself; states 1-5 and 7-9: one step each; state 6: the first of a new episode
    assert answered == [0.0] + [0.02] * 5 + [0.0] + [0.02] * 3, answered
    probe.wait_for(lambda: diagnostic_values(diags, "policy: policy").get("episode_starts") == "1", 5,
                   "episode_starts 1 in the policy's diagnostics")
