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


def test_the_recorders_own_report_is_waited_for_and_the_robot_kicked_until_it_has_its_sources():
    r = Readiness("/recorder", recorder_reports=True)
    for topic in ("/camera/top/image_raw", "/joint_states"):
        r.observe(topic, 1, True)
        r.heard(topic)
    assert r.missing() == ["/recorder (no report on /diagnostics yet of the sources it has received)"]
    r.recorder_lacks(["/joint_states"])
    assert r.missing() == ["/joint_states (no message at the recorder yet)"] and r.recorder_waits()
    r.recorder_lacks([])
    assert r.ready()
    # The recorder matched the robot late and missed its only episode: kicked every kick_every s until it reports
    # both topics; without its report the wait would have ended at once (everything heard here).
    clock, kicks = Clock(), []

    class LateRecorder:
        def poll(self, readiness):
            for topic in ("/camera/top/image_raw", "/joint_states"):
                readiness.observe(topic, 1, True)
                readiness.heard(topic)
            readiness.recorder_lacks([] if len(kicks) >= 3 else ["/camera/top/image_raw", "/joint_states"])
    waited = wait_ready(LateRecorder(), Readiness(recorder_reports=True), timeout=60, say=lambda m: None,
                        kick=lambda: kicks.append(clock()), kick_every=3.0, clock=clock, sleep=clock.sleep)
    assert kicks == pytest.approx([3.0, 6.0, 9.0], abs=0.25) and waited == pytest.approx(9.0, abs=0.35)


def test_timeout_names_missing_topics_and_what_to_do():
    clock = Clock()
    graph = ScriptedGraph({0: {"/camera/top/image_raw": (1, True, True), "/joint_states": (0, True, False)}})
    with pytest.raises(NotReady) as err:
        wait_ready(graph, Readiness(), timeout=5, say=lambda m: None, clock=clock, sleep=clock.sleep, logs="runs/x")
    text = str(err.value)
    assert "/joint_states (no publisher, no message yet)" in text and "image_raw" not in text.split("missing:")[1]
    assert "runs/x" in text and "--ready-timeout" in text


def test_a_topic_nobody_publishes_fails_after_the_discovery_time_not_the_whole_timeout():
    # Publishers with no message yet are waited for up to the timeout; a topic without any publisher once the
    # graph has had its discovery time cannot become ready by waiting.
    clock = Clock()
    starved = ScriptedGraph({0: {"/camera/top/image_raw": (1, True, False), "/joint_states": (1, True, False)}})
    with pytest.raises(NotReady):
        wait_ready(starved, Readiness(), timeout=30, say=lambda m: None, clock=clock, sleep=clock.sleep)
    assert clock() == pytest.approx(30.0, abs=0.2)
    clock = Clock()
    absent = ScriptedGraph({0: {"/camera/top/image_raw": (1, True, True), "/joint_states": (0, True, False)}})
    with pytest.raises(NotReady, match=r"/joint_states \(no publisher"):
        wait_ready(absent, Readiness(), timeout=60, say=lambda m: None, clock=clock, sleep=clock.sleep,
                   no_publisher_after=10.0)
    assert clock() == pytest.approx(10.0, abs=0.2)


# --- over a real rclpy graph (in this process) --------------------------------------------------------------------
@pytest.fixture
def ros():
    import os

    import rclpy
    from rclpy.executors import SingleThreadedExecutor

    from vla_ros.spinning import SpinThread
    ctx = rclpy.Context()
    rclpy.init(context=ctx)
    ns = f"/readiness_{os.getpid()}"
    nodes = {name: rclpy.create_node(name, namespace=ns, context=ctx) for name in ("recorder", "sim", "probe")}
    executor = SingleThreadedExecutor(context=ctx)
    for node in nodes.values():
        executor.add_node(node)
    spinner = SpinThread(executor).start()
    yield ns, nodes
    if spinner.stop():
        for node in nodes.values():
            node.destroy_node()
    rclpy.shutdown(context=ctx)


def test_graph_probe_waits_for_the_recorders_sensor_topics_and_kicks_an_idle_robot(ros):
    from rclpy.qos import qos_profile_sensor_data
    from sensor_msgs.msg import Image, JointState
    from std_msgs.msg import String

    from vla_tools.readiness import GraphProbe
    ns, nodes = ros
    rec, sim = nodes["recorder"], nodes["sim"]
    for msg_type, topic in ((Image, "camera/top/image_raw"), (JointState, "joint_states"), (String, "instruction")):
        rec.create_subscription(msg_type, topic, lambda m: None, qos_profile_sensor_data)
    image_pub = sim.create_publisher(Image, "camera/top/image_raw", 5)
    joints_pub = sim.create_publisher(JointState, "joint_states", 5)
    publishing = []
    sim.create_timer(0.05, lambda: publishing and (image_pub.publish(Image()), joints_pub.publish(JointState())))
    probe, readiness, said = GraphProbe(nodes["probe"], f"{ns}/recorder"), Readiness(f"{ns}/recorder"), []
    waited = wait_ready(probe, readiness, timeout=15.0, say=said.append, kick=lambda: publishing.append(1),
                        kick_after=1.0, say_every=0.5)
    probe.close()
    assert publishing == [1] and waited >= 1.0  # nothing flowed before the kick: the wait did not pass early
    assert sorted(readiness.topics) == [f"{ns}/camera/top/image_raw", f"{ns}/joint_states"]  # not the String
    assert any("no message yet" in line for line in said)


def test_graph_probe_reads_what_the_recorder_reports_it_has_not_received(ros):
    from diagnostic_msgs.msg import DiagnosticArray, DiagnosticStatus, KeyValue
    from rclpy.qos import qos_profile_sensor_data
    from sensor_msgs.msg import JointState

    from vla_tools.readiness import GraphProbe
    ns, nodes = ros
    rec, sim = nodes["recorder"], nodes["sim"]
    rec.create_subscription(JointState, "joint_states", lambda m: None, qos_profile_sensor_data)
    joints_pub = sim.create_publisher(JointState, "joint_states", 5)
    diag_pub = rec.create_publisher(DiagnosticArray, "/diagnostics", 10)
    unseen = [f"{ns}/joint_states"]

    def report():
        joints_pub.publish(JointState())
        status = DiagnosticStatus(name="recorder: recording", values=[KeyValue(key="sources_unseen",
                                                                               value=",".join(unseen))])
        diag_pub.publish(DiagnosticArray(status=[status, DiagnosticStatus(name="other: recording")]))
    sim.create_timer(0.05, report)
    probe, said = GraphProbe(nodes["probe"], f"{ns}/recorder"), []
    readiness = Readiness(f"{ns}/recorder", recorder_reports=True)
    with pytest.raises(NotReady, match=f"{ns}/joint_states \(no message at the recorder yet\)"):
        wait_ready(probe, readiness, timeout=2.0, say=said.append)
    unseen.clear()
    assert wait_ready(probe, readiness, timeout=5.0, say=said.append) < 5.0
    probe.close()
    probe.close()  # twice is harmless


def test_graph_probe_times_out_naming_the_topic_without_a_publisher(ros):
    from rclpy.qos import qos_profile_sensor_data
    from sensor_msgs.msg import Image, JointState

    from vla_tools.readiness import GraphProbe
    ns, nodes = ros
    nodes["recorder"].create_subscription(Image, "camera/top/image_raw", lambda m: None, qos_profile_sensor_data)
    nodes["recorder"].create_subscription(JointState, "joint_states", lambda m: None, qos_profile_sensor_data)
    pub = nodes["sim"].create_publisher(Image, "camera/top/image_raw", 5)
    nodes["sim"].create_timer(0.05, lambda: pub.publish(Image()))
    probe = GraphProbe(nodes["probe"], f"{ns}/recorder")
    with pytest.raises(NotReady, match=f"{ns}/joint_states \\(no publisher, no message yet\\)") as err:
        wait_ready(probe, Readiness(f"{ns}/recorder"), timeout=3.0, say=lambda m: None)
    probe.close()
    assert "image_raw" not in str(err.value).split("missing:")[1].split(".")[0]

