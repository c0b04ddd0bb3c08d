"""The graph-readiness judgement and wait: pure, driven by a scripted graph and a fake clock."""
import pytest

from vla_tools.readiness import NotReady, Readiness, wait_ready


class ScriptedGraph:
    """Stands in for the ROS graph: at poll k, the state listed for the largest step <= k."""

    def __init__(self, script):
        self.script, self.polls = script, 0

    def poll(self, readiness):
        step = max(k for k in self.script if k <= self.polls)
        for topic, (publishers, subscribed, heard) in self.script[step].items():
            readiness.observe(topic, publishers, subscribed)
            if heard:
                readiness.heard(topic)
        self.polls += 1


class Clock:
    def __init__(self):
        self.t = 0.0

    def __call__(self):
        return self.t

    def sleep(self, dt):
        self.t += dt


def test_missing_names_each_topic_and_reason():
    r = Readiness("/recorder")
    assert r.missing() == ["/recorder (no subscription to a camera image or joint states yet)"]
    r.observe("/camera/top/image_raw", 0, True)
    r.observe("/joint_states", 1, True)
    r.observe("/other", 0, False)  # not recorded: not required
    assert r.missing() == ["/camera/top/image_raw (no publisher, no message yet)", "/joint_states (no message yet)"]
    r.heard("/joint_states")
    r.observe("/camera/top/image_raw", 1, True)
    r.heard("/camera/top/image_raw")
    assert r.ready()


def test_wait_returns_once_messages_arrive_and_kicks_an_idle_robot_once():
    clock, kicks, said = Clock(), [], []
    topics = ("/camera/top/image_raw", "/joint_states")
    graph = ScriptedGraph({0: {t: (1, True, False) for t in topics},
                           40: {t: (1, True, True) for t in topics}})
    waited = wait_ready(graph, Readiness(), timeout=60, say=said.append, kick=lambda: kicks.append(clock()),
                        kick_after=2.0, say_every=1.0, clock=clock, sleep=clock.sleep)
    assert waited == pytest.approx(4.0, abs=0.11)
    assert len(kicks) == 1 and kicks[0] == pytest.approx(2.0, abs=0.11)
    assert said and "/joint_states (no message yet)" in said[0]


def test_timeout_names_missing_topics_and_what_to_do():
    clock = Clock()
    graph = ScriptedGraph({0: {"/camera/top/image_raw": (1, True, True), "/joint_states": (0, True, False)}})
    with pytest.raises(NotReady) as err:
        wait_ready(graph, Readiness(), timeout=5, say=lambda m: None, clock=clock, sleep=clock.sleep, logs="runs/x")
    text = str(err.value)
    assert "/joint_states (no publisher, no message yet)" in text and "image_raw" not in text.split("missing:")[1]
    assert "runs/x" in text and "--ready-timeout" in text
