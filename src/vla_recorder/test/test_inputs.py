"""What the recorder refuses: episode events that do not fit the robot's sequence, future stamps (pure)."""
import pytest

from vla_recorder.inputs import (ABORTED, START, SUCCESS, TIMEOUT, EpisodeEvent, Rejects, RobotEpisodes,
                                 future_stamp_problem)


def feed(robot, events, now=100.0):
    return [robot.check(EpisodeEvent(kind, index, stamp, text), now) for kind, index, stamp, text in events]


def test_the_robots_own_sequence_is_accepted():
    robot = RobotEpisodes()
    problems = feed(robot, [(START, 0, 1.0, "push the red cube"), (SUCCESS, 0, 5.0, ""),
                            (START, 1, 5.0, "push the blue cube"), (ABORTED, 1, 6.0, ""),  # a reset
                            (START, 2, 6.0, "push the blue cube"), (TIMEOUT, 2, 26.0, ""),
                            (START, 0, 30.0, "push it")])  # a robot restarted after an end: episode 0 again
    assert problems == [None] * 7 and robot.running == 0


@pytest.mark.parametrize("event, words", [
    ((START, 7, 10.0, ""), "while episode 3 is still running"),            # a forged START mid-episode
    ((START, 4, 10.0, ""), "while episode 3 is still running"),            # even with the right next index
    ((START, 3, 10.0, ""), "while episode 3 is still running"),            # a duplicate
    ((9, 3, 10.0, ""), "kind 9 unknown"),
    ((SUCCESS, 3, 1e9, ""), "in the future"),                              # a forged end from the future
])
def test_events_that_do_not_fit_a_running_episode_are_refused(event, words):
    robot = RobotEpisodes(max_future=1.0)
    assert feed(robot, [(START, 3, 9.0, "push the red cube")]) == [None]
    [problem] = feed(robot, [event])
    assert problem and words in problem
    assert robot.running == 3  # the robot's episode is still followed


@pytest.mark.parametrize("event, words", [
    ((START, 9, 10.0, ""), "the robot's next episode is 4"),
    ((START, 4, 1e6, ""), "in the future"),                                # would anchor the episode in the future
    ((START, 4, 10.0, "push\x00 the cube"), "U+0000"),                     # untrainable instruction
    ((START, 4, 10.0, "x" * 600), "600 characters"),
])
def test_a_start_that_is_not_the_next_episode_is_refused(event, words):
    robot = RobotEpisodes(max_future=1.0)
    feed(robot, [(START, 3, 9.0, ""), (SUCCESS, 3, 9.5, "")])
    [problem] = feed(robot, [event])
    assert problem and words in problem
    assert feed(robot, [(START, 4, 10.0, "push the cube")]) == [None]  # the real one still is accepted


def test_an_end_of_another_episode_resynchronises():
    """A robot restarted without its end events (killed): its episode 0 is refused while 5 is running, its end
    re-synchronises the sequence, and its next START is followed again."""
    robot = RobotEpisodes()
    feed(robot, [(START, 5, 1.0, "")])
    assert "still running" in feed(robot, [(START, 0, 2.0, "")])[0]
    assert "running episode is 5" in feed(robot, [(TIMEOUT, 0, 22.0, "")])[0]
    assert feed(robot, [(START, 1, 22.0, "")]) == [None]


def test_the_first_event_seen_is_taken_as_it_comes():
    robot = RobotEpisodes()
    assert feed(robot, [(SUCCESS, 41, 1.0, ""), (START, 42, 1.0, "")]) == [None, None]


def test_future_stamps_and_a_clock_not_started():
    assert future_stamp_problem("image", 10.5, 10.0, 1.0) is None
    assert "2.000 s in the future" in future_stamp_problem("image", 12.0, 10.0, 1.0)
    assert future_stamp_problem("image", 1e9, 0.0, 1.0) is None  # use_sim_time before /clock: cannot judge


def test_rejects_count_in_all_and_per_episode():
    rejects = Rejects()
    assert rejects.add("image_data", "short buffer") == 1
    rejects.new_episode()
    rejects.add("episode_event", "forged START")
    assert rejects.total == {"image_data": 1, "episode_event": 1} and rejects.episode == {"episode_event": 1}
    assert rejects.count() == 2 and rejects.last_problem == "forged START"
