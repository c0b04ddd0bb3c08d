"""The live view in Rerun (rerun-sdk, no ROS): one recording served over gRPC, and Rerun's web viewer served from
the wheel, so a browser on the robot's network needs nothing installed and nothing from the internet.

Entity paths: ``camera/<name>`` (JPEG frames), ``command/proposed`` and ``command/sent`` (one series per field, one
plot), ``policy/latency`` (p50, p99), ``policy/status``, ``shield/state``, ``shield/rule/<rule>`` (how much each
rule changed the command), ``joints/position`` (one series per joint), ``manager/status``, ``episode/events`` (text logs). Time line ``time``: the stamps'
clock (simulated time under use_sim_time).
"""
from __future__ import annotations

import urllib.parse

import rerun as rr
import rerun.blueprint as rrb

APPLICATION_ID = "vla_web"
# Rerun batches logged rows and sends them every 200 ms by default: too late for a live camera. 50 ms keeps the
# viewer within the p99 goal of the view (150 ms) at 20 wake-ups a second.
FLUSH_TICK_S = 0.05
_WEB_VIEWER_PORTS: set[int] = set()  # Rerun's web viewer cannot be stopped: one per port and process


def blueprint(cameras: list[str]) -> rrb.Blueprint:
    return rrb.Blueprint(rrb.Horizontal(
        rrb.Vertical(*[rrb.Spatial2DView(origin=f"camera/{c}", name=c) for c in cameras]),
        rrb.Vertical(
            rrb.TimeSeriesView(origin="command", name="proposed vs sent command"),
            rrb.TimeSeriesView(origin="shield/rule", name="shield rules acting"),
            rrb.TimeSeriesView(origin="joints", name="joint positions"),
            rrb.TimeSeriesView(origin="policy/latency", name="policy inference latency (ms)"),
            rrb.TextLogView(origin="/", contents=["policy/status", "shield/state", "manager/status",
                                                    "episode/events"], name="status and events")),
        column_shares=[2, 3]))


def rule_path(rule: str) -> str:
    """A shield rule name ('zone.stop:front') as one entity path part."""
    return rr.escape_entity_path_part(rule)


class RerunView:
    """Logs to a Rerun gRPC server held in this process; ``viewer_url(host)`` opens Rerun's web viewer on it."""

    def __init__(self, cameras: list[str], grpc_port: int, web_port: int, memory_limit: str):
        batching = rr.ChunkBatcherConfig.DEFAULT()
        batching.flush_tick = FLUSH_TICK_S
        self.rec = rr.RecordingStream(APPLICATION_ID, batcher_config=batching)
        self.grpc_port, self.web_port = grpc_port, web_port
        self.grpc_uri = self.rec.serve_grpc(grpc_port=grpc_port, server_memory_limit=memory_limit,
                                            default_blueprint=blueprint(cameras))
        if web_port not in _WEB_VIEWER_PORTS:
            rr.serve_web_viewer(web_port=web_port, open_browser=False, connect_to=self.grpc_uri)
            _WEB_VIEWER_PORTS.add(web_port)
        self._last_text: dict[str, str] = {}
        self._series_names: dict[str, tuple[str, ...]] = {}

    def viewer_url(self, host: str = "127.0.0.1") -> str:
        data = f"rerun+http://{host}:{self.grpc_port}/proxy"
        return f"http://{host}:{self.web_port}/?url={urllib.parse.quote(data, safe='')}"

    def _at(self, t: float) -> None:
        self.rec.set_time("time", timestamp=t)

    def image(self, camera: str, t: float, jpeg: bytes) -> None:
        self._at(t)
        self.rec.log(f"camera/{camera}", rr.EncodedImage(contents=jpeg, media_type="image/jpeg"))

    def scalars(self, path: str, t: float, values: dict[str, float]) -> None:
        """One entity per value, ``path/<name>`` (for sets that change from message to message, like rules)."""
        self._at(t)
        for name, value in values.items():
            self.rec.log(f"{path}/{name}", rr.Scalars(float(value)))

    def series(self, path: str, t: float, names: tuple[str, ...], values) -> None:
        """A fixed set of values as one entity, one log call (a command, joint positions): the series are named
        once, statically, and again whenever the names change."""
        if self._series_names.get(path) != names:
            self._series_names[path] = names
            self.rec.log(path, rr.SeriesLines(names=list(names)), static=True)
        self._at(t)
        self.rec.log(path, rr.Scalars([float(v) for v in values]))

    def text(self, path: str, t: float, text: str, level: str = "INFO", only_changes: bool = True) -> None:
        """A line on ``path``; with ``only_changes`` the same text twice in a row is logged once."""
        if only_changes and self._last_text.get(path) == text:
            return
        self._last_text[path] = text
        self._at(t)
        self.rec.log(path, rr.TextLog(text, level=level))

    def flush(self, timeout_s: float = 1.0) -> None:
        self.rec.flush(timeout_sec=timeout_s)

    def close(self) -> None:
        self.rec.disconnect()
