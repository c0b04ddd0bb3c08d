"""The recorder's episode control without ROS: start checks, limits, requests, robot events, labels, threads.

A real DatasetWriter and FrameSampler record 16x16 frames into tmp_path. The host (the node clock, the ROS
graph's publisher counts, free disk, logging, the MCAP hooks) is a small stand-in: those come from rclpy and
the disk, which a unit test cannot steer; the node's side is tested with real processes in test/test_recorder.py.
Each goal runs on its own thread, as in the node, while the test thread plays the executor: it feeds frames on
a node clock it advances by hand.
"""
from __future__ import annotations

import threading
import time

import numpy as np
import pytest

from vla_core.dataset import DatasetReader, DatasetWriter
from vla_core.params import defaults
from vla_recorder import inputs
from vla_recorder.episodes import (ABORTED, CANCELED, DISCARD, SAVE, SUCCEEDED, EpisodeControl, Outcome, Sources,
                                   goal_problem)
from vla_recorder.recorder_params import RECORDER_PARAMS
from vla_recorder.sampler import FrameSampler

FPS = 10.0
CAMERA = "observation.images.top"
FEATURES = {
    CAMERA: {"dtype": "video", "shape": [16, 16, 3], "names": ["height", "width", "channels"]},
    "observation.state": {"dtype": "float32", "shape": [2], "names": ["x", "y"]},
    "action": {"dtype": "float32", "shape": [2], "names": ["vx", "vy"]},
}
SOURCES = Sources(needed=("camera", "joint_states"), command="cmd_vel", intervention="teleop/intervention",
                  instruction="instruction")


class Host:
    """The node's side of :class:`RecorderIO`: a node clock set by the test, publisher counts, free disk."""

    def __init__(self):
        self.t = 100.0
        self.publisher_counts = {"cmd_vel": 1, "teleop/intervention": 1}
        self.free = 1e6
        self.logs: list[tuple[str, str]] = []
        self.bags: list[tuple] = []

    def now(self) -> float:
        return self.t

    def publishers(self, topic: str) -> int:
        return self.publisher_counts.get(topic, 0)

    def resolve(self, topic: str) -> str:
        return "/" + topic

    def free_mb(self) -> float:
        return self.free

    def log(self, level: str, text: str) -> None:
        self.logs.append((level, text))

    def episode_opened(self, index: int) -> None:
        self.bags.append(("open", index))

    def episode_closed(self, index: int, kept: bool) -> None:
        self.bags.append(("close", index, kept))


class Goal:
    def __init__(self, instruction: str = "push the red block", time_limit: float = 0.0):
        self.instruction, self.time_limit = instruction, time_limit
        self.cancel = threading.Event()
        self.feedbacks: list[tuple] = []

    def cancelled(self) -> bool:
        return self.cancel.is_set()

    def feedback(self, frames, elapsed, late, dropped) -> None:
        self.feedbacks.append((frames, elapsed, late, dropped))


class Rig:
    """An EpisodeControl with a real writer and sampler, and the executor thread's side played by the test."""

    def __init__(self, tmp_path, **params):
        self.host = Host()
        self.params = {**defaults(RECORDER_PARAMS), "start_timeout": 0.5, "feedback_period": 0.05, **params}
        self.writer = DatasetWriter(tmp_path / "data", FPS, FEATURES, robot_type="test")
        self.sampler = FrameSampler(FPS, [CAMERA], 2, 2)
        self.control = EpisodeControl(self.writer, self.sampler, "robot: test", FPS, SOURCES, self.host,
                                      lambda: self.params, encoder_id="enc")
        self.outcome: Outcome | None = None
        self.thread: threading.Thread | None = None
        self.i = 0

    def sources_up(self) -> None:
        for topic in SOURCES.needed:
            self.control.saw(topic)
        assert self.control.set_instruction("push the red block") is None

    def start(self, goal: Goal) -> Goal:
        assert self.control.accept(active=True) is None

        def run():
            try:
                self.outcome = self.control.record(goal)
            finally:
                self.control.release()
        self.thread = threading.Thread(target=run, daemon=True)
        self.thread.start()
        return goal

    def wait_recording(self, timeout: float = 5.0) -> None:
        deadline = time.monotonic() + timeout
        while not self.control.recording():
            assert time.monotonic() < deadline and self.thread.is_alive(), f"no episode started: {self.outcome}"
            time.sleep(0.005)

    def step(self, n: int = 1, images: bool = True) -> None:
        """``n`` robot periods: image and state stamped at the node clock, the command just after, a tick."""
        for _ in range(n):
            t = self.host.t
            with self.control.lock:
                if images:
                    self.sampler.offer_image(CAMERA, t, np.full((16, 16, 3), self.i % 250, np.uint8))
                self.sampler.offer_state(t, np.array([self.i, -self.i], np.float32))
                self.sampler.offer_command(t + 0.01, np.array([0.1, 0.0], np.float32))
                self.sampler.offer_intervention(t + 0.01, False)
            self.host.t = t + 1.0 / FPS
            self.i += 1
            self.control.tick(self.host.t)
            time.sleep(0.01)

    def finish(self, timeout: float = 20.0) -> Outcome:
        self.thread.join(timeout)
        assert not self.thread.is_alive(), "the goal did not end"
        return self.outcome


def test_goal_fields_are_checked():
    assert goal_problem("push the red block", 0.0) == ""
    assert "time_limit nan s is not a duration" in goal_problem("", float("nan"))
    assert "instruction rejected" in goal_problem("x" * 10000, 5.0)


def test_missing_sources_are_each_named_after_start_timeout(tmp_path):
    rig = Rig(tmp_path, start_timeout=0.2)
    rig.host.publisher_counts = {}
    rig.control.saw("camera")
    rig.start(Goal(instruction=""))
    outcome = rig.finish()
    assert outcome.status == ABORTED and outcome.message.startswith("4 source topics missing")
    for text in ("/joint_states (no message in 0.2 s)", "/cmd_vel (no publisher)",
                 "/teleop/intervention (no publisher; set intervention_required: false",
                 "/instruction (no instruction; or give one in the goal)"):
        assert text in outcome.message
    assert rig.writer.num_episodes == 0 and not rig.control.busy


def test_an_invalid_goal_or_a_full_disk_refuses_to_start(tmp_path):
    rig = Rig(tmp_path)
    rig.sources_up()
    rig.start(Goal(time_limit=-1.0))
    assert rig.finish().status == ABORTED and rig.control.rejects.total["goal_invalid"] == 1
    rig.host.free = 10.0
    rig.start(Goal())
    outcome = rig.finish()
    assert outcome.status == ABORTED and "disk almost full: 10 MB free" in outcome.message


def test_the_time_limit_saves_the_episode_on_the_node_clock(tmp_path):
    rig = Rig(tmp_path)
    rig.sources_up()
    goal = rig.start(Goal(time_limit=1.0))
    rig.wait_recording()
    while rig.thread.is_alive() and rig.i < 40:
        rig.step()
    outcome = rig.finish()
    assert outcome.status == SUCCEEDED and outcome.summary["saved"], outcome.message
    assert "time limit 1 s reached" in outcome.message and 10 <= outcome.summary["frames"] <= 20  # the goal loop checks every 20 ms
    assert rig.writer.num_episodes == 1 and rig.host.bags == [("open", 0), ("close", 0, True)]
    assert goal.feedbacks and goal.feedbacks[-1][0] > 0
    assert DatasetReader(tmp_path / "data").episodes[0]["tasks"] == ["push the red block"]


@pytest.mark.parametrize("how,status,saved", [(SAVE, SUCCEEDED, True), (DISCARD, ABORTED, False)])
def test_a_save_or_discard_request_ends_the_episode_and_the_first_request_wins(tmp_path, how, status, saved):
    rig = Rig(tmp_path)
    rig.sources_up()
    assert rig.control.request(SAVE, "nothing to save") is None  # no episode yet
    rig.start(Goal())
    rig.wait_recording()
    rig.step(5)
    assert rig.control.request(how, "on request") == 0
    rig.control.request(SAVE if how == DISCARD else DISCARD, "too late")
    outcome = rig.finish()
    assert outcome.status == status and bool(outcome.summary["saved"]) == saved and "on request" in outcome.message
    assert rig.writer.num_episodes == int(saved) and rig.host.bags[-1] == ("close", 0, saved)


def test_cancel_discards(tmp_path):
    rig = Rig(tmp_path)
    rig.sources_up()
    goal = rig.start(Goal())
    rig.wait_recording()
    rig.step(3)
    goal.cancel.set()
    outcome = rig.finish()
    assert outcome.status == CANCELED and not outcome.summary["saved"] and "cancelled" in outcome.message
    assert rig.writer.num_episodes == 0


def test_only_one_goal_at_a_time_and_none_while_inactive(tmp_path):
    rig = Rig(tmp_path)
    assert rig.control.accept(active=False) == "the recorder is not active"
    assert rig.control.accept(active=True) is None
    assert rig.control.accept(active=True) == "already recording"
    assert rig.control.rejects.total == {"goal_inactive": 1, "goal_busy": 1}
    rig.control.release()
    assert rig.control.accept(active=True) is None


def event(kind: int, index: int, stamp: float, instruction: str = "") -> inputs.EpisodeEvent:
    return inputs.EpisodeEvent(kind=kind, index=index, stamp=stamp, instruction=instruction)


def test_robot_events_start_end_and_label_the_episode_and_an_abort_records_the_next_one(tmp_path):
    rig = Rig(tmp_path, follow_episode_events=True, start_timeout=2.0)
    rig.sources_up()
    rig.start(Goal(instruction=""))
    time.sleep(0.05)
    rig.control.add_event(event(inputs.START, 0, rig.host.t, "stack the cups"))
    rig.wait_recording()
    rig.step(5)
    rig.control.add_event(event(inputs.ABORTED, 0, rig.host.t))  # a reset: discarded, the next one recorded
    deadline = time.monotonic() + 5
    while rig.host.bags[-1:] != [("close", 0, False)]:
        assert time.monotonic() < deadline, rig.host.bags
        time.sleep(0.01)
    rig.control.add_event(event(inputs.START, 1, rig.host.t, "stack the cups"))
    rig.wait_recording()
    rig.step(6)
    rig.control.add_event(event(inputs.SUCCESS, 1, rig.host.t))
    while rig.thread.is_alive():
        rig.step()
    outcome = rig.finish()
    assert outcome.status == SUCCEEDED and outcome.summary["saved"] and "episode succeeded" in outcome.message
    assert rig.writer.num_episodes == 1
    row = DatasetReader(tmp_path / "data").episodes[0]
    assert row["tasks"] == ["stack the cups"] and row["success"] is True


def test_a_start_not_followed_by_frames_is_discarded_and_counted(tmp_path):
    rig = Rig(tmp_path, follow_episode_events=True, start_timeout=0.3)
    rig.sources_up()
    rig.start(Goal())
    time.sleep(0.05)
    rig.control.add_event(event(inputs.START, 0, rig.host.t))
    rig.wait_recording()
    outcome = rig.finish()  # no frame ever comes: discarded, then no next START within start_timeout
    assert outcome.status == ABORTED and rig.writer.num_episodes == 0
    assert rig.control.rejects.total["start_without_frames"] == 1
    assert rig.host.bags == [("open", 0), ("close", 0, False)]


def test_the_robot_ending_another_episode_discards_the_one_recorded(tmp_path):
    rig = Rig(tmp_path, follow_episode_events=True, start_timeout=0.5)
    rig.sources_up()
    rig.start(Goal())
    time.sleep(0.05)
    rig.control.add_event(event(inputs.START, 3, rig.host.t))
    rig.wait_recording()
    rig.step(3)
    rig.control.add_resync(7)
    outcome = rig.finish()
    assert rig.host.bags[:2] == [("open", 0), ("close", 0, False)]
    assert outcome.status == ABORTED and rig.writer.num_episodes == 0


def test_mark_labels_the_episode_in_progress_else_the_last_saved(tmp_path):
    rig = Rig(tmp_path)
    with pytest.raises(LookupError, match="no episode recorded yet"):
        rig.control.mark(True)
    rig.sources_up()
    rig.start(Goal())
    rig.wait_recording()
    rig.step(4)
    assert rig.control.mark(False) == "episode 0 will be saved as failure"
    rig.control.request(SAVE, "on request")
    assert rig.finish().summary["saved"]
    assert DatasetReader(tmp_path / "data").episodes[0]["success"] is False
    assert rig.control.mark(True) == "episode 0 marked success"
    assert DatasetReader(tmp_path / "data").episodes[0]["success"] is True


def test_stop_from_the_executor_thread_saves_the_episode_and_the_goal_reports_it(tmp_path):
    rig = Rig(tmp_path)
    rig.sources_up()
    rig.start(Goal())
    rig.wait_recording()
    rig.step(5)
    rig.control.stop("the recorder was deactivated")  # as deactivate does, while the goal's thread runs
    outcome = rig.finish()
    assert outcome.status == SUCCEEDED and "deactivated" in outcome.message and rig.writer.num_episodes == 1


def test_parameters_are_read_at_each_goal(tmp_path):
    rig = Rig(tmp_path)
    rig.sources_up()
    rig.params = {**rig.params, "default_time_limit": 0.5}  # a run-time change between goals
    rig.start(Goal())
    rig.wait_recording()
    while rig.thread.is_alive() and rig.i < 40:
        rig.step()
    assert "time limit 0.5 s reached" in rig.finish().message


@pytest.mark.parametrize("lag", [0.0, 0.25])
def test_the_first_frame_after_a_reset_is_the_reset_scene_even_when_the_node_clock_lags(tmp_path, lag):
    """A reset does not advance time: the robot's last image of one episode and the reset scene of the next
    share the START's stamp, and arrive in that order after it. Under use_sim_time the node clock lags the
    robot's stamps (here by ``lag``), so the START is stamped ahead of it: the episode's frames must still run
    from the START's stamp, not from the node clock, or the previous episode's images are recorded first."""
    rig = Rig(tmp_path, follow_episode_events=True, start_timeout=2.0)
    rig.sources_up()
    rig.start(Goal(instruction=""))
    time.sleep(0.05)
    stamp = rig.host.t + lag  # the robot's time
    rig.host.t = stamp - lag  # the node's view of it
    rig.control.add_event(event(inputs.START, 1, stamp, "stack the cups"))
    rig.wait_recording()
    with rig.control.lock:  # the previous episode's images, then the reset scene, all after the START
        rig.sampler.offer_image(CAMERA, stamp - 0.1, np.full((16, 16, 3), 10, np.uint8))
        rig.sampler.offer_state(stamp - 0.1, np.array([10.0, 10.0], np.float32))
        rig.sampler.offer_image(CAMERA, stamp, np.full((16, 16, 3), 20, np.uint8))
        rig.sampler.offer_state(stamp, np.array([20.0, 20.0], np.float32))
        rig.sampler.offer_image(CAMERA, stamp, np.full((16, 16, 3), 200, np.uint8))
        rig.sampler.offer_state(stamp, np.array([0.0, 0.0], np.float32))
        rig.sampler.offer_command(stamp, np.array([0.1, 0.0], np.float32))
    for k in range(1, 6):  # the episode's next frames, stamped on the robot's time
        t = stamp + k / FPS
        with rig.control.lock:
            rig.sampler.offer_image(CAMERA, t, np.full((16, 16, 3), 200 + k, np.uint8))
            rig.sampler.offer_state(t, np.array([k, k], np.float32))
            rig.sampler.offer_command(t + 0.01, np.array([0.1, 0.0], np.float32))
        rig.host.t = t - lag
        rig.control.tick(rig.host.t)
    rig.control.add_event(event(inputs.SUCCESS, 1, stamp + 5 / FPS))
    outcome = rig.finish()
    assert outcome.status == SUCCEEDED and outcome.summary["saved"], outcome.message
    reader = DatasetReader(tmp_path / "data")
    frames = reader.episode_frames(0)
    first = np.asarray(frames[CAMERA][0], np.float64).mean()
    assert abs(first - 200) < 6, f"frame 0 has mean pixel {first:.0f}: not the reset scene (200)"
    assert np.allclose(frames["observation.state"][0], [0.0, 0.0]) and float(frames["timestamp"][0]) == 0.0
    assert len(frames["timestamp"]) == 6 and outcome.summary["dropped"] == 0


def test_a_goal_that_fails_after_opening_its_episode_discards_it_and_the_next_goal_records(tmp_path):
    # Anything raising mid-episode (here the node's logger, as rclpy's did when one call site changed severity)
    # must not leave the episode open: every later goal would fail with "an episode is already being recorded".
    rig = Rig(tmp_path)
    rig.sources_up()
    real_log = rig.host.log

    def failing_log(level, text):
        if "started" in text:
            raise ValueError("Logger severity cannot be changed between calls.")
        real_log(level, text)
    rig.host.log = failing_log
    goal = Goal(time_limit=1.0)
    assert rig.control.accept(active=True) is None
    with pytest.raises(ValueError, match="Logger severity"):
        rig.control.record(goal)
    rig.control.release()
    assert not rig.control.recording() and rig.writer.num_episodes == 0
    assert rig.host.bags == [("open", 0), ("close", 0, False)]
    rig.host.log = real_log
    rig.start(Goal(time_limit=1.0))
    rig.wait_recording()
    while rig.thread.is_alive() and rig.i < 40:
        rig.step()
    outcome = rig.finish()
    assert outcome.status == SUCCEEDED and outcome.summary["saved"], outcome.message
    assert rig.writer.num_episodes == 1
