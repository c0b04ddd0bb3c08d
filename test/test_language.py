"""The language node across processes: a latched instruction -> a latched embedding that a late subscriber
gets, equal to the in-process encoder's; bad text rejected with an empty embedding; the cache."""
from __future__ import annotations

import time
from pathlib import Path

import numpy as np
import pytest
from diagnostic_msgs.msg import DiagnosticArray, DiagnosticStatus
from std_msgs.msg import String

from vla_core.text import EMBEDDING_TOLERANCE
from vla_interfaces.msg import InstructionEmbedding
from vla_language.encoder import BUNDLED_ID, InstructionEncoder
from vla_ros import node_qos

WS = Path(__file__).resolve().parents[1]

pytestmark = pytest.mark.ros


def language_profile(one_node_profile) -> list[str]:
    profile = one_node_profile("language", "vla_language", WS / "params" / "language.yaml",
                               "the language node alone, fed by the test")
    return [str(profile), "--quiet", "--set", "language.diagnostics_period=0.2"]


def language_values(diags):
    for _, array in reversed(list(diags)):
        for status in array.status:
            if status.name == "language: instruction encoder":
                return status, {kv.key: kv.value for kv in status.values}
    return None, {}


def test_latched_embedding_late_subscriber_rejection_and_cache(probe, vla, one_node_profile):
    text = "push the red cube onto the purple square"
    # The in-process reference; it also makes the one-time ONNX export (cached by weights hash) that the
    # node then loads, so the node's configure never waits on an export here.
    reference = InstructionEncoder(runtime="onnx").encode(text)[1]
    instruction = probe.node.create_publisher(String, "/instruction", node_qos.LATCHED)
    instruction.publish(String(data=text))  # latched before the node exists, as the robot does
    diags = probe.collect(DiagnosticArray, "/diagnostics", 10)
    up = vla("up", *language_profile(one_node_profile))
    up.wait_line("all 1 nodes active", 120)
    probe.wait_for(lambda: language_values(diags)[1].get("embedded") == "1", 15, "the first embedding")

    # A subscriber that joins after the embedding was published still gets it (transient local).
    late = probe.collect(InstructionEmbedding, "/instruction/embedding", node_qos.LATCHED)
    probe.wait_for(lambda: late, 10, "the latched embedding for a late subscriber")
    msg = late[-1][1]
    assert msg.text == text and msg.encoder_id == BUNDLED_ID and len(msg.embedding) == 384
    assert np.abs(np.asarray(msg.embedding, np.float32) - reference).max() <= EMBEDDING_TOLERANCE

    # Empty text: rejected, counted, and an EMPTY embedding is latched so no policy acts on the old one.
    instruction.publish(String(data="   "))
    probe.wait_for(lambda: len(late) >= 2, 10, "the rejection")
    assert late[-1][1].text == "   " and len(late[-1][1].embedding) == 0
    probe.wait_for(lambda: language_values(diags)[1].get("rejected") == "1", 10, "the rejection in diagnostics")
    status, values = language_values(diags)
    assert status.level == DiagnosticStatus.WARN and "empty" in status.message

    # The same instruction again comes from the cache, and the status is OK again.
    instruction.publish(String(data=text))
    probe.wait_for(lambda: len(late) >= 3, 10, "the repeated instruction")
    assert list(late[-1][1].embedding) == list(msg.embedding)
    probe.wait_for(lambda: language_values(diags)[1].get("cache_hits") == "1", 10, "a cache hit")
    time.sleep(0.5)
    assert language_values(diags)[0].level == DiagnosticStatus.OK
    up.interrupt()
    assert up.wait(30) == 0
