"""Policy lifecycle node: runs a VLA policy at the artifact's control rate and hot-swaps it without a missed tick.

Subscribes: <image_prefix>/<camera> (model-ready sensor_msgs/Image from the perception node), joint_states,
instruction/embedding (vla_interfaces/InstructionEmbedding; embeddings from another encoder are refused),
episode/events (vla_interfaces/EpisodeEvent: at an episode's START the chunks in flight and the observation
history are forgotten, as the simulated evaluation resets its runner per episode).
Publishes: ~/cmd_vel (geometry_msgs/Twist) or ~/cmd (std_msgs/Float64MultiArray or trajectory_msgs/JointTrajectory),
as the robot contract's action type says (vla_ros.convert's command codec): the proposed command, the safety shield
decides what is sent. A trajectory carries one point per tick (time_from_start one control period) or, with
``chunk_as_trajectory``, each predicted chunk as one trajectory (points at dt .. T dt) when it is predicted;
~/status (vla_interfaces/PolicyStatus), /diagnostics ("policy: policy", and the node base's "policy: node"),
~/help (vla_interfaces/HelpRequest, latched: reliable, transient local, depth 1).
Services: ~/load_policy (vla_interfaces/LoadPolicy), ~/rollback (std_srvs/Trigger).

The control tick never waits: loading, verification and warm-up run on a worker thread that the service callback
awaits; the tick swaps the staged policy in at a chunk boundary. Every input is checked against what the serving
artifact declares (vla_policy.inputs); a bad one is dropped, counted by feature and reason, logged (throttled)
with the value and the fix, and its feature goes missing. A stale, missing or dropped input means no proposal
(the shield then stops the robot); a non-finite output is dropped and counted. An exception that escapes a
callback (caught by the node base) does the same: the chunk in flight and the observations are forgotten.
With ``exploration_std`` > 0 (online RL's exploring actor; at most the read-only ``max_exploration_std``), each
proposed action gets Gaussian noise clamped to the contract's limits (vla_policy.exploration); the shield still
bounds what is sent.

Uncertainty: an artifact with an uncertainty output (an ensemble's disagreement) gives one value with each
proposal; ~/status carries the last one and every one since the previous status, /diagnostics the last one. Above
``help_threshold`` (0: never) the node asks for help on ~/help (vla_policy.uncertainty.HelpMonitor: raised above
the threshold, cleared below help_threshold x help_clear_ratio, and cleared on deactivation); the shield slows or
holds the policy's commands meanwhile and teleop shows the request.
"""
from __future__ import annotations

import collections
import threading
import time

import numpy as np
from diagnostic_msgs.msg import DiagnosticArray, DiagnosticStatus, KeyValue
from rclpy.callback_groups import MutuallyExclusiveCallbackGroup, ReentrantCallbackGroup
from rclpy.task import Future
from sensor_msgs.msg import Image, JointState
from std_srvs.srv import Trigger

from vla_core.artifact import ArtifactError
from vla_core.contract import RobotContract
from vla_core.paths import workspace_path
from vla_interfaces.msg import EpisodeEvent, HelpRequest, InstructionEmbedding, PolicyStatus
from vla_interfaces.srv import LoadPolicy
from vla_core.codecs import JOINT_TRAJECTORY, TWIST
from vla_core.errors import ConfigError
from vla_core.features import LANGUAGE, image_key
from vla_policy.engines import EngineUnavailable
from vla_policy.exploration import check_exploration, explore
from vla_policy.input_node import MAX_LOG_CHARS, ModelInputs
from vla_policy.inputs import InputCache
from vla_policy.policy_params import POLICY_PARAMS
from vla_policy.runner import PolicyRunner
from vla_policy.runtime import LoadedPolicy, PolicyOutputError, PolicySlot, load_policy
from vla_policy.uncertainty import HelpMonitor
from vla_ros import node_qos
from vla_ros.convert import command_message_type, vector_to_command
from vla_ros.input_wait import InputWait
from vla_ros.node_base import ManagedNode, main_for

EMBEDDING_TOPIC = "instruction/embedding"
EPISODE_EVENTS_TOPIC = "episode/events"
# No tick for this long (wall clock) means the control loop is idle, and a staged policy is swapped in at once.
IDLE_SWAP_S = 0.5


class PolicyNode(ModelInputs, ManagedNode):
    PARAMS = POLICY_PARAMS
    WAITING_FOR_INPUT = "no command is proposed until a valid one arrives"

    def __init__(self, **kwargs):
        super().__init__("policy", **kwargs)
        self.slot = PolicySlot()
        self.runner: PolicyRunner | None = None
        self._entities: list = []
        self._timer = None
        self._swap_future: Future | None = None
        self._wake = self.create_guard_condition(lambda: None)

    # ---- lifecycle ------------------------------------------------------------------------------
    def configure(self, p: dict) -> None:
        self.contract = RobotContract.from_yaml(workspace_path(p["contract"]))
        self.models_dir = workspace_path(p["models_dir"])
        self.cache = InputCache()
        self._used_stamps: dict[str, float] = {}  # feature -> stamp of the input the last tick acted on
        self._input_wait: InputWait | None = None  # ticks wait for the inputs of their instant (input_wait)
        self.counters = collections.Counter()
        self._count_lock = threading.Lock()
        self._episode_started = False  # an episode START arrived; the next tick resets the runner
        self._init_input_counts(self._count_lock)
        self.latencies: collections.deque = collections.deque(maxlen=500)
        self.recent_latencies: list[float] = []  # since the last status message (same executor thread)
        self.last_event = ""
        self.stale: list[str] = []
        self.encoder_id: str | None = None
        self._embedding_encoder: str | None = None  # encoder of the instruction embedding in the cache
        self.control_group = MutuallyExclusiveCallbackGroup()
        self.io_group = ReentrantCallbackGroup()
        lp = self.create_lifecycle_publisher
        action = self.contract.action
        self.chunk_as_trajectory = p["chunk_as_trajectory"]
        if self.chunk_as_trajectory and action.type != JOINT_TRAJECTORY:
            raise ConfigError(f"chunk_as_trajectory needs a contract whose action is {JOINT_TRAJECTORY}, but "
                              f"{p['contract']} sends {action.type}; set chunk_as_trajectory false, or use a "
                              "JointTrajectory contract")
        self._check_exploration(p)
        self._explore_rng = np.random.default_rng()
        self._action_low = np.asarray(action.low, np.float64)
        self._action_high = np.asarray(action.high, np.float64)
        self._cmd_pub = lp(command_message_type(action.type), "~/cmd_vel" if action.type == TWIST else "~/cmd",
                           node_qos.COMMAND)
        self._status_pub = lp(PolicyStatus, "~/status", 10)
        self._help_pub = lp(HelpRequest, "~/help", node_qos.LATCHED)
        self.help = HelpMonitor(p["help_threshold"], p["help_clear_ratio"])
        self.uncertainty = float("nan")  # of the last proposal
        self.recent_uncertainty: list[float] = []  # every proposal's since the last status message
        for cam in self.contract.cameras:
            feature = image_key(cam.name)
            self._entities.append(self.create_subscription(
                Image, f"{p['image_prefix']}/{cam.name}", lambda m, f=feature: self._on_image(f, m),
                node_qos.SENSOR_SUB, callback_group=self.io_group))
        self._entities += [
            self.create_subscription(JointState, self.contract.state.topic, self._on_joints, node_qos.SENSOR_SUB,
                                     callback_group=self.io_group),
            self.create_subscription(InstructionEmbedding, EMBEDDING_TOPIC, self._on_embedding,
                                     node_qos.LATCHED, callback_group=self.io_group),
            self.create_subscription(EpisodeEvent, EPISODE_EVENTS_TOPIC, self._on_episode_event, node_qos.EVENTS,
                                     callback_group=self.io_group),
            self.create_service(LoadPolicy, "~/load_policy", self._on_load, callback_group=self.io_group),
            self.create_service(Trigger, "~/rollback", self._on_rollback, callback_group=self.io_group),
        ]
        self._diag_pub = lp(DiagnosticArray, "/diagnostics", 10)
        self.start_diagnostics()
        if p["artifact"]:
            policy = self._load(p["artifact"])
            self.slot.stage(policy)
            self.slot.swap_if_staged(True)
            self._on_new_policy(policy)

    def activate(self) -> None:
        # Observations are refused by age, so none from before the activation is acted on; the latched
        # instruction embedding is kept: it arrives once, possibly while the node was still inactive.
        self.tick = 0
        self._episode_started = False
        if self.runner is not None:
            self.runner.reset()
        fps = float(self.slot.active.artifact.manifest["fps"]) if self.slot.active else self.contract.fps
        self._period_ns, self._last_tick_ns = int(1e9 / fps), None
        self._last_tick_wall = time.monotonic()
        self._last_command_ns, self.max_gap_ms = None, 0.0
        self._timer = self.create_timer(1.0 / fps, self._on_tick, callback_group=self.control_group)
        self._used_stamps = {}
        self._input_wait = InputWait(self, self._control, self._inputs_fresh, lambda: self.params["input_wait"],
                                     callback_group=self.control_group, on_expired=self._count_expired_wait)
        self._start_status()
        # The latched state from the start: a request left by a process that died is overwritten.
        self._publish_help(log=False)

    def _start_status(self) -> None:
        if getattr(self, "_status_timer", None) is not None:
            self.destroy_timer(self._status_timer)
        self._status_timer = self.create_timer(self.params["status_period"], self._publish_status,
                                               callback_group=self.io_group)

    def _check_exploration(self, p: dict) -> None:
        try:
            check_exploration(p["exploration_std"], p["max_exploration_std"])
        except ValueError as exc:
            raise ConfigError(str(exc)) from None
        if p["exploration_std"] > 0 and p["chunk_as_trajectory"]:
            raise ConfigError("exploration_std perturbs one action per tick; with chunk_as_trajectory the chunk goes "
                              "out as one trajectory: set exploration_std 0 or chunk_as_trajectory false")

    def on_parameters_changed(self, changed: dict) -> None:
        """max_observation_age and exploration_std are read at every tick (exploration_std checked against the
        read-only max_exploration_std here: a larger value is refused); a new status_period restarts ~/status."""
        if "exploration_std" in changed:
            self._check_exploration(self.params)
        if "status_period" in changed and getattr(self, "_status_timer", None) is not None:
            self._start_status()
        if changed.keys() & {"help_threshold", "help_clear_ratio"} and getattr(self, "help", None) is not None:
            # Read by the next proposal: a request raised or cleared by the new threshold goes out then.
            self.help.configure(self.params["help_threshold"], self.params["help_clear_ratio"])

    def deactivate(self) -> None:
        c = self.counters
        self.get_logger().info(f"{c['ticks']} ticks: {c['proposed']} proposed, {c['stale_ticks']} stale, "
                               f"{c['missed_ticks']} missed, {c['input_waits_expired']} input waits expired")
        if self.help.clear("the policy node was deactivated: it proposes nothing"):
            self._publish_help()
        if self._swap_future is not None and not self._swap_future.done():
            self._swap_future.set_result(False)  # a staged policy stays staged; the caller is told
        for name in ("_timer", "_status_timer"):
            if getattr(self, name, None) is not None:
                self.destroy_timer(getattr(self, name))
                setattr(self, name, None)
        if self._input_wait is not None:
            self._input_wait.destroy()
            self._input_wait = None

    def cleanup(self) -> None:
        self.stop_diagnostics()
        for entity in self._entities:
            (self.destroy_service if hasattr(entity, "srv_type") else self.destroy_subscription)(entity)
        self._entities = []
        for pub in ("_cmd_pub", "_status_pub", "_diag_pub", "_help_pub"):
            if getattr(self, pub, None) is not None:
                self.destroy_publisher(getattr(self, pub))
                setattr(self, pub, None)
        for policy in (self.slot.active, self.slot.previous):
            if policy is not None:
                policy.engine.close()
        self.slot = PolicySlot()
        self.runner = None

    # ---- inputs ---------------------------------------------------------------------------------
    # vla_policy.input_node checks each input against the serving artifact and drops (and counts) a bad one.
    def _on_image(self, feature: str, msg: Image) -> None:
        self._offer_image(feature, msg)
        self._inputs_arrived()

    def _on_joints(self, msg: JointState) -> None:
        self._offer_joints(msg)
        self._inputs_arrived()

    def _on_embedding(self, msg: InstructionEmbedding) -> None:
        self._embedding_encoder = msg.encoder_id
        self._offer_embedding(msg)

    def _on_episode_event(self, msg: EpisodeEvent) -> None:
        if msg.event == EpisodeEvent.START:
            self._episode_started = True  # the control tick resets the runner (it alone touches it)
            with self._count_lock:
                self.counters["episode_starts"] += 1

    def on_callback_error(self, where: str, exc: Exception) -> None:
        """As for stale input: forget the chunk in flight and the observations, so that nothing is proposed
        until fresh ones arrive. The latched instruction is kept unless its own callback failed."""
        cache = getattr(self, "cache", None)
        if cache is None:
            return
        if self.runner is not None:
            self.runner.reset()
        if where.endswith(EMBEDDING_TOPIC):
            cache.drop()
            cache.refuse(LANGUAGE, f"the instruction embedding's callback failed ({type(exc).__name__}); send the "
                                   "instruction again")
        else:
            cache.drop(keep=(LANGUAGE,))

    # ---- control ----------------------------------------------------------------------------------
    def _on_tick(self) -> None:
        if not self.is_active:
            return
        # A tick that comes while one still waits merges into it (counted as missed when the waiting one acts).
        self._input_wait.tick()

    def _inputs_arrived(self) -> None:
        if self.is_active and self._input_wait is not None:
            self._input_wait.arrived()

    def _count_expired_wait(self) -> None:
        with self._count_lock:
            self.counters["input_waits_expired"] += 1

    def _inputs_fresh(self) -> bool:
        """Every stamped input of the serving policy is newer than the one the previous tick acted on (with no
        policy serving, nothing to wait for)."""
        if self.runner is None:
            return True
        for feature in self.runner.features:
            sample = self.cache.samples.get(feature)
            if sample is None:
                return False
            if sample.stamp is not None and sample.stamp <= self._used_stamps.get(feature, -float("inf")):
                return False
        return True

    def _control(self) -> None:
        t0 = time.perf_counter()
        self._last_tick_wall = time.monotonic()
        # A timer that fires late drops the periods it missed; count them as ticks without a command.
        now_ns = self.get_clock().now().nanoseconds
        skipped = 0
        if self._last_tick_ns is not None and self.slot.active is not None:
            skipped = max(0, round((now_ns - self._last_tick_ns) / self._period_ns) - 1)
        self._last_tick_ns = now_ns
        outcome = self._tick()
        if self.runner is not None:
            self._used_stamps = {f: sample.stamp for f in self.runner.features
                                 if (sample := self.cache.samples.get(f)) is not None and sample.stamp is not None}
        with self._count_lock:  # a status snapshot sees each tick with its outcome, never half-counted
            self.counters["ticks"] += 1 + skipped
            self.counters["missed_ticks"] += skipped
            if outcome:
                self.counters[outcome] += 1
        if outcome == "proposed":
            self.latencies.append((time.perf_counter() - t0) * 1e3)
            self.recent_latencies.append(self.latencies[-1])
            if self._last_command_ns is not None:
                self.max_gap_ms = max(self.max_gap_ms, (now_ns - self._last_command_ns) * 1e-6)
            self._last_command_ns = now_ns

    def _tick(self) -> str | None:
        """One control period; returns what happened: proposed, stale_ticks, missed_ticks, dropped_outputs,
        or None when no policy is loaded."""
        runner = self.runner
        swapped = self.slot.swap_if_staged(runner is None or runner.at_boundary())
        if swapped is not None:
            self._on_new_policy(swapped)
            runner = self.runner
            if self._swap_future is not None and not self._swap_future.done():
                self._swap_future.set_result(True)
        policy = self.slot.active
        tick = self.tick
        self.tick += 1
        if policy is None:
            return None
        if self._episode_started:  # a new episode: nothing of the last one's chunks or observations carries over
            self._episode_started = False
            runner.reset()
        now = self.get_clock().now().nanoseconds * 1e-9
        self.stale = self.cache.stale(list(runner.features), now, self.params["max_observation_age"])
        if self.stale:
            runner.reset()
            return "stale_ticks"
        try:
            action, uncertainty = runner.step_with_uncertainty(tick, self.cache.observation(runner.features))
        except PolicyOutputError as exc:  # the runner forgot the chunks in flight
            self.throttled_error("output", f"output dropped: {exc}"[:MAX_LOG_CHARS])
            return "dropped_outputs"
        if action is None:
            return "missed_ticks"
        self._on_uncertainty(uncertainty)
        a = self.contract.action
        if self.chunk_as_trajectory:
            # The chunk goes out once, when it is predicted, as one trajectory the robot follows until the next.
            if runner.inferred:
                self._cmd_pub.publish(vector_to_command(runner.plan(tick), a.type, a.fields, a.names,
                                                        1.0 / runner.fps))
        else:
            std = self.params["exploration_std"]
            if std > 0.0:
                action, clamped = explore(action, std, self._action_low, self._action_high, self._explore_rng)
                with self._count_lock:
                    self.counters["explored"] += 1
                    self.counters["exploration_clamped"] += clamped
            self._cmd_pub.publish(vector_to_command(action, a.type, a.fields, a.names, 1.0 / runner.fps))
        return "proposed"

    def _on_uncertainty(self, uncertainty: float | None) -> None:
        """Record one proposal's uncertainty and raise or clear the help request (published when it changes)."""
        self.uncertainty = float("nan") if uncertainty is None else uncertainty
        if uncertainty is not None:
            self.recent_uncertainty.append(uncertainty)
        if self.help.update(uncertainty):
            self._publish_help()

    def _publish_help(self, log: bool = True) -> None:
        help = self.help
        policy = self.slot.active
        msg = HelpRequest(active=help.active, uncertainty=help.uncertainty, threshold=help.threshold,
                          policy=policy.label if policy else "", reason=help.reason)
        msg.header.stamp = self.get_clock().now().to_msg()
        self._help_pub.publish(msg)
        with self._count_lock:
            self.counters["help_requests"] = help.requests
        if log and help.active:  # two call sites: rclpy fixes a call site's severity at its first call
            self.get_logger().warning(f"asking for help: {help.reason}")
        elif log:
            self.get_logger().info(f"help request cleared: {help.reason}")

    def _on_new_policy(self, policy: LoadedPolicy) -> None:
        m = policy.artifact.manifest
        self.runner = PolicyRunner(policy)
        self.encoder_id = m["features"].get(LANGUAGE, {}).get("encoder_id")
        if LANGUAGE in self.cache.samples and self.encoder_id and self._embedding_encoder != self.encoder_id:
            self.cache.refuse(LANGUAGE, f"the instruction was embedded by '{self._embedding_encoder}', "
                                        f"{policy.label} was trained with '{self.encoder_id}'")
        elif self.encoder_id and LANGUAGE in self.cache.refused:
            self.cache.refused.pop(LANGUAGE)
        for exc in self.cache.expect(policy.input_specs):
            self.throttled_warning(("swap", exc.reason), f"kept input dropped on serving {policy.label}: {exc}"
                                   [:MAX_LOG_CHARS])
        self.last_event = f"serving {policy.label} on {policy.engine.name}"
        self.counters["swaps"] += 1
        self.get_logger().info(self.last_event + (f" (skipped: {'; '.join(policy.skipped_engines)})"
                                                  if policy.skipped_engines else ""))

    # ---- services --------------------------------------------------------------------------------
    def _load(self, spec: str) -> LoadedPolicy:
        # The text encoder is checked per embedding message (_on_embedding), whichever node serves it.
        return load_policy(spec, self.models_dir, self.contract, None, list(self.params["engines"]),
                           threads=self.params["threads"])

    async def _on_load(self, request: LoadPolicy.Request, response: LoadPolicy.Response):
        # Loading runs on a worker thread; this callback awaits it, so the (single-threaded) executor keeps
        # ticking, and answers once a tick has swapped the new policy in.
        try:
            policy = await self._off_executor(lambda: self._load(request.artifact))
        except Exception as exc:  # noqa: BLE001 - whatever fails, the load is rejected and the reason returned
            reason = str(exc) if isinstance(exc, (ArtifactError, EngineUnavailable, ValueError)) else \
                f"{type(exc).__name__}: {exc}"
            response.success, response.message = False, f"rejected, still serving " \
                f"{self.slot.active.label if self.slot.active else 'nothing'}: {reason}"
            with self._count_lock:
                self.counters["rejected_loads"] += 1
            self.throttled_error("load_policy", response.message[:2 * MAX_LOG_CHARS], period_s=1.0)
            return response
        if not await self._swap_in(lambda: self.slot.stage(policy)):
            response.success, response.message = False, "loaded, but the node was deactivated before the swap"
            return response
        response.success, response.message = True, self.last_event
        response.policy, response.version, response.load_time = policy.artifact.name, policy.artifact.version, \
            policy.load_time
        return response

    async def _on_rollback(self, request: Trigger.Request, response: Trigger.Response):
        try:
            swapped = await self._swap_in(self.slot.stage_rollback)
        except ArtifactError as exc:
            response.success, response.message = False, str(exc)
            return response
        response.success = swapped
        response.message = f"rolled back: {self.last_event}" if swapped else "the node was deactivated first"
        return response

    def _off_executor(self, work) -> Future:
        """Run ``work`` on a worker thread; the returned future wakes the executor when it completes."""
        future = Future()

        def run() -> None:
            try:
                future.set_result(work())
            except Exception as exc:  # noqa: BLE001 - handed to the awaiting callback
                future.set_exception(exc)
            self._wake.trigger()
        threading.Thread(target=run, name="load_policy", daemon=True).start()
        return future

    async def _swap_in(self, stage) -> bool:
        """Stage a policy and wait until a tick has swapped it in (at once when inactive: no tick runs)."""
        installed = stage()
        if installed.is_set():  # nothing was serving: the slot took it as the active policy directly
            self._on_new_policy(self.slot.active)
            return True
        if not self.is_active:
            self.slot.swap_if_staged(True)
            self._on_new_policy(self.slot.active)
            return True
        self._swap_future = Future()
        # A control loop that is not ticking (a paused /clock between simulated episodes, a robot clock that
        # stopped) has no chunk to finish: swap at once rather than wait for a tick that may never come.
        idle_check = self.create_timer(0.1, self._swap_if_idle, clock=self._steady)
        try:
            return bool(await self._swap_future)
        finally:
            self.destroy_timer(idle_check)

    def _swap_if_idle(self) -> None:
        future = self._swap_future
        if future is None or future.done() or time.monotonic() - self._last_tick_wall < IDLE_SWAP_S:
            return
        swapped = self.slot.swap_if_staged(True)
        if swapped is not None:
            self._on_new_policy(swapped)
            self.last_event += " (swapped while the control loop was idle)"
        future.set_result(swapped is not None)

    def _publish_status(self) -> None:
        policy = self.slot.active
        with self._count_lock:
            counts = dict(self.counters)
            rejected = sum(self.rejects.values())
        lat = np.asarray(self.latencies) if self.latencies else np.zeros(1)
        msg = PolicyStatus(
            policy=policy.artifact.name if policy else "", version=policy.artifact.version if policy else "",
            engine=policy.engine.name if policy else "", proposing=bool(policy) and not self.stale,
            stale_inputs=list(self.stale), latency_p50_ms=float(np.percentile(lat, 50)),
            latency_p99_ms=float(np.percentile(lat, 99)),
            chunk_index=self.runner.position if self.runner else 0,
            chunk_size=policy.chunk_size if policy else 0, ticks=counts.get("ticks", 0),
            proposed=counts.get("proposed", 0), stale_ticks=counts.get("stale_ticks", 0),
            missed_ticks=counts.get("missed_ticks", 0), dropped_outputs=counts.get("dropped_outputs", 0),
            rejected_inputs=rejected,
            max_command_gap_ms=getattr(self, "max_gap_ms", 0.0),
            last_event=self.last_event, recent_latency_ms=self.recent_latencies[-1000:],
            uncertainty=self.uncertainty, help_threshold=self.help.threshold, help_requested=self.help.active,
            recent_uncertainty=self.recent_uncertainty[-1000:])
        self.recent_latencies = []
        self.recent_uncertainty = []
        msg.header.stamp = self.get_clock().now().to_msg()
        self._status_pub.publish(msg)

    def _publish_diagnostics(self) -> None:
        """``policy: policy``: what is served, tick outcomes, and the inputs dropped by feature and reason."""
        policy = self.slot.active
        with self._count_lock:
            counts, rejects, last_reject = dict(self.counters), dict(self.rejects), self.last_reject
        values = {"policy": policy.label if policy else "", "engine": policy.engine.name if policy else "",
                  "stale_inputs": ", ".join(self.stale)}
        values.update({k: counts.get(k, 0) for k in ("ticks", "proposed", "stale_ticks", "missed_ticks",
                                                      "dropped_outputs", "rejected_loads", "swaps", "explored",
                                                      "exploration_clamped", "help_requests", "episode_starts")})
        values.update({"uncertainty": f"{self.uncertainty:.4g}", "help_threshold": self.help.threshold,
                       "help_requested": self.help.active, "help_reason": self.help.reason})
        values["rejected_inputs"] = sum(rejects.values())
        values.update({f"rejected: {feature} {reason}": n for (feature, reason), n in sorted(rejects.items())})
        values["last_rejected_input"] = last_reject
        values.update({f"refused: {feature}": reason[:MAX_LOG_CHARS] for feature, reason in self.cache.refused.items()})
        if policy is None:
            level, message = DiagnosticStatus.WARN, "no policy loaded: nothing proposed (call ~/load_policy)"
        elif self.stale:
            level, message = DiagnosticStatus.WARN, f"not proposing: inputs missing, stale or dropped: " \
                                                    f"{', '.join(self.stale)}"
        elif self.help.active:
            level, message = DiagnosticStatus.WARN, f"asking for help: {self.help.reason}"
        else:
            level, message = DiagnosticStatus.OK, f"proposing with {policy.label} on {policy.engine.name}"
        status = DiagnosticStatus(level=level, name=f"{self.get_name()}: policy", message=message,
                                  hardware_id=policy.engine.name if policy else "",
                                  values=[KeyValue(key=k, value=str(v)) for k, v in values.items()])
        array = DiagnosticArray(status=[status])
        array.header.stamp = self.get_clock().now().to_msg()
        self._diag_pub.publish(array)


# One executor thread: rclpy's multi-threaded executor spent most of its time polling futures and made a
# 50 Hz tick skip periods (measured with `vla bench policy`); loads run on worker threads instead.
main = main_for(PolicyNode)
