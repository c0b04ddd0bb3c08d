"""Recorder lifecycle node: the robot contract's topics -> LeRobotDataset v3.0 episodes, losing nothing silently.

Subscribes (relative names): the contract's cameras (sensor_msgs/Image) and state (sensor_msgs/JointState),
the command actually sent to the robot (``command_topic``, default the contract's action topic: the safety
shield's output), ``teleop/intervention``, ``instruction`` (latched), ``episode/events`` and ``help_topic`` (the
policy's help request, latched: frames in which it asked and the operator took over are requested interventions)
and, where ``environment_state`` names values, the simulator's ``sim/state`` (its task state becomes
``observation.environment_state``, a training target). Action: ``~/record_episode`` (vla_interfaces/RecordEpisode). Services: ``~/save`` and ``~/discard``
(std_srvs/Trigger: end the current episode and keep it / throw it away to re-record), ``~/mark``
(vla_interfaces/MarkEpisode: success or failure of the current, else the last saved, episode; DISCARD = discard).
Frames are assembled by :class:`vla_recorder.sampler.FrameSampler` on the node clock (simulated time under
use_sim_time) and written by :class:`vla_core.dataset.DatasetWriter` (video encoded on background threads).
Callbacks run on one executor thread; each goal runs :class:`vla_recorder.episodes.EpisodeControl` (start checks,
end conditions, feedback, commit; no rclpy) on its own thread so that sampling never waits: this node only
converts messages, goals and service requests into calls on it. With ``follow_episode_events`` an episode spans one
robot episode (START .. SUCCESS/TIMEOUT; ABORTED, e.g. a reset, moves on to the next one). With ``mcap`` the
same topics also go, raw, to ``<root>/mcap/episode-NNNNNN.mcap``. Deactivate and shutdown save the episode
in progress.

Every input is checked before it can reach a dataset (vla_recorder.inputs): instructions by vla_core.text,
stamps against the node clock, episode events against the robot's episode sequence, goals for their limits.
A refused input is dropped, counted per reason, reported with a throttled warning, on /diagnostics, in the
RecordEpisode result and in the episode's sidecar (vla_recorder.saving). An episode whose START is not followed
by the robot's frames, or whose robot turns out to be in another episode, ends with the reason.
"""
from __future__ import annotations

import collections

import math
import shutil
import threading
from pathlib import Path

import numpy as np
from diagnostic_msgs.msg import DiagnosticArray, DiagnosticStatus, KeyValue
from rclpy.action import ActionServer, CancelResponse, GoalResponse
from rclpy.qos import DurabilityPolicy, HistoryPolicy, QoSProfile, ReliabilityPolicy
from rclpy.task import Future
from sensor_msgs.msg import Image, JointState
from std_msgs.msg import String
from std_srvs.srv import Trigger

from vla_core.contract import RobotContract
from vla_core.dataset import DatasetError, DatasetWriter
from vla_core.errors import ConfigError
from vla_core.features import ENV_STATE
from vla_core.image import ImageError
from vla_core.paths import workspace_path
from vla_core.text import InstructionError, check_text
from vla_interfaces.action import RecordEpisode
from vla_interfaces.msg import EpisodeEvent, HelpRequest, Intervention, SimState
from vla_interfaces.srv import MarkEpisode

try:  # published by the language node; older interface builds lack it
    from vla_interfaces.msg import InstructionEmbedding
except ImportError:  # pragma: no cover - depends on the installed interfaces
    InstructionEmbedding = None
from vla_recorder.convert import command_type, command_vector, image_to_feature, joint_state_vector
from vla_recorder import inputs
from vla_recorder.episodes import ABORTED, CANCELED, DISCARD, SAVE, SUCCEEDED, EpisodeControl, Outcome, Sources
from vla_recorder.inputs import RobotEpisodes, future_stamp_problem
from vla_recorder.mcap_bag import McapBag, Preroll, cdr_header_stamp, preroll_to_keep
from vla_recorder.recorder_params import RECORDER_PARAMS
from vla_recorder.sampler import FrameSampler
from vla_ros import node_qos
from vla_ros.convert import sent_time, time_to_seconds
from vla_ros.node_base import ManagedNode, main_for

# The recorder must not lose a frame to a queue: reliable, and deep enough to ride out a slow tick.
RECORD_SUB = QoSProfile(history=HistoryPolicy.KEEP_LAST, depth=30, reliability=ReliabilityPolicy.RELIABLE,
                        durability=DurabilityPolicy.VOLATILE)


def free_mb(path: Path) -> float:
    probe = path
    while not probe.exists():
        probe = probe.parent
    return shutil.disk_usage(probe).free / 1e6


class RecorderNode(ManagedNode):
    PARAMS = RECORDER_PARAMS

    def __init__(self, **kwargs):
        super().__init__("recorder", **kwargs)
        self.writer: DatasetWriter | None = None
        self._entities: list = []
        self.control: EpisodeControl | None = None  # the episode state machine; owns the sampler's lock

    # ---- lifecycle ------------------------------------------------------------------------------
    def configure(self, p: dict) -> None:
        contract_path = workspace_path(p["contract"])
        self.contract = RobotContract.from_yaml(contract_path)
        self.contract_text = contract_path.read_text()
        c = self.contract
        if not c.cameras:
            raise ConfigError(f"contract {contract_path} has no camera; the recorder needs at least one")
        self.root = workspace_path(p["root"])
        if free_mb(self.root) < p["min_free_mb"]:
            raise ConfigError(f"only {free_mb(self.root):.0f} MB free under {self.root}; min_free_mb is "
                              f"{p['min_free_mb']:g}: free disk space or record elsewhere (root)")
        features = c.features()
        self.env_names = [n.strip() for n in p["environment_state"].split(",") if n.strip()]
        if len(set(self.env_names)) != len(self.env_names):
            raise ConfigError(f"environment_state names a value twice ({p['environment_state']!r}); give each name "
                              "once, as the simulator sends them")
        if self.env_names:
            features[ENV_STATE] = {"dtype": "float32", "shape": [len(self.env_names)], "names": self.env_names}
        self.writer = DatasetWriter(self.root, c.fps, features, robot_type=c.robot, codec=p["video_codec"],
                                    crf=p["video_crf"], gop=p["video_gop"])
        self.camera_keys = [f"observation.images.{cam.name}" for cam in c.cameras]
        self.sampler = FrameSampler(c.fps, self.camera_keys, len(c.state.names), c.action.dim,
                                    late_after=p["late_after"] or None, drop_after=p["drop_after"] or None,
                                    command_timeout=p["command_timeout"], env_state_dim=len(self.env_names),
                                    causal=bool(self.get_parameter("use_sim_time").value))
        self.command_topic = p["command_topic"] or c.action.topic
        self.robot = RobotEpisodes(p["max_future_stamp"])  # executor thread only
        sources = Sources(needed=tuple(cam.topic for cam in c.cameras) + (c.state.topic,), command=self.command_topic,
                          intervention=p["intervention_topic"], instruction=c.instruction_topic)
        self.control = EpisodeControl(self.writer, self.sampler, self.contract_text, c.fps, sources, _NodeIO(self),
                                      lambda: self.params, encoder_id=p["encoder_id"])
        self._diag_pub = self.create_lifecycle_publisher(DiagnosticArray, "/diagnostics", 10)
        sub = self.create_subscription
        self._entities = [
            sub(JointState, c.state.topic, self._on_state, RECORD_SUB),
            sub(command_type(c), self.command_topic, self._on_command, RECORD_SUB),
            sub(Intervention, p["intervention_topic"], self._on_intervention, RECORD_SUB),
            sub(String, c.instruction_topic, self._on_instruction, node_qos.LATCHED),
            sub(EpisodeEvent, p["episode_events_topic"], self._on_event, node_qos.EVENTS),
        ]
        if self.env_names:
            self._entities.append(sub(SimState, p["environment_state_topic"], self._on_env_state, RECORD_SUB))
        if p["help_topic"]:  # latched: the request in force when recording starts arrives too
            self._entities.append(sub(HelpRequest, p["help_topic"], self._on_help, node_qos.LATCHED))
        if InstructionEmbedding is not None:  # the language node's encoder id, kept with each episode
            self._entities.append(sub(InstructionEmbedding, p["embedding_topic"], self._on_embedding,
                                      node_qos.LATCHED))
        for cam, key in zip(c.cameras, self.camera_keys):
            self._entities.append(sub(Image, cam.topic, lambda m, cam=cam, key=key: self._on_image(m, cam, key),
                                      RECORD_SUB))
        self._bag, self._bag_subs = None, []
        # Raw messages of the last seconds while no bag is open: an episode's first ones can arrive before it opens.
        self._preroll: collections.deque = collections.deque(maxlen=int(8 * c.fps) * (len(c.cameras) + 4))
        if p["mcap"]:  # the same topics, raw, one bag per episode (replay and debugging)
            topics = {cam.topic: Image for cam in c.cameras}
            topics.update({c.state.topic: JointState, self.command_topic: command_type(c),
                           p["intervention_topic"]: Intervention, c.instruction_topic: String})
            self._bag_subs = [(topic, msg_type) for topic, msg_type in topics.items()]
            self._stamped = {topic for topic, msg_type in topics.items()
                             if "header" in msg_type.get_fields_and_field_types()}
            self._entities += [self.create_subscription(msg_type, topic, lambda data, t=topic: self._on_raw(t, data),
                                                        RECORD_SUB, raw=True) for topic, msg_type in self._bag_subs]
        self._timer = self.create_timer(0.5 / c.fps, self._on_tick)
        self._control_services = [
            self.create_service(Trigger, "~/save", self._on_save),
            self.create_service(Trigger, "~/discard", self._on_discard),
            self.create_service(MarkEpisode, "~/mark", self._on_mark),
        ]
        self._action = ActionServer(self, RecordEpisode, "~/record_episode", self._execute,
                                    goal_callback=self.guard(self._on_goal, "~/record_episode goal"),
                                    cancel_callback=lambda _: CancelResponse.ACCEPT)
        self.get_logger().info(f"recording {c.robot} at {c.fps:g} Hz into {self.root} "
                               f"({self.writer.num_episodes} episodes there); command from {self.command_topic}")

    def on_parameters_changed(self, changed: dict) -> None:
        """max_future_stamp applies from the next input; encoder_id is kept with the next episode unless an
        embedding message names one; the others are read at each goal (the next episode)."""
        self.robot.max_future = self.params["max_future_stamp"]
        if "encoder_id" in changed:
            self.control.set_encoder_id(changed["encoder_id"])

    def activate(self) -> None:
        self.start_diagnostics()

    def deactivate(self) -> None:
        self.stop_diagnostics()
        if self.control is not None:
            self.control.stop("the recorder was deactivated")

    def cleanup(self) -> None:
        for entity in self._entities:
            self.destroy_subscription(entity)
        for srv in getattr(self, "_control_services", []):
            self.destroy_service(srv)
        if getattr(self, "_action", None) is not None:
            self._action.destroy()
        if getattr(self, "_timer", None) is not None:
            self.destroy_timer(self._timer)
        if getattr(self, "_diag_pub", None) is not None:
            self.destroy_publisher(self._diag_pub)
        self._entities, self._control_services, self._action, self._timer, self._diag_pub = [], [], None, None, None
        self.writer = self.control = None

    # ---- sources ----------------------------------------------------------------------------------
    def now(self) -> float:
        return self.get_clock().now().nanoseconds * 1e-9

    def _refuse(self, reason: str, problem: str) -> int:
        """Count a refused input (per reason, in all and in the episode); return the count of ``reason``."""
        return self.control.refuse(reason, problem)

    def _stamp_ok(self, what: str, reason: str, stamp: float) -> bool:
        problem = future_stamp_problem(what, stamp, self.now(), self.params["max_future_stamp"])
        if problem:
            n = self._refuse(reason, problem)
            self.get_logger().warning(f"{what} refused ({n} so far): {problem}", throttle_duration_sec=2.0)
        return problem is None

    def _on_image(self, msg: Image, cam, key: str) -> None:
        self.control.saw(cam.topic)
        # Also between episodes: the sampler keeps the last seconds of images, since an episode's first frames
        # can arrive before its START has opened the episode (a lockstep sim answers a reset at once).
        stamp = time_to_seconds(msg.header.stamp)
        if not self._stamp_ok(f"image on {cam.topic}", "image_future_stamp", stamp):
            return
        try:
            rgb, note = image_to_feature(msg, cam)
        except (ImageError, ValueError) as exc:
            n = self._refuse("image_encoding" if "encoding" in str(exc) else "image_data", str(exc))
            self.get_logger().warning(f"image dropped ({n} so far): {exc}", throttle_duration_sec=2.0)
            return
        if note:
            self.get_logger().info(f"{cam.topic}: converting {note} as the contract allows",
                                   throttle_duration_sec=30.0)
        with self.control.lock:
            self.sampler.offer_image(key, stamp, rgb)

    def _on_state(self, msg: JointState, info) -> None:
        self.control.saw(self.contract.state.topic)
        stamp = time_to_seconds(msg.header.stamp)
        if not self._stamp_ok(f"joint state on {self.contract.state.topic}", "state_future_stamp", stamp):
            return
        with self.control.lock:
            self.sampler.offer_state(stamp, joint_state_vector(msg, self.contract), sent=sent_time(info))

    def _on_env_state(self, msg: SimState) -> None:
        stamp = time_to_seconds(msg.header.stamp)
        if not self._stamp_ok("environment state", "env_state_future_stamp", stamp):
            return
        if list(msg.task_state_names) != self.env_names or len(msg.task_state) != len(self.env_names):
            n = self._refuse("env_state_names", f"task state {list(msg.task_state_names)} ({len(msg.task_state)} "
                                                f"values) from {msg.env_id!r}")
            self.get_logger().warning(
                f"environment state dropped ({n} so far): the sim sends {list(msg.task_state_names)}, "
                f"environment_state names {self.env_names}; set environment_state to the sim's names (in its "
                "order) or leave it empty", throttle_duration_sec=5.0)
            return
        with self.control.lock:
            self.sampler.offer_env_state(stamp, np.asarray(msg.task_state, np.float64))

    def _on_command(self, msg, info) -> None:
        # Not refused here: a command the robot could not use (wrong size, beyond float32) makes its frames
        # invalid, counted per reason by the sampler (the robot held still rather than executing another one).
        with self.control.lock:
            self.sampler.offer_command(self.now(), command_vector(msg, self.contract), sent=sent_time(info))

    def _on_intervention(self, msg: Intervention, info) -> None:
        with self.control.lock:
            self.sampler.offer_intervention(self.now(), msg.active, sent=sent_time(info))

    def _on_help(self, msg: HelpRequest) -> None:
        if not (math.isfinite(msg.uncertainty) and math.isfinite(msg.threshold)):
            n = self._refuse("help_request_nonfinite", f"help request with uncertainty {msg.uncertainty}, "
                                                       f"threshold {msg.threshold}")
            self.get_logger().warning(f"help request dropped ({n} so far): non-finite values",
                                      throttle_duration_sec=2.0)
            return
        with self.control.lock:
            self.sampler.offer_help(self.now(), msg.active)

    def _on_instruction(self, msg: String) -> None:
        self.control.saw(self.contract.instruction_topic)
        problem = self.control.set_instruction(msg.data)
        if problem:  # never recorded: the trainer's encoder would refuse the whole dataset
            n = self._refuse("instruction_invalid", problem)
            self.get_logger().warning(f"{problem} ({n} so far); episodes need a valid instruction",
                                      throttle_duration_sec=2.0)

    def _on_raw(self, topic: str, data: bytes) -> None:
        bag, now = self._bag, self.get_clock().now().nanoseconds
        if bag is not None:
            bag.write(self.resolve_topic_name(topic), data, now)
        else:  # a pre-roll: an episode's first messages can arrive before the episode is opened
            self._preroll.append(Preroll(topic, data, now, cdr_header_stamp(data) if topic in self._stamped else None))

    def _open_bag(self, index: int) -> None:
        if not self.params["mcap"]:
            return
        bag = McapBag(self.root / "mcap" / f".episode-{index:06d}.mcap.partial")
        for topic, msg_type in self._bag_subs:
            module = msg_type.__module__.split(".")[0]
            bag.add_topic(self.resolve_topic_name(topic), f"{module}/msg/{msg_type.__name__}")
        self._bag = bag
        # The messages of the episode's first frame that arrived before the episode opened: stamped from the first
        # frame on (a frame can arrive before this node's clock reaches its stamp, more so on a loaded machine), and
        # the newest of each topic before them (what was in force at the first frame).
        since = (self.sampler.start_time or 0.0) - 1.5 / self.contract.fps
        for m in preroll_to_keep(self._preroll, since):
            bag.write(self.resolve_topic_name(m.topic), m.data, m.received_ns)
        self._preroll.clear()

    def _close_bag(self, index: int, keep: bool) -> None:
        bag, self._bag = self._bag, None
        if bag is None:
            return
        bag.close()
        if keep:
            bag.path.replace(bag.path.with_name(f"episode-{index:06d}.mcap"))
        else:
            bag.path.unlink(missing_ok=True)

    def _on_embedding(self, msg) -> None:
        try:
            self.control.set_encoder_id(check_text(msg.encoder_id, "encoder id", 256))
        except InstructionError as exc:
            n = self._refuse("encoder_id_invalid", str(exc))
            self.get_logger().warning(f"embedding's {exc} ({n} so far); keeping encoder id "
                                      f"{self.control.encoder_id!r}", throttle_duration_sec=5.0)

    def _on_event(self, msg: EpisodeEvent) -> None:
        event = inputs.EpisodeEvent(kind=msg.event, index=msg.episode_index, stamp=time_to_seconds(msg.header.stamp),
                                    instruction=msg.instruction)
        running = self.robot.running
        problem = self.robot.check(event, self.now())
        if problem:
            n = self._refuse("episode_event", problem)
            self.get_logger().warning(f"episode event refused ({n} so far): {problem}", throttle_duration_sec=1.0)
            if event.kind in inputs.END_KINDS and running is not None:  # the robot is in another episode
                self.control.add_resync(event.index)
            return
        self.control.add_event(event)

    def _on_tick(self) -> None:
        self.control.tick(self.now())

    # ---- episode control: goals and services become calls on self.control ----------------------------
    def _on_goal(self, goal) -> GoalResponse:
        problem = self.control.accept(self.is_active)
        if problem:
            self.get_logger().warning(f"RecordEpisode goal rejected ({self.control.rejects.count()} refused inputs "
                                      f"so far): {problem}")
            return GoalResponse.REJECT
        return GoalResponse.ACCEPT

    async def _execute(self, goal_handle):
        """Record on a worker thread: the executor (one thread) keeps sampling while an episode runs and
        while it is committed."""
        done = Future()

        def work() -> None:
            try:
                outcome = self.control.record(_Goal(goal_handle))
            except Exception as exc:  # noqa: BLE001 - the goal fails with the reason, the node keeps running
                self.get_logger().error(f"recording failed: {type(exc).__name__}: {exc}")
                outcome = Outcome(ABORTED, f"recording failed: {exc}", {})
            finally:
                self.control.release()
            {SUCCEEDED: goal_handle.succeed, CANCELED: goal_handle.canceled, ABORTED: goal_handle.abort}[
                outcome.status]()
            done.set_result(_result(outcome))
        threading.Thread(target=work, name="record_episode", daemon=True).start()
        return await done

    def _publish_diagnostics(self) -> None:
        control = self.control
        with control.lock:
            total, last = dict(control.rejects.total), control.rejects.last_problem
            episode, failed_saves = control.episode, control.failed_saves
            c = self.sampler.counters
            values = {"recording": "none" if episode is None else str(episode.episode_index),
                      "episodes_saved": control.saved, "saves_failed": failed_saves,
                      "dataset_episodes": self.writer.num_episodes if self.writer else 0,
                      "inputs_refused": sum(total.values()), **{f"refused_{k}": v for k, v in sorted(total.items())},
                      # what `vla demo` and `vla record` wait for before the first goal (vla_tools.readiness)
                      "sources_unseen": ",".join(control.unseen())}
            if episode is not None:
                values.update(frames=c.frames, late=c.late, dropped=c.dropped, invalid=c.invalid,
                              **{f"invalid_{k}": v for k, v in sorted(c.invalid_reasons.items())})
        refused = values["inputs_refused"]
        status = DiagnosticStatus(
            level=DiagnosticStatus.WARN if refused or failed_saves else DiagnosticStatus.OK,
            name=f"{self.get_name()}: recording", hardware_id=str(self.root),
            message=(f"{refused} inputs refused; last: {last}" if refused else
                     f"{failed_saves} saves failed" if failed_saves else "ok"),
            values=[KeyValue(key=k, value=str(v)) for k, v in values.items()])
        array = DiagnosticArray(status=[status])
        array.header.stamp = self.get_clock().now().to_msg()
        self._diag_pub.publish(array)

    def _on_save(self, request, response):
        index = self.control.request(SAVE, "saved on request")
        response.success = index is not None
        response.message = "no episode is being recorded" if index is None else f"episode {index} will be saved"
        return response

    def _on_discard(self, request, response):
        index = self.control.request(DISCARD, "discarded on request")
        response.success = index is not None
        response.message = "no episode is being recorded" if index is None else f"episode {index} will be discarded"
        return response

    def _on_mark(self, request, response):
        if request.mark == MarkEpisode.Request.DISCARD:
            return self._on_discard(request, response)
        if request.mark not in (MarkEpisode.Request.SUCCESS, MarkEpisode.Request.FAILURE):
            response.success = False
            response.message = f"mark {request.mark} unknown; use SUCCESS=0, FAILURE=1, DISCARD=2"
            return response
        try:
            response.message = self.control.mark(request.mark == MarkEpisode.Request.SUCCESS)
            response.success = True
        except LookupError as exc:
            response.success, response.message = False, str(exc)
        except (OSError, DatasetError) as exc:  # a full disk: the label is not kept, and the caller is told
            response.success, response.message = False, f"episode {self.control.last_saved} not marked: {exc}"
        return response


class _NodeIO:
    """The node as the episode control's :class:`vla_recorder.episodes.RecorderIO`."""

    def __init__(self, node: RecorderNode):
        self.node = node

    def now(self) -> float:
        return self.node.now()

    def publishers(self, topic: str) -> int:
        return self.node.count_publishers(topic)

    def resolve(self, topic: str) -> str:
        return self.node.resolve_topic_name(topic)

    def free_mb(self) -> float:
        return free_mb(self.node.root)

    def log(self, level: str, text: str) -> None:
        # rclpy binds a severity to each call site and raises when one site logs at another: one line per level.
        logger = self.node.get_logger()
        if level == "error":
            logger.error(text)
        elif level == "warning":
            logger.warning(text)
        else:
            logger.info(text)

    def episode_opened(self, index: int) -> None:
        self.node._open_bag(index)

    def episode_closed(self, index: int, kept: bool) -> None:
        self.node._close_bag(index, keep=kept)


class _Goal:
    """A RecordEpisode goal handle as the episode control's :class:`vla_recorder.episodes.GoalIO`."""

    def __init__(self, goal_handle):
        self.handle = goal_handle
        self.instruction, self.time_limit = goal_handle.request.instruction, goal_handle.request.time_limit

    def cancelled(self) -> bool:
        return self.handle.is_cancel_requested

    def feedback(self, frames: int, elapsed: float, late: int, dropped: int) -> None:
        self.handle.publish_feedback(RecordEpisode.Feedback(frames=frames, elapsed=elapsed, late_frames=late,
                                                            dropped_frames=dropped))


def _result(outcome: Outcome) -> RecordEpisode.Result:
    s = outcome.summary
    return RecordEpisode.Result(success=bool(s.get("saved")), message=outcome.message,
                                episode_index=s.get("episode_index", 0), frames=s.get("frames", 0),
                                late_frames=s.get("late", 0), dropped_frames=s.get("dropped", 0),
                                achieved_fps=s.get("achieved_fps", 0.0))


# One executor thread runs every callback in order (cheaper than a thread pool: the sampler is serial anyway);
# episodes run on their own thread (see _execute).
main = main_for(RecorderNode)
