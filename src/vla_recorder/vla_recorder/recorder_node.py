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
"""
from __future__ import annotations

import shutil
import threading
import time
from pathlib import Path

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
from vla_interfaces.action import RecordEpisode
from vla_interfaces.msg import EpisodeEvent, Intervention
from vla_interfaces.srv import MarkEpisode

try:  # published by the language node; older interface builds lack it
    from vla_interfaces.msg import InstructionEmbedding
except ImportError:  # pragma: no cover - depends on the installed interfaces
    InstructionEmbedding = None
from vla_recorder.convert import command_type, command_vector, image_to_feature, joint_state_vector
from vla_recorder.mcap_bag import McapBag
from vla_recorder.recorder_params import RECORDER_PARAMS
from vla_recorder.sampler import FrameSampler
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
        self.instruction = ""
        self.encoder_id = p["encoder_id"]
        self.events: list[tuple[float, EpisodeEvent]] = []
        self.seen: dict[str, float] = {}
        self.bad_images = 0
        self._last_saved: int | None = None
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
                                    goal_callback=self._on_goal, cancel_callback=lambda _: CancelResponse.ACCEPT)
        self.get_logger().info(f"recording {c.robot} at {c.fps:g} Hz into {self.root} "
                               f"({self.writer.num_episodes} episodes there); command from {self.command_topic}")

    def activate(self) -> None:
        self._end_request = None

    def deactivate(self) -> None:
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
        self._entities, self._control_services, self._action, self._timer = [], [], None, None
        self.writer = None

    # ---- sources ----------------------------------------------------------------------------------
    def now(self) -> float:
        return self.get_clock().now().nanoseconds * 1e-9

    def _on_image(self, msg: Image, cam, key: str) -> None:
        self.seen[cam.topic] = time.monotonic()
        if self.episode is None:
            return
        try:
            rgb, note = image_to_feature(msg, cam)
        except (ImageError, ValueError) as exc:
            self.bad_images += 1
            self.get_logger().warn(f"image dropped ({self.bad_images} so far): {exc}", throttle_duration_sec=2.0)
            return
        if note:
            self.get_logger().info(f"{cam.topic}: converting {note} as the contract allows",
                                   throttle_duration_sec=30.0)
        with self._lock:
            self.sampler.offer_image(key, time_to_seconds(msg.header.stamp), rgb)

    def _on_state(self, msg: JointState) -> None:
        self.seen[self.contract.state.topic] = time.monotonic()
        with self._lock:
            self.sampler.offer_state(time_to_seconds(msg.header.stamp), joint_state_vector(msg, self.contract))

    def _on_command(self, msg) -> None:
        with self._lock:
            self.sampler.offer_command(self.now(), command_vector(msg, self.contract))

    def _on_intervention(self, msg: Intervention) -> None:
        with self._lock:
            self.sampler.offer_intervention(self.now(), msg.active)

    def _on_instruction(self, msg: String) -> None:
        self.instruction = msg.data
        self.seen[self.contract.instruction_topic] = time.monotonic()

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
        self.encoder_id = msg.encoder_id

    def _on_event(self, msg: EpisodeEvent) -> None:
        self.events.append((time.monotonic(), msg))
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
            self.get_logger().warn("RecordEpisode goal rejected: " +
                                   ("the recorder is not active" if not self.is_active else "already recording"))
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
            missing.append(f"{self.resolve_topic_name(c.instruction_topic)} (no instruction; or give one in the goal)")
        return missing

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
        missing = self._missing_sources(goal)
        if missing:
            message = f"{len(missing)} source topics missing: " + "; ".join(missing)
            self.get_logger().error(message)
            goal_handle.abort()
            return self._result(False, message)
        since = self._goal_time
        while True:
            instruction, start = goal.instruction or self.instruction, self.now()
            if p["follow_episode_events"]:
                event = self._wait_event(since, (EpisodeEvent.START,), goal_handle)
                if event is None:
                    goal_handle.abort()
                    return self._result(False, f"no episode START on {p['episode_events_topic']} within "
                                               f"{p['start_timeout']:g} s; reset the robot's episode "
                                               "(vla record does)")
                instruction, start = goal.instruction or event.instruction, time_to_seconds(event.header.stamp)
            limit = goal.time_limit if goal.time_limit > 0 else p["default_time_limit"]
            with self._lock:
                self._end_request, self._label = None, None
                self._finished.clear()
                self.episode = self.writer.begin_episode(instruction, self.contract_text, self.encoder_id)
                self.sampler.start(start)
                self._open_bag(self.episode.episode_index)
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
        summary = {"episode_index": episode.episode_index, "frames": episode.frames, "late": episode.late,
                   "dropped": episode.dropped, "invalid": episode.invalid, "achieved_fps": 0.0, "saved": False}
        t0 = time.monotonic()
        if how == "save":
            try:
                row = episode.save(success=self._label)
                summary.update(saved=True, achieved_fps=row["achieved_fps"],
                               message=f"episode {episode.episode_index} saved: {episode.frames} frames, "
                                       f"{row['achieved_fps']:.2f} fps achieved, {episode.late} late, "
                                       f"{episode.dropped} dropped ({counters.stale_images} images arrived after "
                                       f"their frame closed), {episode.invalid} invalid "
                                       f"({why}; finalized in {time.monotonic() - t0:.2f} s, of which "
                                       f"{episode.encode_flush_s:.2f} s encoding the last "
                                       f"{episode.backlog_at_save} frames)")
                self._last_saved = episode.episode_index
            except DatasetError as exc:
                summary["message"] = f"episode {episode.episode_index} not saved: {exc} ({why})"
            except Exception as exc:  # noqa: BLE001 - a full disk or a failed encoder: say so, keep running
                episode.discard()
                summary["message"] = f"episode {episode.episode_index} could not be saved: {exc} ({why})"
        else:
            episode.discard()
            summary["message"] = f"episode {episode.episode_index} discarded ({why}); re-record it"
        self._close_bag(episode.episode_index, keep=summary["saved"])
        summary["finalize_s"] = time.monotonic() - t0
        self._summary = summary
        self.get_logger().info(summary["message"])
        self._finished.set()
        return summary

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
            self.writer.set_success(self._last_saved, success)
            response.success, response.message = True, f"episode {self._last_saved} marked " \
                                                       f"{'success' if success else 'failure'}"
        else:
            response.success, response.message = False, "no episode recorded yet"
        return response


# One executor thread runs every callback in order (cheaper than a thread pool: the sampler is serial anyway);
# episodes run on their own thread (see _execute).
main = main_for(RecorderNode)
