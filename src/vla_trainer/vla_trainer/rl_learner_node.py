"""RL learner lifecycle node (HIL-SERL on the graph): transitions from the running robot, SAC updates with RLPD
replay, and a new actor deployed into the policy node every ``export_every`` updates.

Subscribes: <image_prefix>/<camera> (model-ready images, as the policy sees them), joint_states, instruction/
embedding, the command really sent (the contract's action topic: the shield's output, so an operator's takeover
is stored with the operator's action), teleop/intervention, episode/events (SUCCESS: reward 1 and done).
Calls: <policy_node>/load_policy with each exported ``<name>/<version>`` (the CLI's deploy path: verified,
loaded off the control path, swapped in between two ticks). Publishes /diagnostics ("rl_learner: learner").

The node only converts: at each control tick (contract fps, node clock) it snapshots the freshest inputs; the
action of a step is the command in force at the next tick (the newest, if fresh). vla_trainer.rl.online
assembles transitions and runs the learner; the updates and deploys run on one worker thread, so callbacks never
wait on torch, and the exports run in one long-lived child process (vla_trainer.rl.export_actor.ExportWorker)
while the updates go on.
A stale or missing input breaks the chain (no transition spans it), counted.
"""
from __future__ import annotations

import collections
import queue
import threading
import time

import numpy as np
from diagnostic_msgs.msg import DiagnosticArray, DiagnosticStatus, KeyValue
from sensor_msgs.msg import Image, JointState

from vla_core.contract import RobotContract
from vla_core.paths import workspace_path
from vla_interfaces.msg import EpisodeEvent, InstructionEmbedding, Intervention
from vla_interfaces.srv import LoadPolicy
from vla_policy.inputs import InputError, image_input, state_vector
from vla_ros import node_qos
from vla_ros.convert import command_message_type, command_to_vector, time_to_seconds
from vla_ros.node_base import ManagedNode, main_for
from vla_ros.services import ServiceCallFailed, call_and_wait
from vla_trainer.rl.export_actor import ExportWorker, WorkerJob
from vla_trainer.rl_params import RL_LEARNER_PARAMS

EMBEDDING_TOPIC = "instruction/embedding"


def next_version(models_dir, name: str) -> int:
    """One above the highest integer version under models_dir/name (1 when there is none)."""
    root = models_dir / name
    versions = [int(p.name) for p in root.iterdir() if p.is_dir() and p.name.isdigit()] if root.is_dir() else []
    return max(versions, default=0) + 1


class RLLearnerNode(ManagedNode):
    PARAMS = RL_LEARNER_PARAMS

    def __init__(self, **kwargs):
        super().__init__("rl_learner", **kwargs)
        self._entities: list = []
        self._timer = None
        self._worker: threading.Thread | None = None
        self._stop = threading.Event()
        self._diag_pub = None
        self.learner = None

    # ---- lifecycle ------------------------------------------------------------------------------
    def configure(self, p: dict) -> None:
        import torch
        from vla_trainer.rl.online import OnlineConfig, OnlineLearner, Step, TransitionAssembler, learner_agent
        torch.set_num_threads(p["torch_threads"])
        c = self.contract = RobotContract.from_yaml(workspace_path(p["contract"]))
        self.models_dir = workspace_path(p["models_dir"])
        cams = c.cameras
        self.demo_encoder_id = ""
        encode = None
        paths = [str(workspace_path(d)) for d in p["demos"] if d]
        if paths:
            from vla_language.encoder import InstructionEncoder
            encoder = InstructionEncoder()
            self.demo_encoder_id = encoder.encoder_id
            encode = lambda text: encoder.encode(text)[1]  # noqa: E731
        agent, demos = learner_agent(c, {**p, "demos": paths}, encode)
        if demos is not None:
            self.get_logger().info(f"{len(demos)} demonstration transitions from {', '.join(paths)}")
        if p["initial_weights"]:
            agent.load_weights(workspace_path(p["initial_weights"]))
        self.online_config = OnlineConfig(capacity=p["capacity"], warmup=p["warmup"],
                                          updates_per_step=p["updates_per_step"], export_every=p["export_every"])
        self.learner = OnlineLearner(agent, self.online_config, demos=demos, seed=p["seed"])
        self.exporter = ExportWorker()  # one process for every export of this run (torch imported once)
        self._step_type = Step
        self.assembler = TransitionAssembler(self.online_config.success_reward)
        self.inbox: queue.Queue = queue.Queue(maxsize=1000)
        self.counts: collections.Counter = collections.Counter()
        self.latest: dict = {}  # topic kind -> (value, node-clock seconds)
        self.pending = None  # the previous tick's observation, waiting for the command sent after it
        self.encoder_id = ""
        self.version = next_version(self.models_dir, p["name"])
        self.deployed = ""
        self.last_message = ""
        self.export_seconds: list[float] = []
        self.deploy_seconds: list[float] = []
        self._lock = threading.Lock()
        sub = self.create_subscription
        for cam in cams:
            self._entities.append(sub(Image, f"{p['image_prefix']}/{cam.name}",
                                      lambda m, n=cam.name: self._on_image(n, m), node_qos.SENSOR_SUB))
        command_topic = p["command_topic"] or c.action.topic
        self._entities += [
            sub(JointState, c.state.topic, self._on_joints, node_qos.SENSOR_SUB),
            sub(InstructionEmbedding, EMBEDDING_TOPIC, self._on_embedding, node_qos.LATCHED),
            sub(command_message_type(c.action.type), command_topic, self._on_command, node_qos.SENSOR_SUB),
            sub(Intervention, p["intervention_topic"], self._on_intervention, 10),
            sub(EpisodeEvent, p["episode_events_topic"], self._on_event, node_qos.EVENTS),
        ]
        self._deploy_client = self.create_client(LoadPolicy, f"{p['policy_node'].rstrip('/')}/load_policy")
        self._diag_pub = self.create_lifecycle_publisher(DiagnosticArray, "/diagnostics", 10)

    def activate(self) -> None:
        self.assembler.reset()
        self.pending = None
        self._stop.clear()
        self._worker = threading.Thread(target=self._work, name="rl_learner", daemon=True)
        self._worker.start()
        self._timer = self.create_timer(1.0 / self.contract.fps, self._on_tick)
        self.start_diagnostics()

    def deactivate(self) -> None:
        self.stop_diagnostics()
        self._timer = self.drop_timer(self._timer)
        self._stop.set()
        if self._worker is not None:
            self._worker.join(timeout=10.0)  # an export in flight finishes on its own (daemon thread)
            self._worker = None

    def cleanup(self) -> None:
        for entity in self._entities:
            self.destroy_subscription(entity)
        self._entities = []
        if self._diag_pub is not None:
            self.destroy_publisher(self._diag_pub)
            self._diag_pub = None
        if getattr(self, "exporter", None) is not None:
            self.exporter.close()
            self.exporter = None
        self.learner = None

    # ---- inputs (convert only) -----------------------------------------------------------------------
    def _now(self) -> float:
        return self.get_clock().now().nanoseconds * 1e-9

    def _keep(self, kind: str, value, stamp: float | None = None) -> None:
        self.latest[kind] = (value, self._now() if stamp is None else stamp)

    def _on_image(self, camera: str, msg: Image) -> None:
        try:
            rgb = image_input(msg.data, msg.height, msg.width, msg.encoding, msg.step)
        except InputError as exc:
            self.counts["rejected_images"] += 1
            self.throttled_warning(("image", exc.reason), f"image dropped: {exc}")
            return
        self._keep(f"image:{camera}", rgb, time_to_seconds(msg.header.stamp))

    def _on_joints(self, msg: JointState) -> None:
        try:
            vec = state_vector(msg.name, msg.position, msg.velocity, msg.effort, self.contract.state.joints,
                               self.contract.state.fields)
        except InputError as exc:
            self.counts["rejected_states"] += 1
            self.throttled_warning(("state", exc.reason), f"joint_states dropped: {exc}")
            return
        self._keep("state", vec, time_to_seconds(msg.header.stamp))

    def _on_embedding(self, msg: InstructionEmbedding) -> None:
        if not msg.embedding:
            return
        self.encoder_id = msg.encoder_id
        self.latest["language"] = (np.asarray(msg.embedding, np.float32), float("inf"))  # holds until the next

    def _on_command(self, msg) -> None:
        a = self.contract.action
        self._keep("command", command_to_vector(msg, a.type, a.fields, a.names))

    def _on_intervention(self, msg: Intervention) -> None:
        self._keep("intervention", bool(msg.active))

    def _on_event(self, msg: EpisodeEvent) -> None:
        if msg.event == EpisodeEvent.SUCCESS:
            obs = self._observation()
            step = self._close_pending()
            if step is not None:
                self._send(self.assembler.step(step))
            self._send(self.assembler.end(True, *(obs[:2] if obs else (None, None))))
            self.counts["successes"] += 1
        else:
            self.assembler.reset()
        self.pending = None
        self.counts["episode_events"] += 1

    # ---- the control tick ---------------------------------------------------------------------------
    def _observation(self):
        """(images, state, language) if every input is fresh, else None."""
        now, age = self._now(), self.params["max_observation_age"]
        kinds = [f"image:{cam.name}" for cam in self.contract.cameras] + ["state", "language"]
        if any(k not in self.latest or now - self.latest[k][1] > age for k in kinds):
            return None
        return ({cam.name: self.latest[f"image:{cam.name}"][0] for cam in self.contract.cameras},
                self.latest["state"][0], self.latest["language"][0])

    def _close_pending(self):
        """The previous tick's observation with the command in force since, as a Step; None if no fresh command."""
        if self.pending is None:
            return None
        obs, _ = self.pending
        command = self.latest.get("command")
        # The command in force after the observation: the newest one, as long as it is fresh (the robot holds a
        # command until the next one; the policy and this node tick at the same rate but not in phase).
        if command is None or self._now() - command[1] > self.params["max_observation_age"]:
            self.counts["no_fresh_command"] += 1
            return None
        flag = self.latest.get("intervention")
        active = bool(flag and flag[0] and self._now() - flag[1] <= self.params["max_observation_age"])
        return self._step_type(obs[0], obs[1], obs[2], command[0], active)

    def _on_tick(self) -> None:
        if not self.is_active:
            return
        obs = self._observation()
        step = self._close_pending()
        if self.pending is not None and step is None:
            self.assembler.reset()
            self.counts["broken_chains"] += 1
        elif step is not None:
            self._send(self.assembler.step(step))
        self.pending = (obs, self._now()) if obs is not None else None
        if obs is None:
            self.counts["stale_ticks"] += 1

    def _send(self, transition) -> None:
        if transition is None:
            return
        try:
            self.inbox.put_nowait(transition)
        except queue.Full:
            self.counts["dropped_transitions"] += 1  # the learner fell behind by a full queue

    # ---- the worker: replay, updates, exports, deploys ----------------------------------------------------
    def _work(self) -> None:
        job: WorkerJob | None = None
        try:
            # The artifact names the text encoder its instruction embeddings come from: wait for the first one.
            while not self.encoder_id and not self._stop.wait(0.05):
                pass
            if self.demo_encoder_id and self.encoder_id and self.encoder_id != self.demo_encoder_id:
                raise ValueError(f"the graph's instructions are embedded by '{self.encoder_id}', the demonstrations "
                                 f"by '{self.demo_encoder_id}'; run the language node with the bundled encoder or "
                                 "set demos to []")
            if self.params["export_initial"] and not self._stop.is_set():
                job = self._start_export()
                while not self._stop.is_set() and not job.poll():
                    time.sleep(0.05)
                if not self._stop.is_set():
                    self._deployed(job)
                job = None
            while not self._stop.is_set():
                try:
                    batch = self.inbox.get(timeout=0.02)
                except queue.Empty:
                    batch = None
                with self._lock:
                    if batch is not None:
                        self.learner.add(batch)
                    while not self.inbox.empty():
                        self.learner.add(self.inbox.get_nowait())
                    self.counts["forgiven_updates"] += self.learner.forgive(self.params["max_pending_updates"])
                    self.learner.update()
                # One export at a time, in a child process, while the updates go on.
                if job is not None and job.poll():
                    self._deployed(job)
                    job = None
                if job is None and self.learner.export_due():
                    job = self._start_export()
        except Exception as exc:  # noqa: BLE001 - the learner stops with the reason; the robot keeps its policy
            self.last_message = f"learner stopped: {type(exc).__name__}: {exc}"[:600]
            self.get_logger().error(self.last_message + "; the policy node keeps serving its last good version")
        finally:
            if job is not None:
                job.kill()

    def _start_export(self) -> WorkerJob:
        """Snapshot the weights (fast, under the lock) and start exporting them as the next version."""
        c, version = self.contract, str(self.version)
        self.version += 1
        with self._lock:
            weights = self.models_dir / self.params["name"] / f".agent-{version}.safetensors"
            weights.parent.mkdir(parents=True, exist_ok=True)
            self.learner.agent.save(weights)
            training = {"algorithm": "sac_online", "updates": self.learner.counts["updates"],
                        "transitions": self.learner.counts["transitions"]}
            self.learner.exported()
        return self.exporter.submit(weights, self.models_dir, self.params["name"], version, fps=c.fps,
                                    state_names=list(c.state.names), action_names=list(c.action.names),
                                    encoder_id=self.encoder_id, training=training)

    def _deployed(self, job: WorkerJob) -> None:
        """An export finished: send it to the policy node (the deploy path of the CLI)."""
        self.export_seconds.append(time.perf_counter() - job.started)
        spec = job.spec
        if not self.params["deploy"]:
            self.last_message = f"exported {spec}"
            return
        t0 = time.perf_counter()
        ok, why = self._deploy(spec)
        self.deploy_seconds.append(time.perf_counter() - t0)
        if ok:
            self.deployed = spec
            self.counts["deployed"] += 1
        else:
            self.counts["deploy_failures"] += 1
            self.throttled_warning("deploy", f"{spec} not deployed: {why}")
        self.last_message = f"{spec}: {why}"

    def _deploy(self, spec: str) -> tuple[bool, str]:
        try:
            response = call_and_wait(self._deploy_client, LoadPolicy.Request(artifact=spec),
                                     self.params["deploy_timeout"], unavailable_hint="is the policy node running?")
        except ServiceCallFailed as exc:
            return False, str(exc)
        return response.success, response.message

    def _publish_diagnostics(self) -> None:
        learner = self.learner
        if learner is None or self._diag_pub is None:
            return
        counts = {**self.counts, **learner.counts}
        keys = ("transitions", "interventions", "successes", "updates", "diverged", "exports", "deployed",
                "deploy_failures", "stale_ticks", "broken_chains", "no_fresh_command", "episode_events",
                "dropped_transitions", "forgiven_updates")
        values = {k: counts.get(k, 0) for k in keys}
        values["refused_transitions"] = sum(learner.refused.values())
        values["refused_by_field"] = ", ".join(f"{k}={v}" for k, v in sorted(learner.refused.items()))
        values["online_replay"] = len(learner.online)
        values["demo_replay"] = len(learner.demos)
        values["pending_updates"] = learner.pending_updates
        values["updates_per_s"] = (f"{learner.counts['updates'] / learner.update_seconds:.3g}"
                                   if learner.update_seconds else "0")
        values["export_s_mean"] = f"{np.mean(self.export_seconds):.3g}" if self.export_seconds else ""
        values["deploy_s_mean"] = f"{np.mean(self.deploy_seconds):.3g}" if self.deploy_seconds else ""
        values["deployed_version"] = self.deployed
        values["last_message"] = self.last_message
        level = DiagnosticStatus.ERROR if self.last_message.startswith("learner stopped") else DiagnosticStatus.OK
        status = DiagnosticStatus(level=level, name=f"{self.get_name()}: learner", hardware_id=self.get_name(),
                                  message=self.last_message or "collecting",
                                  values=[KeyValue(key=k, value=str(v)) for k, v in values.items()])
        self._diag_pub.publish(DiagnosticArray(status=[status]))


main = main_for(RLLearnerNode)
