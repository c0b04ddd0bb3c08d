"""Recorder lifecycle node: the robot contract's topics -> LeRobotDataset v3.0 episodes, losing nothing silently.

Subscribes (relative names): the contract's cameras (sensor_msgs/Image) and state (sensor_msgs/JointState),
the command actually sent to the robot (``command_topic``, default the contract's action topic: the safety
shield's output), ``teleop/intervention``, ``instruction`` (latched) and ``episode/events``.
Action: ``~/record_episode`` (vla_interfaces/RecordEpisode). Services: ``~/save`` and ``~/discard``
(std_srvs/Trigger: end the current episode and keep it / throw it away to re-record), ``~/mark``
(vla_interfaces/MarkEpisode: success or failure of the current, else the last saved, episode; DISCARD = discard).
Frames are assembled by :class:`vla_recorder.sampler.FrameSampler` on the node clock (simulated time under
use_sim_time) and written by :class:`vla_core.dataset.DatasetWriter` (video encoded on background threads).
Callbacks run on one executor thread; each episode's control loop (start, end conditions, feedback, commit)
runs on its own thread so that sampling never waits. With ``follow_episode_events`` an episode spans one
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

import math
import shutil
import threading
import time
from pathlib import Path

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
from vla_core.image import ImageError
from vla_core.paths import workspace_path
from vla_core.text import InstructionError, check_text, normalize_instruction
from vla_interfaces.action import RecordEpisode
from vla_interfaces.msg import EpisodeEvent, Intervention
from vla_interfaces.srv import MarkEpisode

try:  # published by the language node; older interface builds lack it
    from vla_interfaces.msg import InstructionEmbedding
except ImportError:  # pragma: no cover - depends on the installed interfaces
    InstructionEmbedding = None
from vla_recorder.convert import command_type, command_vector, image_to_feature, joint_state_vector
from vla_recorder import inputs
from vla_recorder.inputs import Rejects, RobotEpisodes, future_stamp_problem
from vla_recorder.mcap_bag import McapBag
from vla_recorder.recorder_params import RECORDER_PARAMS
from vla_recorder.sampler import FrameSampler
from vla_recorder.saving import close_episode
from vla_ros import node_qos
from vla_ros.convert import time_to_seconds
from vla_ros.node_base import ManagedNode, main_for

# The recorder must not lose a frame to a queue: reliable, and deep enough to ride out a slow tick.
END_EVENTS = (EpisodeEvent.SUCCESS, EpisodeEvent.TIMEOUT, EpisodeEvent.ABORTED)
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
        self._lock = threading.RLock()
        self.episode = None
        self._end_request: tuple | None = None  # (save|discard, why, end time or None)
        self._label: bool | None = None
        self._finished = threading.Event()
        self._summary: dict = {}
        self._active_goal = False

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
        self.writer = DatasetWriter(self.root, c.fps, c.features(), robot_type=c.robot, codec=p["video_codec"],
                                    crf=p["video_crf"], gop=p["video_gop"])
        self.camera_keys = [f"observation.images.{cam.name}" for cam in c.cameras]
        self.sampler = FrameSampler(c.fps, self.camera_keys, len(c.state.names), c.action.dim,
                                    late_after=p["late_after"] or None, drop_after=p["drop_after"] or None,
                                    command_timeout=p["command_timeout"])
        self.command_topic = p["command_topic"] or c.action.topic
        self.instruction, self.instruction_problem = "", ""
        self.encoder_id = p["encoder_id"]
        self.events: list[tuple[float, EpisodeEvent]] = []  # (arrival, event) of the events that fit the robot's
        self.resyncs: list[tuple[float, int]] = []  # (arrival, episode) of robot ends that contradicted the sequence
        self.robot = RobotEpisodes(p["max_future_stamp"])
        self.rejects = Rejects()
        self.saved = self.failed_saves = 0
        self.seen: dict[str, float] = {}
        self._last_saved: int | None = None
        self._diag_pub = self.create_lifecycle_publisher(DiagnosticArray, "/diagnostics", 10)
        sub = self.create_subscription
        self._entities = [
            sub(JointState, c.state.topic, self._on_state, RECORD_SUB),
            sub(command_type(c), self.command_topic, self._on_command, RECORD_SUB),
            sub(Intervention, p["intervention_topic"], self._on_intervention, RECORD_SUB),
            sub(String, c.instruction_topic, self._on_instruction, node_qos.LATCHED),
            sub(EpisodeEvent, p["episode_events_topic"], self._on_event, node_qos.EVENTS),
        ]
        if InstructionEmbedding is not None:  # the language node's encoder id, kept with each episode
            self._entities.append(sub(InstructionEmbedding, p["embedding_topic"], self._on_embedding,
                                      node_qos.LATCHED))
        for cam, key in zip(c.cameras, self.camera_keys):
            self._entities.append(sub(Image, cam.topic, lambda m, cam=cam, key=key: self._on_image(m, cam, key),
                                      RECORD_SUB))
        self._bag, self._bag_subs = None, []
        if p["mcap"]:  # the same topics, raw, one bag per episode (replay and debugging)
            topics = {cam.topic: Image for cam in c.cameras}
            topics.update({c.state.topic: JointState, self.command_topic: command_type(c),
                           p["intervention_topic"]: Intervention, c.instruction_topic: String})
            self._bag_subs = [(topic, msg_type) for topic, msg_type in topics.items()]
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
            self.encoder_id = changed["encoder_id"]

    def activate(self) -> None:
        self._end_request = None
        self.start_diagnostics()

    def deactivate(self) -> None:
        self.stop_diagnostics()
        if self.episode is not None:
            self._finish("save", "the recorder was deactivated")
            self._finished.wait(30.0)  # a concurrent finish (the action's) may still be committing

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
        self.writer = None

    # ---- sources ----------------------------------------------------------------------------------
    def now(self) -> float:
        return self.get_clock().now().nanoseconds * 1e-9

    def _refuse(self, reason: str, problem: str) -> int:
        """Count a refused input (per reason, in all and in the episode); return the count of ``reason``."""
        with self._lock:
            return self.rejects.add(reason, problem)

    def _stamp_ok(self, what: str, reason: str, stamp: float) -> bool:
        problem = future_stamp_problem(what, stamp, self.now(), self.params["max_future_stamp"])
        if problem:
            n = self._refuse(reason, problem)
            self.get_logger().warning(f"{what} refused ({n} so far): {problem}", throttle_duration_sec=2.0)
        return problem is None

    def _on_image(self, msg: Image, cam, key: str) -> None:
        self.seen[cam.topic] = time.monotonic()
        if self.episode is None:
            return
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
        with self._lock:
            self.sampler.offer_image(key, stamp, rgb)

    def _on_state(self, msg: JointState) -> None:
        self.seen[self.contract.state.topic] = time.monotonic()
        stamp = time_to_seconds(msg.header.stamp)
        if not self._stamp_ok(f"joint state on {self.contract.state.topic}", "state_future_stamp", stamp):
            return
        with self._lock:
            self.sampler.offer_state(stamp, joint_state_vector(msg, self.contract))

    def _on_command(self, msg) -> None:
        # Not refused here: a command the robot could not use (wrong size, beyond float32) makes its frames
        # invalid, counted per reason by the sampler (the robot held still rather than executing another one).
        with self._lock:
            self.sampler.offer_command(self.now(), command_vector(msg, self.contract))

    def _on_intervention(self, msg: Intervention) -> None:
        with self._lock:
            self.sampler.offer_intervention(self.now(), msg.active)

    def _on_instruction(self, msg: String) -> None:
        self.seen[self.contract.instruction_topic] = time.monotonic()
        try:
            self.instruction, self.instruction_problem = normalize_instruction(msg.data), ""
        except InstructionError as exc:  # never recorded: the trainer's encoder would refuse the whole dataset
            self.instruction, self.instruction_problem = "", f"instruction rejected: {exc}"
            n = self._refuse("instruction_invalid", self.instruction_problem)
            self.get_logger().warning(f"{self.instruction_problem} ({n} so far); episodes need a valid instruction",
                                      throttle_duration_sec=2.0)

    def _on_raw(self, topic: str, data: bytes) -> None:
        bag = self._bag
        if bag is not None:
            bag.write(self.resolve_topic_name(topic), data, self.get_clock().now().nanoseconds)

    def _open_bag(self, index: int) -> None:
        if not self.params["mcap"]:
            return
        bag = McapBag(self.root / "mcap" / f".episode-{index:06d}.mcap.partial")
        for topic, msg_type in self._bag_subs:
            module = msg_type.__module__.split(".")[0]
            bag.add_topic(self.resolve_topic_name(topic), f"{module}/msg/{msg_type.__name__}")
        self._bag = bag

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
            self.encoder_id = check_text(msg.encoder_id, "encoder id", 256)
        except InstructionError as exc:
            n = self._refuse("encoder_id_invalid", str(exc))
            self.get_logger().warning(f"embedding's {exc} ({n} so far); keeping encoder id {self.encoder_id!r}",
                                      throttle_duration_sec=5.0)

    def _on_event(self, msg: EpisodeEvent) -> None:
        event = inputs.EpisodeEvent(kind=msg.event, index=msg.episode_index, stamp=time_to_seconds(msg.header.stamp),
                                    instruction=msg.instruction)
        running = self.robot.running
        problem = self.robot.check(event, self.now())
        arrival = time.monotonic()
        if problem:
            n = self._refuse("episode_event", problem)
            self.get_logger().warning(f"episode event refused ({n} so far): {problem}", throttle_duration_sec=1.0)
            if event.kind in inputs.END_KINDS and running is not None:  # the robot is in another episode
                self.resyncs.append((arrival, event.index))
                del self.resyncs[:-100]
            return
        self.events.append((arrival, msg))
        del self.events[:-100]

    def _on_tick(self) -> None:
        with self._lock:
            if self.episode is None:
                return
            try:
                for frame in self.sampler.poll(self.now()):
                    self.episode.add_frame(frame)
            except Exception as exc:  # noqa: BLE001 - an encoder or disk failure ends the episode, with why
                self._request("save", f"writing failed: {exc}")

    # ---- episode control ----------------------------------------------------------------------
    def _on_goal(self, goal) -> GoalResponse:
        if not self.is_active or self._active_goal:
            reason = "goal_inactive" if not self.is_active else "goal_busy"
            problem = "the recorder is not active" if not self.is_active else "already recording"
            n = self._refuse(reason, f"RecordEpisode goal rejected: {problem}")
            self.get_logger().warning(f"RecordEpisode goal rejected ({n} so far): {problem}")
            return GoalResponse.REJECT
        self._active_goal = True
        self._goal_time = time.monotonic()  # episode events from here on belong to this goal
        return GoalResponse.ACCEPT

    def _missing_sources(self, goal) -> list[str]:
        c, deadline = self.contract, time.monotonic() + self.params["start_timeout"]
        needed = [cam.topic for cam in c.cameras] + [c.state.topic]
        while True:  # discovery and the first messages may take a moment
            missing = [t for t in needed if t not in self.seen]
            no_command = self.count_publishers(self.command_topic) == 0
            no_flag = self.params["intervention_required"] and \
                self.count_publishers(self.params["intervention_topic"]) == 0
            if not (missing or no_command or no_flag) or time.monotonic() > deadline:
                break
            time.sleep(0.05)
        missing = [f"{self.resolve_topic_name(t)} (no message in {self.params['start_timeout']:g} s)" for t in missing]
        if no_command:
            missing.append(f"{self.resolve_topic_name(self.command_topic)} (no publisher)")
        if no_flag:
            missing.append(f"{self.resolve_topic_name(self.params['intervention_topic'])} (no publisher; "
                           "set intervention_required: false when no operator can take over)")
        if not goal.instruction and not self.instruction and not self.params["follow_episode_events"]:
            missing.append(f"{self.resolve_topic_name(c.instruction_topic)} "
                           f"({self.instruction_problem or 'no instruction'}; or give one in the goal)")
        return missing

    def _goal_problem(self, goal) -> str:
        """Why the goal's fields cannot be recorded ('' if they can)."""
        if goal.instruction.strip():
            try:
                normalize_instruction(goal.instruction)
            except InstructionError as exc:
                return f"goal's instruction rejected: {exc}"
        if not (math.isfinite(goal.time_limit) and 0.0 <= goal.time_limit <= 86400.0):
            return (f"goal's time_limit {goal.time_limit} s is not a duration; give 0 (the recorder's "
                    "default_time_limit) up to 86400 s")
        return ""

    async def _execute(self, goal_handle):
        """Record on a worker thread: the executor (one thread) keeps sampling while an episode runs and
        while it is committed."""
        done = Future()

        def work() -> None:
            try:
                result = self._record(goal_handle, goal_handle.request)
            except Exception as exc:  # noqa: BLE001 - the goal fails with the reason, the node keeps running
                self.get_logger().error(f"recording failed: {type(exc).__name__}: {exc}")
                goal_handle.abort()
                result = self._result(False, f"recording failed: {exc}")
            finally:
                self._active_goal = False
            done.set_result(result)
        threading.Thread(target=work, name="record_episode", daemon=True).start()
        return await done

    def _result(self, success: bool, message: str, summary: dict | None = None) -> RecordEpisode.Result:
        s = summary or {}
        return RecordEpisode.Result(success=success, message=message, episode_index=s.get("episode_index", 0),
                                    frames=s.get("frames", 0), late_frames=s.get("late", 0),
                                    dropped_frames=s.get("dropped", 0), achieved_fps=s.get("achieved_fps", 0.0))

    def _record(self, goal_handle, goal) -> RecordEpisode.Result:
        p = self.params
        if free_mb(self.root) < p["min_free_mb"]:
            goal_handle.abort()
            return self._result(False, f"disk almost full: {free_mb(self.root):.0f} MB free under {self.root}, "
                                       f"min_free_mb {p['min_free_mb']:g}; free space or record elsewhere")
        problem = self._goal_problem(goal)
        if problem:
            self._refuse("goal_invalid", problem)
            self.get_logger().error(problem)
            goal_handle.abort()
            return self._result(False, problem)
        goal_instruction = normalize_instruction(goal.instruction) if goal.instruction.strip() else ""
        missing = self._missing_sources(goal)
        if missing:
            message = f"{len(missing)} source topics missing: " + "; ".join(missing)
            self.get_logger().error(message)
            goal_handle.abort()
            return self._result(False, message)
        since = self._goal_time
        while True:
            instruction, start = goal_instruction or self.instruction, self.now()
            if p["follow_episode_events"]:
                event = self._wait_event(since, (EpisodeEvent.START,), goal_handle)
                if event is None:
                    goal_handle.abort()
                    refused = (f"; {self.rejects.total['episode_event']} episode events refused so far, last: "
                               f"{self.rejects.last_problem}") if self.rejects.total["episode_event"] else ""
                    return self._result(False, f"no episode START on {p['episode_events_topic']} within "
                                               f"{p['start_timeout']:g} s; reset the robot's episode "
                                               f"(vla record does){refused}")
                instruction = goal_instruction or event.instruction.strip() or self.instruction
                # The time limit runs from the START's stamp, but never from a time still to come.
                start = min(time_to_seconds(event.header.stamp), self.now())
            if not instruction:
                goal_handle.abort()
                return self._result(False, "no instruction for the episode: "
                                           f"{self.instruction_problem or 'none published'}; give one in the goal")
            limit = goal.time_limit if goal.time_limit > 0 else p["default_time_limit"]
            with self._lock:
                self._end_request, self._label = None, None
                self._finished.clear()
                self.episode = self.writer.begin_episode(instruction, self.contract_text, self.encoder_id)
                self.sampler.start(start)
                self.rejects.new_episode()
                self._open_bag(self.episode.episode_index)
            started = time.monotonic()
            self.get_logger().info(f"episode {self.writer.num_episodes} started: \"{instruction}\", "
                                   f"limit {limit:g} s")
            last_disk_check, restart_since = time.monotonic(), None
            last_feedback, robot_episode = 0.0, event.episode_index if p["follow_episode_events"] else None
            while not self._finished.is_set():
                if goal_handle.is_cancel_requested:
                    self._request("discard", "the goal was cancelled")
                elif self.now() - start >= limit:
                    self._request("save", f"time limit {limit:g} s reached")
                elif time.monotonic() - last_disk_check > 1.0 and free_mb(self.root) < p["min_free_mb"]:
                    self._request("save", f"disk almost full ({free_mb(self.root):.0f} MB free < min_free_mb "
                                          f"{p['min_free_mb']:g}): episode closed early")
                elif self.sampler.t0 is None and time.monotonic() - started > p["start_timeout"]:
                    # The robot's frames follow its START at once: a START without them was not the robot's.
                    problem = (f"no image stamped after the episode's start ({start:.3f} s) within "
                               f"{p['start_timeout']:g} s: the START event was not followed by the robot's frames")
                    self._refuse("start_without_frames", problem)
                    self._request("discard", problem)
                elif p["follow_episode_events"] and any(t >= started and i != robot_episode
                                                        for t, i in list(self.resyncs)):
                    i = next(i for t, i in list(self.resyncs) if t >= started and i != robot_episode)
                    restart_since = time.monotonic()
                    self._request("discard", f"the robot ended its episode {i} while episode {robot_episode} was "
                                             f"being recorded: that START was not the robot's; recording its "
                                             "next episode")
                elif p["follow_episode_events"]:
                    for t, ev in list(self.events):
                        if t >= since and ev.episode_index == robot_episode and ev.event in END_EVENTS:
                            if ev.event == EpisodeEvent.ABORTED:  # e.g. a reset: record the robot's next episode
                                restart_since = t
                                self._request("discard", "the robot aborted its episode; recording its next one")
                            else:
                                if self._label is None:
                                    self._label = ev.event == EpisodeEvent.SUCCESS
                                self._request("save", "episode " + ("succeeded" if self._label else "timed out"),
                                              end_time=time_to_seconds(ev.header.stamp))
                            break
                if self._end_request is not None and self.episode is not None:
                    how, why, end_time = self._end_request
                    self._finish(how, why, end_time)
                    break
                if time.monotonic() - last_disk_check > 1.0:
                    last_disk_check = time.monotonic()
                if time.monotonic() - last_feedback >= p["feedback_period"]:
                    last_feedback = time.monotonic()
                    c = self.sampler.counters
                    goal_handle.publish_feedback(RecordEpisode.Feedback(
                        frames=c.frames, elapsed=max(0.0, self.now() - start), late_frames=c.late,
                        dropped_frames=c.dropped))
                self._finished.wait(0.02)
            if restart_since is None or goal_handle.is_cancel_requested:
                break
            since = restart_since
        s = self._summary
        if goal_handle.is_cancel_requested:
            goal_handle.canceled()
        elif s.get("saved"):
            goal_handle.succeed()
        else:
            goal_handle.abort()
        return self._result(bool(s.get("saved")), s.get("message", ""), s)

    def _wait_event(self, since: float, kinds, goal_handle):
        deadline = since + self.params["start_timeout"]
        while time.monotonic() < deadline and not goal_handle.is_cancel_requested:
            for t, ev in list(self.events):
                if t >= since and ev.event in kinds:
                    return ev
            time.sleep(0.01)
        return None

    def _request(self, how: str, why: str, end_time: float | None = None) -> None:
        if self._end_request is None:
            self._end_request = (how, why, end_time)

    def _finish(self, how: str, why: str, end_time: float | None = None) -> dict:
        """End the episode in progress: flush the sampler, then save (commit) or discard it."""
        if end_time is not None:
            with self._lock:
                self.sampler.stop(end_time)
            # The episode's last image may still be in flight behind its end event: a moment to arrive.
            time.sleep(min(0.3, 2.0 / self.contract.fps))
        with self._lock:
            episode = self.episode
            if episode is None:
                return self._summary
            now = self.now()
            try:
                for frame in self.sampler.poll(now, flush=True):
                    episode.add_frame(frame)
            except Exception as exc:  # noqa: BLE001
                why = f"{why}; writing failed: {exc}"
            counters = self.sampler.counters
            episode.count_dropped(counters.dropped)
            episode.start_stamp = self.sampler.t0 or 0.0
            self.sampler.start_time = None
            self.episode = None
            rejects = dict(self.rejects.episode)
        summary = close_episode(self.writer, episode, how, why, self._label, counters, rejects)
        if summary["saved"]:
            self.saved += 1
            self._last_saved = episode.episode_index
        elif how == "save":
            self.failed_saves += 1
        self._close_bag(episode.episode_index, keep=summary["saved"])
        self._summary = summary
        self.get_logger().info(summary["message"])
        self._finished.set()
        return summary

    def _publish_diagnostics(self) -> None:
        with self._lock:
            total, last = dict(self.rejects.total), self.rejects.last_problem
            episode = self.episode
            c = self.sampler.counters
            values = {"recording": "none" if episode is None else str(episode.episode_index),
                      "episodes_saved": self.saved, "saves_failed": self.failed_saves,
                      "dataset_episodes": self.writer.num_episodes if self.writer else 0,
                      "inputs_refused": sum(total.values()), **{f"refused_{k}": v for k, v in sorted(total.items())}}
            if episode is not None:
                values.update(frames=c.frames, late=c.late, dropped=c.dropped, invalid=c.invalid,
                              **{f"invalid_{k}": v for k, v in sorted(c.invalid_reasons.items())})
        refused = values["inputs_refused"]
        status = DiagnosticStatus(
            level=DiagnosticStatus.WARN if refused or self.failed_saves else DiagnosticStatus.OK,
            name=f"{self.get_name()}: recording", hardware_id=str(self.root),
            message=(f"{refused} inputs refused; last: {last}" if refused else
                     f"{self.failed_saves} saves failed" if self.failed_saves else "ok"),
            values=[KeyValue(key=k, value=str(v)) for k, v in values.items()])
        array = DiagnosticArray(status=[status])
        array.header.stamp = self.get_clock().now().to_msg()
        self._diag_pub.publish(array)

    def _on_save(self, request, response):
        if self.episode is None:
            response.success, response.message = False, "no episode is being recorded"
        else:
            self._request("save", "saved on request")
            response.success, response.message = True, f"episode {self.episode.episode_index} will be saved"
        return response

    def _on_discard(self, request, response):
        if self.episode is None:
            response.success, response.message = False, "no episode is being recorded"
        else:
            self._request("discard", "discarded on request")
            response.success, response.message = True, f"episode {self.episode.episode_index} will be discarded"
        return response

    def _on_mark(self, request, response):
        if request.mark == MarkEpisode.Request.DISCARD:
            return self._on_discard(request, response)
        if request.mark not in (MarkEpisode.Request.SUCCESS, MarkEpisode.Request.FAILURE):
            response.success = False
            response.message = f"mark {request.mark} unknown; use SUCCESS=0, FAILURE=1, DISCARD=2"
            return response
        success = request.mark == MarkEpisode.Request.SUCCESS
        if self.episode is not None:
            self._label = success
            response.success, response.message = True, f"episode {self.episode.episode_index} will be saved as " \
                                                       f"{'success' if success else 'failure'}"
        elif self._last_saved is not None:
            try:
                self.writer.set_success(self._last_saved, success)
            except (OSError, DatasetError) as exc:  # a full disk: the label is not kept, and the caller is told
                response.success, response.message = False, f"episode {self._last_saved} not marked: {exc}"
                return response
            response.success, response.message = True, f"episode {self._last_saved} marked " \
                                                       f"{'success' if success else 'failure'}"
        else:
            response.success, response.message = False, "no episode recorded yet"
        return response


# One executor thread runs every callback in order (cheaper than a thread pool: the sampler is serial anyway);
# episodes run on their own thread (see _execute).
main = main_for(RecorderNode)
