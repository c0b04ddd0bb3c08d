"""Language lifecycle node: instruction text -> latched sentence embedding.

Subscribes: instruction (std_msgs/String, latched: the robot publishes it at every episode start).
Publishes: instruction/embedding (vla_interfaces/InstructionEmbedding, latched, so a policy that starts late
gets the current one), /diagnostics.

The encoder is loaded in configure. An instruction that arrives while INACTIVE is kept and embedded on
activate. An empty, overlong or invalid instruction is rejected: a warning names it and the fix, it is
counted, and an InstructionEmbedding with that text and an EMPTY embedding is latched, so that no policy
keeps acting on the previous instruction (an empty embedding means: no valid instruction, do not act).
"""
from __future__ import annotations

import time

from diagnostic_msgs.msg import DiagnosticArray, DiagnosticStatus, KeyValue
from std_msgs.msg import String

from vla_core.text import InstructionError
from vla_interfaces.msg import InstructionEmbedding
from vla_language.encoder import InstructionEncoder
from vla_language.language_params import LANGUAGE_PARAMS
from vla_ros import node_qos
from vla_ros.node_base import ManagedNode, main_for


class LanguageNode(ManagedNode):
    PARAMS = LANGUAGE_PARAMS

    def __init__(self, **kwargs):
        super().__init__("language", **kwargs)
        self.encoder = None
        self._pubs: dict = {}
        self._sub = None
        self._pending: str | None = None

    def configure(self, p: dict) -> None:
        t0 = time.perf_counter()
        self.encoder = InstructionEncoder(model_path=p["model_path"], runtime=p["runtime"],
                                          encoder_id=p["encoder_id"], cache_dir=p["onnx_cache_dir"],
                                          cache_size=p["cache_size"], max_chars=p["max_instruction_chars"],
                                          threads=p["threads"])
        self.load_s = time.perf_counter() - t0
        lp = self.create_lifecycle_publisher
        self._pubs = {"embedding": lp(InstructionEmbedding, "instruction/embedding", node_qos.LATCHED),
                      "diagnostics": lp(DiagnosticArray, "/diagnostics", 10)}
        self._sub = self.create_subscription(String, "instruction", self._on_instruction, node_qos.LATCHED)
        self.counts = {"received": 0, "embedded": 0, "rejected": 0}
        self.last = {"text": "", "latency_ms": 0.0, "rejection": ""}
        self.current_rejected = False
        self.get_logger().info(f"encoder {self.encoder.encoder_id} ({self.encoder.runtime}, {self.encoder.dim}-d) "
                               f"from {self.encoder.model_path} in {self.load_s:.1f} s")

    def on_parameters_changed(self, changed: dict) -> None:
        """cache_size and max_instruction_chars apply from the next instruction (a smaller cache is trimmed at
        its next insertion)."""
        self.encoder.cache_size = self.params["cache_size"]
        self.encoder.max_chars = self.params["max_instruction_chars"]

    def activate(self) -> None:
        self.start_diagnostics()
        if self._pending is not None:
            text, self._pending = self._pending, None
            self._embed(text)

    def deactivate(self) -> None:
        self.stop_diagnostics()

    def cleanup(self) -> None:
        for pub in self._pubs.values():
            self.destroy_publisher(pub)
        if self._sub is not None:
            self.destroy_subscription(self._sub)
        self._pubs, self._sub, self.encoder, self._pending = {}, None, None, None

    def _on_instruction(self, msg: String) -> None:
        self.counts["received"] += 1
        if not self.is_active:
            self._pending = msg.data  # embedded on activate: the latched instruction arrives early
            return
        self._embed(msg.data)

    def _embed(self, text: str) -> None:
        out = InstructionEmbedding(encoder_id=self.encoder.encoder_id)
        out.header.stamp = self.get_clock().now().to_msg()
        t0 = time.perf_counter()
        try:
            out.text, vec, cached = self.encoder.encode(text)
        except InstructionError as exc:
            self.counts["rejected"] += 1
            self.last["rejection"] = str(exc)
            self.current_rejected = True
            self.get_logger().warning(f"instruction rejected: {exc}", throttle_duration_sec=1.0)
            out.text = text[: self.params["max_instruction_chars"]]
            self._pubs["embedding"].publish(out)  # empty embedding: no valid instruction, do not act
            return
        self.last["latency_ms"] = (time.perf_counter() - t0) * 1e3
        self.last["text"] = out.text
        self.current_rejected = False
        out.embedding = vec.tolist()
        self.counts["embedded"] += 1
        self._pubs["embedding"].publish(out)
        self.get_logger().info(f"embedded {out.text!r} in {self.last['latency_ms']:.1f} ms"
                               f"{' (cached)' if cached else ''}")

    def _publish_diagnostics(self) -> None:
        e = self.encoder
        values = {**self.counts, "cache_hits": e.hits, "cache_misses": e.misses, "encoder_id": e.encoder_id,
                  "runtime": e.runtime, "dim": e.dim, "load_s": f"{self.load_s:.2f}",
                  "last_latency_ms": f"{self.last['latency_ms']:.2f}", "instruction": self.last["text"],
                  "last_rejection": self.last["rejection"]}
        status = DiagnosticStatus(
            level=DiagnosticStatus.WARN if self.current_rejected else DiagnosticStatus.OK,
            name=f"{self.get_name()}: instruction encoder", hardware_id=e.encoder_id,
            message=(f"current instruction rejected: {self.last['rejection']}" if self.current_rejected
                     else f"running; {self.counts['rejected']} instructions rejected so far"),
            values=[KeyValue(key=k, value=str(v)) for k, v in values.items()])
        array = DiagnosticArray(status=[status])
        array.header.stamp = self.get_clock().now().to_msg()
        self._pubs["diagnostics"].publish(array)


main = main_for(LanguageNode)
