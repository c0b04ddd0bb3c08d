"""Raw ROS 2 bags in MCAP (ros2msg schemas, CDR payloads as received): replay and debugging next to a dataset.

``McapBag`` takes serialized messages (rclpy ``raw=True`` subscriptions) so nothing is deserialised or
re-encoded; the files open in Foxglove, ``rosbags`` and ``mcap-ros2-support``. ``main`` records topics to one
file until interrupted (the benchmark's MCAP-only comparison runs it as its own process).
"""
from __future__ import annotations

import argparse
import re
import struct
import threading
from pathlib import Path
from typing import Iterable, NamedTuple

from mcap.writer import CompressionType, Writer

PRIMITIVES = {"bool", "byte", "char", "float32", "float64", "int8", "uint8", "int16", "uint16", "int32", "uint32",
              "int64", "uint64", "string", "wstring"}


def _msg_path(package: str, name: str) -> Path:
    from ament_index_python.packages import get_package_share_directory
    return Path(get_package_share_directory(package)) / "msg" / f"{name}.msg"


def message_definition(type_name: str) -> str:
    """The ros2msg schema text of ``pkg/msg/Name``: its .msg text, then every nested type's, as rosbag2 writes."""
    package, _, name = type_name.split("/")
    seen: list[str] = []
    parts = [_msg_path(package, name).read_text()]

    def visit(pkg: str, text: str) -> None:
        for line in text.splitlines():
            line = line.split("#", 1)[0].strip()
            if not line or "=" in line.split()[0 if len(line.split()) < 2 else 1]:
                continue
            field_type = re.sub(r"\[.*\]$", "", line.split()[0]).split("<=")[0]
            if field_type in PRIMITIVES or re.match(r"^w?string<=", line.split()[0]):
                continue
            dep_pkg, dep_name = field_type.split("/") if "/" in field_type else (pkg, field_type)
            if dep_name == "Header" and "/" not in field_type:
                dep_pkg = "std_msgs"
            full = f"{dep_pkg}/msg/{dep_name}"
            if full in seen:
                continue
            seen.append(full)
            dep_text = _msg_path(dep_pkg, dep_name).read_text()
            parts.append("=" * 80 + f"\nMSG: {dep_pkg}/{dep_name}\n" + dep_text)
            visit(dep_pkg, dep_text)

    visit(package, parts[0])
    return "\n".join(parts)


class McapBag:
    """One MCAP file; ``write`` is thread-safe. Times in nanoseconds."""

    def __init__(self, path: str | Path, compression: str = "none"):
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._file = open(self.path, "wb")
        kinds = {"none": CompressionType.NONE, "lz4": CompressionType.LZ4, "zstd": CompressionType.ZSTD}
        self._writer = Writer(self._file, compression=kinds[compression])
        self._writer.start(profile="ros2", library="vla_recorder")
        self._channels: dict[str, int] = {}
        self._schemas: dict[str, int] = {}
        self._lock = threading.Lock()
        self.messages = 0
        self.bytes = 0

    def add_topic(self, topic: str, type_name: str) -> None:
        with self._lock:
            if type_name not in self._schemas:
                self._schemas[type_name] = self._writer.register_schema(
                    type_name, "ros2msg", message_definition(type_name).encode())
            self._channels[topic] = self._writer.register_channel(topic, "cdr", self._schemas[type_name])

    def write(self, topic: str, data: bytes, log_time_ns: int, publish_time_ns: int | None = None) -> None:
        with self._lock:
            self._writer.add_message(self._channels[topic], log_time_ns, data,
                                     publish_time_ns if publish_time_ns is not None else log_time_ns, self.messages)
            self.messages += 1
            self.bytes += len(data)

    def close(self) -> None:
        with self._lock:
            if self._file.closed:
                return
            self._writer.finish()
            self._file.close()


def cdr_header_stamp(data: bytes) -> float | None:
    """The ``header.stamp`` (s) of a serialized message whose first field is a std_msgs/Header (CDR: a 4-byte
    encapsulation, then the stamp's int32 sec and uint32 nanosec); None if ``data`` is too short."""
    if len(data) < 12:
        return None
    order = "<" if data[1] & 1 else ">"  # encapsulation 0x0001: little-endian CDR; 0x0000: big-endian
    sec, nanosec = struct.unpack_from(order + "iI", data, 4)
    return sec + nanosec * 1e-9


class Preroll(NamedTuple):
    """A raw message received while no bag was open."""
    topic: str
    data: bytes
    received_ns: int
    stamp: float | None  # its header's stamp (s), for a message type with a header


def preroll_to_keep(preroll: Iterable[Preroll], since: float) -> list[Preroll]:
    """The pre-roll messages an episode's bag keeps, in the order received: those stamped at or after ``since``
    (s; by header stamp, since a message can be received before the receiver's clock reaches its stamp), those
    without a stamp received at or after ``since``, and of each topic the newest one before those (the state,
    command or flag in force when the episode's first frame was taken)."""
    items = list(preroll)
    after = [m for m in items if (m.stamp if m.stamp is not None else m.received_ns * 1e-9) >= since]
    kept = {id(m) for m in after}
    first_after: dict[str, int] = {}
    for m in after:
        first_after.setdefault(m.topic, m.received_ns)
    in_force: dict[str, Preroll] = {}
    for m in items:
        if id(m) not in kept and m.received_ns <= first_after.get(m.topic, m.received_ns):
            in_force[m.topic] = m
    kept |= {id(m) for m in in_force.values()}
    return [m for m in items if id(m) in kept]


def subscribe_raw(node, bag: McapBag, topics: dict[str, type], qos) -> list:
    """Raw subscriptions of ``node`` that copy every message of ``topics`` (name -> message class) into ``bag``."""
    subs = []
    for topic, msg_type in topics.items():
        module = msg_type.__module__.split(".")
        bag.add_topic(node.resolve_topic_name(topic), f"{module[0]}/msg/{msg_type.__name__}")
        name = node.resolve_topic_name(topic)

        def on_raw(data, name=name):
            bag.write(name, data, node.get_clock().now().nanoseconds)
        subs.append(node.create_subscription(msg_type, topic, on_raw, qos, raw=True))
    return subs


def main(argv=None) -> int:
    """Record topics to an MCAP file until SIGINT/SIGTERM: ``mcap_record OUT TOPIC:pkg/msg/Type ...``."""
    import importlib

    import rclpy

    from vla_ros.node_base import node_session, spin_until_signal
    from vla_ros.node_qos import SENSOR_PUB
    parser = argparse.ArgumentParser(description=main.__doc__)
    parser.add_argument("out")
    parser.add_argument("topics", nargs="+", metavar="TOPIC:pkg/msg/Type")
    args, ros_args = parser.parse_known_args(argv)
    rclpy.init(args=ros_args)
    node = rclpy.create_node("mcap_record")
    bag = McapBag(args.out)
    topics = {}
    for spec in args.topics:
        topic, type_name = spec.split(":")
        pkg, _, name = type_name.split("/")
        topics[topic] = getattr(importlib.import_module(f"{pkg}.msg"), name)
    subscribe_raw(node, bag, topics, SENSOR_PUB)
    with node_session(node):
        try:
            spin_until_signal(node)
        finally:
            bag.close()
            print(f'{{"mcap_messages": {bag.messages}, "mcap_bytes": {bag.bytes}}}', flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
