"""Is the graph ready to record? The recorder's sensor topics (its subscriptions to camera images and joint
states, read from the graph) each need a publisher, the recorder's subscription, a first message seen here, and
a first message seen by the recorder itself (its /diagnostics say which it still lacks: discovery between the robot
and the recorder can finish later than between the robot and this probe, and a lockstep simulator publishes nothing
between episodes, so a goal sent before then waits out the recorder's start timeout).

``Readiness`` is the pure judgement (what is missing, and why); ``wait_ready`` polls a probe until nothing is,
saying what it waits for, and raises ``NotReady`` with every missing topic and what to do. ``GraphProbe`` is
the probe over a running rclpy node (it only reads the graph and subscribes; it creates nothing else).
"""
from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Callable, Protocol

SENSOR_TYPES = ("sensor_msgs/msg/Image", "sensor_msgs/msg/JointState")


class NotReady(RuntimeError):
    """The graph did not become ready in time; the message names every missing topic and what to do."""


@dataclass
class TopicState:
    publishers: int = 0
    subscribed: bool = False   # the recorder subscribes to it
    heard: bool = False        # a message arrived here


@dataclass
class Readiness:
    """What the recorder's sensor sources lack. ``topics`` are fully qualified names (``/joint_states``)."""

    subscriber: str = "/recorder"
    topics: dict[str, TopicState] = field(default_factory=dict)
    # What the recorder reports it has not received yet (its diagnostics' sources_unseen); None: no report yet.
    # Checked only with ``recorder_reports`` (a recorder of this workspace publishes it).
    recorder_unseen: list[str] | None = None
    recorder_reports: bool = False

    def observe(self, topic: str, publishers: int, subscribed: bool) -> None:
        state = self.topics.setdefault(topic, TopicState())
        state.publishers, state.subscribed = publishers, subscribed

    def heard(self, topic: str) -> None:
        self.topics.setdefault(topic, TopicState()).heard = True

    def recorder_lacks(self, topics: list[str]) -> None:
        """The recorder's own report: the sensor topics it has had no message from yet."""
        self.recorder_unseen = list(topics)

    def missing(self) -> list[str]:
        """One ``topic (why)`` per topic that is not ready; a recorder with no sensor topic at all is one entry."""
        if not any(s.subscribed for s in self.topics.values()):
            return [f"{self.subscriber} (no subscription to a camera image or joint states yet)"]
        out = []
        for topic, s in sorted(self.topics.items()):
            if not s.subscribed:
                continue  # a topic this probe hears but the recorder does not record
            why = [w for w, bad in (("no publisher", s.publishers == 0), ("no message yet", not s.heard)) if bad]
            if why:
                out.append(f"{topic} ({', '.join(why)})")
        if out or not self.recorder_reports:
            return out
        if self.recorder_unseen is None:
            return [f"{self.subscriber} (no report on /diagnostics yet of the sources it has received)"]
        return [f"{topic} (no message at the recorder yet)" for topic in sorted(self.recorder_unseen)]

    def recorder_waits(self) -> bool:
        """The topics carry messages here, but the recorder lacks some (it matched them late, or missed the last
        ones): a robot that publishes only in episodes must be kicked again."""
        return bool(self.recorder_reports and self.recorder_unseen
                    and all(s.heard for s in self.topics.values() if s.subscribed))

    def ready(self) -> bool:
        return not self.missing()


class Probe(Protocol):
    def poll(self, readiness: Readiness) -> None: ...


def not_ready_message(missing: list[str], waited: float, logs: str = "") -> str:
    """The timeout error: every missing topic, and what to do about it."""
    where = f" (node logs: {logs})" if logs else ""
    return (f"the graph was not ready after {waited:.0f} s: {len(missing)} source(s) missing: {'; '.join(missing)}. "
            f"A topic with no publisher means its node is not running{where}; one with no message means its node "
            "is starved or discovery has not finished (check `ros2 topic hz TOPIC`, stop other heavy work, or "
            "wait longer with --ready-timeout)")


def wait_ready(probe: Probe, readiness: Readiness, timeout: float, say: Callable[[str], None],
               kick: Callable[[], None] | None = None, kick_after: float = 2.0, kick_every: float = 3.0,
               say_every: float = 5.0,
               logs: str = "", clock: Callable[[], float] = time.monotonic,
               sleep: Callable[[float], None] = time.sleep, no_publisher_after: float = 10.0) -> float:
    """Poll ``probe`` until ``readiness`` has nothing missing; returns the seconds waited.

    ``kick`` (e.g. a sim reset, for a robot that publishes nothing between episodes) is called once if no message
    arrived ``kick_after`` s after the wait began, and again every ``kick_every`` s while messages arrive here but
    the recorder still lacks some. Says what is missing every ``say_every`` s.
    Raises: NotReady after ``timeout`` s, or after ``no_publisher_after`` s while a topic still has no publisher
    at all (the graph is up: no node that would publish it is running, and waiting longer cannot help).
    """
    t0 = clock()
    kicked, said, last_kick = kick is None, t0, t0
    while True:
        probe.poll(readiness)
        missing = readiness.missing()
        waited = clock() - t0
        if not missing:
            return waited
        unpublished = any(s.subscribed and s.publishers == 0 for s in readiness.topics.values())
        if waited > timeout or (unpublished and waited > min(no_publisher_after, timeout)):
            raise NotReady(not_ready_message(missing, waited, logs))
        if not kicked and waited >= kick_after and not any(s.heard for s in readiness.topics.values()):
            kicked, last_kick = True, clock()
            kick()
        elif kick is not None and readiness.recorder_waits() and clock() - last_kick >= kick_every:
            last_kick = clock()
            kick()
        if clock() - said >= say_every:
            said = clock()
            say(f"waiting for the graph ({waited:.0f} s of {timeout:g} s): {'; '.join(missing)}")
        sleep(0.1)


class GraphProbe:
    """Reads the recorder's sensor subscriptions and their publishers from the graph of ``node``, and subscribes
    to each sensor topic to see a first message (sensor-data QoS, so it matches any publisher)."""

    def __init__(self, node, recorder: str = "/recorder"):
        from diagnostic_msgs.msg import DiagnosticArray
        self.node = node
        name = recorder.rstrip("/").rsplit("/", 1)[-1]
        namespace = recorder.rstrip("/")[: -len(name)].rstrip("/") or "/"
        self.recorder = (name, namespace)
        self.subscriptions: dict[str, object] = {}
        self._heard: set[str] = set()
        self._unseen: list[str] | None = None
        # The recorder's diagnostics (vla_recorder: status "<name>: recording", key sources_unseen)
        self._status_name = f"{name}: recording"
        self._diagnostics = node.create_subscription(DiagnosticArray, "/diagnostics", self._on_diagnostics, 10)

    def _on_diagnostics(self, msg) -> None:
        for status in msg.status:
            if status.name == self._status_name:
                values = {kv.key: kv.value for kv in status.values}
                if "sources_unseen" in values:
                    self._unseen = [t for t in values["sources_unseen"].split(",") if t]

    def poll(self, readiness: Readiness) -> None:
        try:
            subs = self.node.get_subscriber_names_and_types_by_node(*self.recorder)
        except Exception:  # the recorder is not in the graph yet (rclpy raises NodeNameNonExistentError)
            subs = []
        wanted = {topic: types[0] for topic, types in subs if types and types[0] in SENSOR_TYPES}
        for topic, type_name in wanted.items():
            if topic not in self.subscriptions:
                self.subscriptions[topic] = self._subscribe(topic, type_name)
            readiness.observe(topic, self.node.count_publishers(topic), True)
        for topic in list(self._heard):
            readiness.heard(topic)
        if self._unseen is not None:
            readiness.recorder_lacks(self._unseen)

    def _subscribe(self, topic: str, type_name: str):
        from rclpy.qos import qos_profile_sensor_data
        from sensor_msgs.msg import Image, JointState
        msg_type = Image if type_name.endswith("/Image") else JointState
        return self.node.create_subscription(msg_type, topic, lambda _m, t=topic: self._heard.add(t),
                                             qos_profile_sensor_data)

    def close(self) -> None:
        for sub in [*self.subscriptions.values(), *([self._diagnostics] if self._diagnostics else [])]:
            self.node.destroy_subscription(sub)
        self.subscriptions.clear()
        self._diagnostics = None
