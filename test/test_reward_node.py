"""The reward node in a real process (`vla up` with the lifecycle manager): a success classifier exported by the
trainer judges the observations the test publishes as the perception node would; every ~/reward carries the
probability onnxruntime gives for that observation (checked against the artifact served in the test), a success
is published on episode/events once per episode after success_frames judged frames in a row, with the index, seed
and instruction of the episode's START, never outside an episode; a non-finite state and an embedding from another
encoder are dropped and counted, and nothing is judged meanwhile."""
from __future__ import annotations

import time
from pathlib import Path

import numpy as np
import pytest
import torch
from diagnostic_msgs.msg import DiagnosticArray
from sensor_msgs.msg import Image, JointState

from vla_core.contract import RobotContract
from vla_interfaces.msg import EpisodeEvent, InstructionEmbedding, Reward
from vla_policy.reward import RewardModel
from vla_ros import node_qos
from vla_trainer.rl.reward import SuccessClassifier, SuccessClassifierConfig, export_reward_model

WS = Path(__file__).resolve().parents[1]
CONTRACT = RobotContract.from_yaml(WS / "params" / "robots" / "tabletop_sim.yaml")
ENCODER = "reward-test-encoder"

pytestmark = pytest.mark.ros


def reward_artifact(models: Path) -> Path:
    """An untrained classifier (its probabilities vary with the image) with a threshold every frame passes."""
    torch.manual_seed(0)
    config = SuccessClassifierConfig(image_size=(96, 96), state_dim=4, language_dim=384, channels=8, hidden=16,
                                     image_downsample=2)
    return export_reward_model(SuccessClassifier(config).eval(), models, "success", "1", fps=CONTRACT.fps,
                               state_names=list(CONTRACT.state.names), encoder_id=ENCODER, threshold=0.01)


def test_reward_node_judges_observations_and_ends_an_episode_once(probe, vla, one_node_profile, tmp_path):
    path = reward_artifact(tmp_path / "models")
    served = RewardModel(path, CONTRACT, ENCODER)
    rewards = probe.collect(Reward, "/reward/reward", 50)
    events = probe.collect(EpisodeEvent, "/episode/events", node_qos.EVENTS)
    diags = probe.collect(DiagnosticArray, "/diagnostics", 10)
    language = np.random.default_rng(1).standard_normal(384).astype(np.float32)
    embedding = probe.node.create_publisher(InstructionEmbedding, "/instruction/embedding", node_qos.LATCHED)
    embedding.publish(InstructionEmbedding(text="push the red block", encoder_id=ENCODER, embedding=language.tolist()))
    profile = one_node_profile("reward", "vla_policy", WS / "params" / "reward.yaml", "the reward node alone")
    up = vla("up", str(profile), "--quiet", "--set", f"reward.model={path}", "--set", "reward.success_frames=3",
             "--set", "reward.diagnostics_period=0.2")
    up.wait_line("all 1 nodes active", 90)

    joints = probe.node.create_publisher(JointState, "/joint_states", node_qos.SENSOR_PUB)
    images = probe.node.create_publisher(Image, "/observation/images/top", node_qos.SENSOR_PUB)
    start_pub = probe.node.create_publisher(EpisodeEvent, "/episode/events", node_qos.EVENTS)
    sent: dict[tuple[int, int], tuple[np.ndarray, np.ndarray]] = {}
    rng = np.random.default_rng(2)

    def frame(state_value: float = 0.1) -> None:
        stamp = probe.node.get_clock().now().to_msg()
        # The contract's state order: gantry_x.position, gantry_x.velocity, gantry_y.position, gantry_y.velocity.
        state = np.array([state_value, 0.0, -0.2, 0.05], np.float32)
        js = JointState(name=["gantry_x", "gantry_y"], position=[float(state[0]), float(state[2])],
                        velocity=[float(state[1]), float(state[3])])
        js.header.stamp = stamp
        joints.publish(js)
        time.sleep(0.01)
        rgb = rng.integers(0, 256, (96, 96, 3), dtype=np.uint8)
        img = Image(height=96, width=96, encoding="rgb8", step=96 * 3, data=rgb.tobytes())
        img.header.stamp = stamp
        images.publish(img)
        sent[(stamp.sec, stamp.nanosec)] = (rgb, state)

    def feed(seconds: float, **kwargs) -> None:
        end = time.monotonic() + seconds
        while time.monotonic() < end:
            frame(**kwargs)
            time.sleep(0.1)

    probe.wait_for(lambda: images.get_subscription_count() > 0 and joints.get_subscription_count() > 0, 20,
                   "the reward node's subscriptions")
    feed(1.5)
    probe.wait_for(lambda: len(rewards) >= 5, 10, "rewards for the published observations")
    # Outside an episode: rewards, but no success.
    assert not any(e.event == EpisodeEvent.SUCCESS for _, e in events)
    # Every reward is the served model's probability for the observation with that stamp.
    for _, r in list(rewards):
        rgb, state = sent[(r.header.stamp.sec, r.header.stamp.nanosec)]
        want = float(served.probability({"top": rgb[None]}, state[None], language[None])[0])
        assert r.probability == pytest.approx(want, abs=1e-5), (r.probability, want)
        assert r.reward == 1.0 and r.model == "success/1"
    assert len({round(r.probability, 6) for _, r in rewards}) > 1, "the probability does not depend on the image"

    start = EpisodeEvent(event=EpisodeEvent.START, episode_index=7, seed=42, instruction="push the red block")
    start.header.stamp = probe.node.get_clock().now().to_msg()
    start_pub.publish(start)
    probe.wait_for(lambda: any(e.event == EpisodeEvent.START for _, e in events), 5, "the START event")
    started_at = time.monotonic()
    feed(1.5)
    successes = [(t, e) for t, e in events if e.event == EpisodeEvent.SUCCESS]
    assert len(successes) == 1, f"{len(successes)} success events in one episode"
    success = successes[0][1]
    assert (success.episode_index, success.seed, success.instruction) == (7, 42, "push the red block")
    after_start = [r for t, r in rewards if t > started_at]
    flagged = [i for i, r in enumerate(after_start) if r.success]
    assert flagged == [2], f"success flagged on judged frames {flagged} after the START (want the third)"
    assert (success.header.stamp.sec, success.header.stamp.nanosec) == \
        (after_start[2].header.stamp.sec, after_start[2].header.stamp.nanosec)

    # A non-finite state is dropped and counted; nothing is judged on the frames that follow it.
    n = len(rewards)
    joints_bad = JointState(name=["gantry_x", "gantry_y"], position=[float("nan"), 0.0], velocity=[0.0, 0.0])
    joints_bad.header.stamp = probe.node.get_clock().now().to_msg()
    joints.publish(joints_bad)
    time.sleep(0.2)
    rgb = np.zeros((96, 96, 3), np.uint8)
    img = Image(height=96, width=96, encoding="rgb8", step=96 * 3, data=rgb.tobytes())
    img.header.stamp = probe.node.get_clock().now().to_msg()
    images.publish(img)
    probe.wait_for(lambda: probe.diagnostic_values(diags, "reward: reward model").get(
        "rejected: observation.state non_finite") == "1", 5, "the dropped state in /diagnostics")
    time.sleep(0.3)
    assert len(rewards) == n, "an observation was judged without a valid state"
    # An embedding from another encoder is refused.
    embedding.publish(InstructionEmbedding(text="x", encoder_id="another-encoder", embedding=language.tolist()))
    probe.wait_for(lambda: probe.diagnostic_values(diags, "reward: reward model").get(
        "rejected: observation.language encoder") == "1", 5, "the refused embedding in /diagnostics")
    feed(0.5)
    time.sleep(0.3)
    assert len(rewards) == n, "judged without the instruction"
    up.interrupt()
    assert up.wait(60) == 0, up.output
