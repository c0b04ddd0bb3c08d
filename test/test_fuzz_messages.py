"""The fuzz harness's message generator: strategies and edge cases read off real message definitions.

No nodes here: message classes, hypothesis, and rclpy's serializer to prove every generated message can
actually be published."""
from __future__ import annotations

import math

import pytest
from geometry_msgs.msg import Twist
from hypothesis import HealthCheck, Phase, given, settings
from rclpy.serialization import serialize_message
from sensor_msgs.msg import Image, JointState, LaserScan
from std_msgs.msg import Header

from vla_tools.fuzz_messages import (CONTROL_TEXT, HUGE_LIST, describe, edge_cases, message_strategy, to_time,
                                       type_name)
from vla_interfaces.action import RecordEpisode
from vla_interfaces.msg import InstructionEmbedding, SimState
from vla_interfaces.srv import LoadPolicy, ResetEpisode

TYPES = [Twist, Image, JointState, LaserScan, InstructionEmbedding, SimState, LoadPolicy.Request,
         ResetEpisode.Request, RecordEpisode.Goal]
NOW = 1000.0
FAST = settings(max_examples=25, deadline=None, database=None, suppress_health_check=list(HealthCheck))


def drawn(strategy, n: int = 300) -> list:
    """``n`` examples of ``strategy``, the same ones every run."""
    out = []

    @settings(max_examples=n, deadline=None, database=None, derandomize=True, phases=[Phase.generate],
              suppress_health_check=list(HealthCheck))
    @given(strategy)
    def collect(msg):
        out.append(msg)
    collect()
    return out


def _floats(msg):
    """Every float leaf of a message (nested messages and sequences included)."""
    if hasattr(msg, "get_fields_and_field_types"):
        for name in msg.get_fields_and_field_types():
            yield from _floats(getattr(msg, name))
    elif isinstance(msg, float):
        yield msg
    elif hasattr(msg, "__len__") and not isinstance(msg, (str, bytes)):
        for v in msg:
            yield from _floats(v)


@pytest.mark.parametrize("cls", TYPES, ids=type_name)
def test_generated_messages_are_publishable(cls):
    @FAST
    @given(message_strategy(cls, lambda: NOW))
    def check(msg):
        assert isinstance(msg, cls)
        assert serialize_message(msg)
    check()


@pytest.mark.parametrize("cls", TYPES, ids=type_name)
def test_edge_cases_are_publishable_and_labelled_once(cls):
    cases = list(edge_cases(cls, lambda: NOW))
    labels = [c.label for c in cases]
    assert len(labels) == len(set(labels)), labels
    assert labels[0] == "empty"
    for case in cases:
        assert isinstance(case.message, cls), case.label
        assert serialize_message(case.message), case.label


def test_strategies_reach_non_finite_huge_and_control_characters():
    twists = drawn(message_strategy(Twist))
    assert any(math.isnan(m.linear.x) for m in twists)
    assert any(m.angular.z == math.inf for m in twists) and any(m.angular.z == -math.inf for m in twists)
    images = drawn(message_strategy(Image), 100)
    assert any(len(m.data) >= HUGE_LIST for m in images)
    assert any(0 < len(m.data) < 16 for m in images)
    texts = [m.text for m in drawn(message_strategy(InstructionEmbedding), 100)]
    assert any(any(ord(c) < 32 for c in t) for t in texts)
    assert any(len(t) >= 100_000 for t in texts)
    # float32 fields carry float32 values only, up to its largest (a wider one would not even be assignable).
    ranges = [m.range_max for m in drawn(message_strategy(LaserScan), 300) if math.isfinite(m.range_max)]
    assert max(abs(r) for r in ranges) <= 3.4028234663852886e38
    assert max(abs(r) for r in ranges) >= 1e38, sorted(abs(r) for r in ranges)[-5:]


def test_stamps_are_drawn_around_the_receivers_clock():
    stamps = [h.stamp.sec + h.stamp.nanosec * 1e-9 for h in drawn(message_strategy(Header, lambda: NOW))]
    assert NOW in stamps and NOW + 1e6 in stamps and NOW - 3600.0 in stamps
    assert any(abs(s - NOW) > 1e7 for s in stamps)  # raw stamps anywhere in the message's range


def test_edge_cases_cover_non_finite_values_and_flag_them_bad():
    cases = {c.label: c for c in edge_cases(Twist)}
    assert {"empty", "nan", "+inf", "-inf", "extremes", "huge"} <= set(cases)
    assert all(math.isnan(v) for v in _floats(cases["nan"].message))
    assert cases["nan"].bad and cases["+inf"].bad and not cases["empty"].bad
    assert "stamp_future_1e6s" not in cases  # Twist has no stamp


def test_image_edge_cases_break_size_encoding_and_length():
    cases = {c.label: c.message for c in edge_cases(Image, lambda: NOW)}
    one = cases["image_1x1"]
    assert (one.height, one.width, len(one.data)) == (1, 1, 3)
    short = cases["image_data_too_short"]
    assert len(short.data) < short.height * short.step
    assert cases["image_wrong_encoding"].encoding == "nonsense_encoding"
    assert cases["stamp_future_1e6s"].header.stamp.sec == int(NOW + 1e6)
    assert cases["control_characters"].encoding == CONTROL_TEXT


def test_joint_state_and_embedding_cases_disagree_with_themselves():
    joints = {c.label: c.message for c in edge_cases(JointState, lambda: NOW)}
    bad = joints["joints_lengths_disagree"]
    assert len(bad.name) != len(bad.position)
    embeddings = {c.label: c.message for c in edge_cases(InstructionEmbedding)}
    assert len(embeddings["embedding_383"].embedding) == 383


def test_to_time_clamps_and_keeps_nanoseconds():
    from builtin_interfaces.msg import Time
    assert (to_time(1.25, Time).sec, to_time(1.25, Time).nanosec) == (1, 250_000_000)
    assert to_time(1e300, Time).sec == 2 ** 31 - 1
    assert to_time(-1e300, Time).sec == -(2 ** 31)


def test_describe_is_short_and_names_the_values():
    msg = next(c.message for c in edge_cases(Image) if c.label == "huge")
    text = describe(msg, limit=200)
    assert len(text) <= 200 and text.startswith("Image(")
    assert f"<{HUGE_LIST} items" in describe(msg, limit=10_000)
    assert "nan" in describe(next(c.message for c in edge_cases(Twist) if c.label == "nan"))
