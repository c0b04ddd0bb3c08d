"""Reward lifecycle node: a learned success classifier on the graph, so a robot without a simulator's success
signal has a reward (HIL-SERL's reward model) and its episodes end when the task is done.

Subscribes: <image_prefix>/<camera> (the perception node's model-ready sensor_msgs/Image, as the policy node),
the contract's joint_states, instruction/embedding (vla_interfaces/InstructionEmbedding; another encoder than the
model's is refused), episode/events (START opens an episode; SUCCESS, TIMEOUT or ABORTED from anyone closes it).
Publishes: ~/reward (vla_interfaces/Reward) for every judged observation; SUCCESS on episode/events (with the
episode's index, seed and instruction from its START) once ``success_frames`` judged observations in a row reach
the model's threshold, when ``publish_success`` is set; /diagnostics ("reward: reward model").

An observation is judged once each camera has a frame newer than the last judged one and no input is stale
(``max_observation_age``), on the stamp of its newest frame. Inputs are checked against the reward artifact as the
policy node checks them against a policy's (vla_policy.inputs): a bad one is dropped, counted by feature and
reason, logged with the value and the fix, and nothing is judged until a valid one arrives. Configure verifies the
artifact (vla_policy.reward.RewardModel: checksums, golden pair, the contract's features) and fails naming what does
not fit.
"""
from __future__ import annotations

import collections
import threading

from diagnostic_msgs.msg import DiagnosticArray, DiagnosticStatus, KeyValue
from sensor_msgs.msg import Image, JointState

from vla_core.artifact import ArtifactError
from vla_core.contract import RobotContract
from vla_core.errors import ConfigError
from vla_core.features import LANGUAGE, image_key, is_image
from vla_core.paths import workspace_path
from vla_interfaces.msg import EpisodeEvent, InstructionEmbedding, Reward
from vla_policy.input_node import ModelInputs
from vla_policy.inputs import InputCache, input_specs
from vla_policy.reward import RewardModel, SuccessJudge, resolve_reward_model
from vla_policy.reward_params import REWARD_PARAMS
from vla_ros import node_qos
from vla_ros.node_base import ManagedNode, main_for

EMBEDDING_TOPIC = "instruction/embedding"


class RewardNode(ModelInputs, ManagedNode):
    PARAMS = REWARD_PARAMS
    WAITING_FOR_INPUT = "nothing is judged until a valid one arrives"

    def __init__(self, **kwargs):
        super().__init__("reward", **kwargs)
        self._entities: list = []

    # ---- lifecycle ------------------------------------------------------------------------------
    def configure(self, p: dict) -> None:
        self.contract = RobotContract.from_yaml(workspace_path(p["contract"]))
        try:
            path = resolve_reward_model(p["model"], workspace_path(p["models_dir"]))
            self.model = RewardModel(path, self.contract)
        except ArtifactError as exc:
            raise ConfigError(str(exc)) from None
        manifest = self.model.manifest
        self.label = f"{manifest.get('name', path.name)}/{manifest.get('version', '')}"
        self.input_names = dict(manifest["onnx"]["inputs"])
        self.encoder_id = manifest["features"].get(LANGUAGE, {}).get("encoder_id")
        self.cache = InputCache()
        self.cache.expect(input_specs(manifest))
        self.images = [f for f in self.input_names if is_image(f)]
        self.judge = SuccessJudge(p["success_frames"])
        self._judged_stamps: dict[str, float] = {}
        self._frame_stamps: dict = {}  # feature -> builtin_interfaces/Time of its newest frame
        self._episode: EpisodeEvent | None = None
        self._lock = threading.Lock()
        self.counters: collections.Counter = collections.Counter()
        self._init_input_counts(self._lock)
        self.last_probability = float("nan")
        lp = self.create_lifecycle_publisher
        self._reward_pub = lp(Reward, "~/reward", 10)
        self._event_pub = lp(EpisodeEvent, "episode/events", node_qos.EVENTS)
        self._diag_pub = lp(DiagnosticArray, "/diagnostics", 10)
        sub = self.create_subscription
        for cam in self.contract.cameras:
            feature = image_key(cam.name)
            if feature in self.input_names:
                self._entities.append(sub(Image, f"{p['image_prefix']}/{cam.name}",
                                          lambda m, f=feature: self._on_image(f, m), node_qos.SENSOR_SUB))
        self._entities += [
            sub(JointState, self.contract.state.topic, self._on_joints, node_qos.SENSOR_SUB),
            sub(InstructionEmbedding, EMBEDDING_TOPIC, self._on_embedding, node_qos.LATCHED),
            sub(EpisodeEvent, "episode/events", self._on_event, node_qos.EVENTS),
        ]
        self.start_diagnostics()
        self.get_logger().info(f"serving reward model {self.label} ({path}): threshold {self.model.threshold:g}, "
                               f"success after {p['success_frames']} judged frames in a row"
                               + ("" if p["publish_success"] else "; success events off (publish_success false)"))

    def activate(self) -> None:
        # Observations are refused by age, so none from before the activation is judged; the latched
        # instruction embedding is kept.
        self._judged_stamps = {}

    def deactivate(self) -> None:
        self.judge.end()
        c = self.counters
        self.get_logger().info(f"{c['judged']} observations judged ({c['positive']} at or above the threshold), "
                               f"{c['successes']} successes, {c['stale']} stale, "
                               f"{sum(self.rejects.values())} inputs dropped")

    def cleanup(self) -> None:
        self.stop_diagnostics()
        for entity in self._entities:
            self.destroy_subscription(entity)
        self._entities = []
        for pub in ("_reward_pub", "_event_pub", "_diag_pub"):
            if getattr(self, pub, None) is not None:
                self.destroy_publisher(getattr(self, pub))
                setattr(self, pub, None)

    # ---- inputs ---------------------------------------------------------------------------------
    def _on_image(self, feature: str, msg: Image) -> None:
        if self._offer_image(feature, msg):
            self._frame_stamps[feature] = msg.header.stamp  # exact, for the reward's header
            self._maybe_judge()

    def _on_joints(self, msg: JointState) -> None:
        self._offer_joints(msg)

    def _on_embedding(self, msg: InstructionEmbedding) -> None:
        self._offer_embedding(msg)

    def _on_event(self, msg: EpisodeEvent) -> None:
        if msg.event == EpisodeEvent.START:
            self._episode = msg
            self.judge.start()
        else:
            self.judge.end()

    def on_callback_error(self, where: str, exc: Exception) -> None:
        cache = getattr(self, "cache", None)
        if cache is not None:
            cache.drop(keep=(LANGUAGE,))

    # ---- judging --------------------------------------------------------------------------------
    def _maybe_judge(self) -> None:
        """Judge once every camera has a frame newer than the last judged one and no input is stale."""
        if not self.is_active:
            return
        stamps = {}
        for feature in self.images:
            sample = self.cache.samples.get(feature)
            if sample is None or sample.stamp is None or sample.stamp <= self._judged_stamps.get(feature, -1e18):
                return
            stamps[feature] = sample.stamp
        now = self.get_clock().now().nanoseconds * 1e-9
        if self.cache.stale(list(self.input_names), now, self.params["max_observation_age"]):
            with self._lock:
                self.counters["stale"] += 1
            return
        self._judged_stamps = stamps
        feeds = self.cache.feeds(self.input_names)
        probability = float(self.model.run(feeds)[0])
        reward = 1.0 if probability >= self.model.threshold else 0.0
        success = self.judge.judge(reward)
        msg = Reward(probability=probability, reward=reward, success=success, model=self.label)
        msg.header.stamp = self._frame_stamps[max(stamps, key=stamps.get)]
        self._reward_pub.publish(msg)
        with self._lock:
            self.counters["judged"] += 1
            self.counters["positive"] += int(reward)
            self.last_probability = probability
        if success:
            self._on_success(msg)

    def _on_success(self, reward: Reward) -> None:
        with self._lock:
            self.counters["successes"] += 1
        start = self._episode
        if not self.params["publish_success"]:
            return
        event = EpisodeEvent(event=EpisodeEvent.SUCCESS, header=reward.header)
        if start is not None:
            event.episode_index, event.seed, event.instruction = start.episode_index, start.seed, start.instruction
        self._event_pub.publish(event)
        self.get_logger().info(f"success (reward model {self.label}, probability {reward.probability:.3f}, "
                               f"{self.judge.success_frames} frames in a row)"
                               + (f": episode {start.episode_index}" if start is not None else ""))

    def _publish_diagnostics(self) -> None:
        with self._lock:
            counts, rejects, last_reject = dict(self.counters), dict(self.rejects), self.last_reject
            probability = self.last_probability
        values = {"model": self.label, "threshold": self.model.threshold, "last_probability": f"{probability:.4g}",
                  "in_episode": self.judge.in_episode, "streak": self.judge.streak,
                  **{k: counts.get(k, 0) for k in ("judged", "positive", "successes", "stale")},
                  "rejected_inputs": sum(rejects.values()), "last_rejected_input": last_reject}
        values.update({f"rejected: {feature} {reason}": n for (feature, reason), n in sorted(rejects.items())})
        level, message = DiagnosticStatus.OK, f"judging with {self.label}"
        if counts.get("judged", 0) == 0:
            level, message = DiagnosticStatus.WARN, "nothing judged yet: waiting for every input of the model"
        status = DiagnosticStatus(level=level, name=f"{self.get_name()}: reward model", message=message,
                                  values=[KeyValue(key=k, value=str(v)) for k, v in values.items()])
        array = DiagnosticArray(status=[status])
        array.header.stamp = self.get_clock().now().to_msg()
        self._diag_pub.publish(array)


main = main_for(RewardNode)

if __name__ == "__main__":
    main()
