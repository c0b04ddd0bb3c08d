"""web_view lifecycle node: watch and steer the robot from a browser.

Subscribes: the camera topics (``cameras``, sensor_msgs/Image, best effort: a slow viewer costs the robot no
retransmissions), the proposed and sent commands (``proposed_topic``, ``sent_topic``), ``<shield>/state``,
``policy_status_topic``, ``<manager>/status``, ``episode/events`` and ``instruction``.
Calls: ``<shield>/estop`` and ``<shield>/reset`` (std_srvs/Trigger), ``<recorder>/save`` and ``<recorder>/discard``
(Trigger), ``<recorder>/mark`` (vla_interfaces/MarkEpisode), ``<policy>/load_policy`` (vla_interfaces/LoadPolicy)
and ``<policy>/rollback`` (Trigger): the services ``vla record``, ``vla deploy`` and the tests use.
Publishes: /diagnostics (``web_view: operator page``).

Configure checks where the page may listen (:func:`vla_web.auth.check_bind`), makes the token (printed once),
binds the page's port and starts the Rerun servers; activate starts answering requests, deactivate stops (an
inactive node changes nothing on the robot). Frames are throttled before any decoding, downscaled and JPEG-encoded
once for both views (:mod:`vla_web.frames`). Everything else lives in modules without rclpy.
"""
from __future__ import annotations

import threading
import time

from diagnostic_msgs.msg import DiagnosticArray, DiagnosticStatus, KeyValue
from geometry_msgs.msg import Twist
from rclpy.executors import SingleThreadedExecutor
from rclpy.node import Node
from sensor_msgs.msg import Image, JointState
from std_msgs.msg import Bool, Float64MultiArray, String
from std_srvs.srv import Trigger

from vla_core.errors import ConfigError
from vla_core.paths import workspace_path
from vla_interfaces.msg import EpisodeEvent, ManagerStatus, PolicyStatus, ShieldState
from vla_interfaces.srv import LoadPolicy, MarkEpisode
from vla_ros import node_qos
from vla_ros.convert import time_to_seconds
from vla_ros.node_base import STATE_LABELS, ManagedNode, main_for
from vla_ros.spinning import SpinThread
from vla_web.auth import check_bind, new_token
from vla_web.episode_library import EpisodeLibrary
from vla_web.frames import FrameThrottle, downscale, image_to_rgb, parse_image_cdr, to_jpeg
from vla_web.server import OperatorServer
from vla_web.view_state import ViewState, status_line
from vla_web.web_params import WEB_VIEW_PARAMS

EVENT_NAMES = {EpisodeEvent.START: "start", EpisodeEvent.SUCCESS: "success", EpisodeEvent.TIMEOUT: "timeout",
               EpisodeEvent.ABORTED: "aborted"}
TWIST_FIELDS = ("vx", "vy", "vz", "wx", "wy", "wz")


def camera_name(topic: str) -> str:
    """'/camera/top/image_raw' -> 'camera_top': a short name for the viewer."""
    parts = [p for p in topic.strip("/").split("/") if p not in ("image_raw", "image", "")]
    return "_".join(parts) or "camera"


def twist_values(msg: Twist) -> list[float]:
    return [msg.linear.x, msg.linear.y, msg.linear.z, msg.angular.x, msg.angular.y, msg.angular.z]


class WebViewNode(ManagedNode):
    PARAMS = WEB_VIEW_PARAMS

    def __init__(self, **kwargs):
        super().__init__("web_view", **kwargs)
        self.state: ViewState | None = None
        self.server: OperatorServer | None = None
        self.view = None
        self._subs: list = []
        self._services_used: dict = {}
        self._pubs: dict = {}
        self._throttles: list[FrameThrottle] = []
        self._names: list[str] = []
        self._camera_node = self._camera_executor = self._camera_spinner = None

    # ---- lifecycle ---------------------------------------------------------------------------------
    def configure(self, p: dict) -> None:
        check_bind(p["bind"], p["token"])
        if not p["cameras"]:
            raise ConfigError("cameras is empty; name at least one sensor_msgs/Image topic")
        self.token = p["token"] or new_token()
        self.state = ViewState(p["cameras"], p["history_s"])
        self._names = [camera_name(t) for t in p["cameras"]]
        self._throttles = [FrameThrottle(p["camera_rate"]) for _ in p["cameras"]]
        self.server = OperatorServer(self.state, self._act, self._now, self.token, p["bind"], p["port"],
                                     log=self.get_logger().info)
        if p["rerun"]:
            from vla_web.rerun_view import RerunView  # rerun starts threads at import: only when asked for
            try:
                self.view = RerunView(self._names, p["rerun_grpc_port"], p["rerun_web_port"],
                                      p["rerun_memory_limit"])
            except Exception as exc:  # noqa: BLE001 - a port in use, a bad memory limit: say which
                raise ConfigError(f"the Rerun view could not start (rerun_grpc_port {p['rerun_grpc_port']}, "
                                  f"rerun_web_port {p['rerun_web_port']}, rerun_memory_limit "
                                  f"{p['rerun_memory_limit']!r}): {exc}; change them or set rerun:=false") from exc
        self._start_cameras(p["cameras"])
        sub = self.create_subscription
        command_type = Twist if p["command_type"] == "twist" else Float64MultiArray
        self._subs += [
            sub(command_type, p["proposed_topic"], lambda m: self._on_command("proposed", m), node_qos.SENSOR_SUB),
            sub(command_type, p["sent_topic"], lambda m: self._on_command("sent", m), node_qos.SENSOR_SUB),
            sub(ShieldState, f"{p['shield']}/state", self._on_shield, 10),
            sub(PolicyStatus, p["policy_status_topic"], self._on_policy, 10),
            sub(ManagerStatus, f"{p['manager']}/status", self._on_manager, node_qos.LATCHED),
            sub(EpisodeEvent, "episode/events", self._on_episode, node_qos.EVENTS),
            sub(String, "instruction", self._on_instruction, node_qos.LATCHED),
        ]
        if p["joint_states_topic"]:
            self._joint_throttle = FrameThrottle(p["joint_states_rate"])
            self._subs.append(sub(JointState, p["joint_states_topic"], self._on_joint_states, node_qos.SENSOR_SUB))
        cl = self.create_client
        self._services_used = {"estop": cl(Trigger, f"{p['shield']}/estop"),
                               "reset": cl(Trigger, f"{p['shield']}/reset"),
                               "save": cl(Trigger, f"{p['recorder']}/save"),
                               "discard": cl(Trigger, f"{p['recorder']}/discard"),
                               "mark": cl(MarkEpisode, f"{p['recorder']}/mark"),
                               "deploy": cl(LoadPolicy, f"{p['policy']}/load_policy"),
                               "rollback": cl(Trigger, f"{p['policy']}/rollback")}
        lp = self.create_lifecycle_publisher
        self._pubs = {"estop": lp(Bool, "safety/estop", 10), "diagnostics": lp(DiagnosticArray, "/diagnostics", 10)}
        if p["datasets"]:
            self.server.library = EpisodeLibrary([workspace_path(d) for d in p["datasets"]],
                                                 self.view.grpc_uri if self.view is not None else None)
        bind, port = self.server.address
        if self.view is not None:
            self.server.extra["viewer"] = self.view.viewer_url("127.0.0.1" if bind in ("127.0.0.1", "0.0.0.0")
                                                               else bind)
        self.get_logger().info(f"operator page {self.server.url()} (the token is required on every request)"
                               + (f"; Rerun viewer {self.server.extra['viewer']}" if self.view else ""))
        if self.view is not None:
            # rerun-sdk 0.41 has no bind setting: its viewer and data stream listen on every interface, without a
            # token. They only show (cameras included), never command; say so where the operator reads the address.
            self.get_logger().warning("the Rerun viewer and its data stream (cameras included) listen on every "
                                      "network interface without a token; set web_view.rerun:=false or firewall "
                                      "their ports where the cameras must not be seen from the network")

    def _start_cameras(self, topics: list[str]) -> None:
        """Cameras arrive on a node of their own with its own executor thread: at 2 x 30 Hz they are most of the
        view's messages, and rclpy's executor costs per message grow with the entities it waits on (this node's
        lifecycle, parameter and heartbeat entities); a node with only the camera subscriptions keeps that small.
        Raw: a frame the throttle skips is never read, and one it lets through is read from its CDR bytes
        (vla_web.frames.parse_image_cdr) without building a message (a VGA frame is ~1 MB of Python work)."""
        self._camera_node = Node(f"{self.get_name()}_cameras", namespace=self.get_namespace(), context=self.context,
                                 start_parameter_services=False, use_global_arguments=False, enable_rosout=False)
        for i, topic in enumerate(topics):
            self._camera_node.create_subscription(
                Image, topic, self.guard(lambda m, i=i: self._on_image(i, m), f"subscription {topic}"),
                node_qos.SENSOR_SUB, raw=True)
        self._camera_executor = SingleThreadedExecutor(context=self.context)
        self._camera_executor.add_node(self._camera_node)
        self._camera_spinner = SpinThread(self._camera_executor, "cameras").start()

    def _stop_cameras(self) -> None:
        if self._camera_spinner is not None and self._camera_spinner.stop():
            self._camera_node.destroy_node()
        self._camera_executor = self._camera_node = self._camera_spinner = None

    def activate(self) -> None:
        self.server.start()
        self.start_diagnostics()

    def deactivate(self) -> None:
        self.stop_diagnostics()
        if self.server is not None:
            self.server.stop()

    def cleanup(self) -> None:
        self._stop_cameras()
        if self.server is not None:
            self.server.close()
        if self.view is not None:
            self.view.close()
        for s in self._subs:
            self.destroy_subscription(s)
        for c in self._services_used.values():
            self.destroy_client(c)
        for pub in self._pubs.values():
            self.destroy_publisher(pub)
        self.server, self.view, self.state, self._subs, self._services_used, self._pubs = None, None, None, [], {}, {}

    # ---- inputs ------------------------------------------------------------------------------------
    def _now(self) -> float:
        return self.get_clock().now().nanoseconds * 1e-9

    def _on_image(self, i: int, raw: bytes) -> None:
        if self.state is None or not self._throttles[i].accept(time.monotonic()):
            return
        encoding = "?"
        try:
            msg = parse_image_cdr(raw)  # no message object: a frame is read where DDS left it
            encoding = msg.encoding
            rgb = image_to_rgb(msg.encoding, msg.height, msg.width, msg.step, msg.data)
        except ValueError as exc:
            self.state.drop(f"camera {i} ({encoding})")
            self.throttled_warning(("image", i), f"{self.params['cameras'][i]}: frame not shown: {exc}")
            return
        small = downscale(rgb, self.params["camera_width"])
        jpeg = to_jpeg(small, self.params["jpeg_quality"])
        stamp = msg.sec + msg.nanosec * 1e-9
        self.state.put_frame(i, stamp, jpeg, small.shape[1], small.shape[0])
        if self.view is not None:
            self.view.image(self._names[i], stamp, jpeg)
        self.state.latency["delivered"].add((self._now() - stamp) * 1e3)

    def _on_command(self, kind: str, msg) -> None:
        t = self._now()
        if isinstance(msg, Twist):
            values = twist_values(msg)
            names = TWIST_FIELDS
        else:
            values = list(msg.data)
            names = tuple(f"j{k}" for k in range(len(values)))
        self.state.put_command(kind, t, values)
        if self.view is not None:
            self.view.series(f"command/{kind}", t, names, values)

    def _on_joint_states(self, msg: JointState) -> None:
        if self.view is None or not self._joint_throttle.accept(time.monotonic()):
            return
        self.view.series("joints/position", time_to_seconds(msg.header.stamp), tuple(msg.name), msg.position)

    def _on_shield(self, msg: ShieldState) -> None:
        rules = list(msg.rules)
        self.state.put("shield", {"active_source": msg.active_source, "estop": msg.estop, "takeover": msg.takeover,
                                  "rules": rules, "estops": msg.estops, "rejected": msg.rejected})
        if self.view is not None:
            t = time_to_seconds(msg.header.stamp)
            from vla_web.rerun_view import rule_path  # noqa: PLC0415 - only with rerun on
            self.view.scalars("shield/rule", t, {rule_path(r): a for r, a in zip(rules, msg.amounts)})
            self.view.text("shield/state", t, f"source {msg.active_source}" + (" E-STOP" if msg.estop else "")
                           + (" takeover" if msg.takeover else "") + f"; rules: {', '.join(rules) or 'none'}",
                           level="ERROR" if msg.estop else ("WARN" if rules else "INFO"))

    def _on_policy(self, msg: PolicyStatus) -> None:
        values = {"policy": msg.policy, "version": msg.version, "engine": msg.engine, "proposing": msg.proposing,
                  "stale_inputs": list(msg.stale_inputs), "latency_p99_ms": msg.latency_p99_ms,
                  "last_event": msg.last_event}
        self.state.put("policy", values)
        if self.view is not None:
            t = time_to_seconds(msg.header.stamp)
            self.view.series("policy/latency", t, ("p50_ms", "p99_ms"), (msg.latency_p50_ms, msg.latency_p99_ms))
            served = f"{msg.policy}/{msg.version} on {msg.engine}" if msg.policy else "no policy deployed"
            stale = f"; stale: {', '.join(msg.stale_inputs)}" if msg.stale_inputs else ""
            self.view.text("policy/status", t, f"{served}; {'proposing' if msg.proposing else 'not proposing'}"
                           f"{stale}; {msg.last_event}", level="INFO" if msg.proposing else "WARN")

    def _on_manager(self, msg: ManagerStatus) -> None:
        nodes = {n.node: STATE_LABELS.get(n.state, str(n.state)) + ("" if n.alive else " (lost)") for n in msg.nodes}
        self.state.put("manager", {"phase": msg.phase, "active": msg.active, "reason": msg.reason, "nodes": nodes})
        if self.view is not None:
            text = f"{msg.phase}{': ' + msg.reason if msg.reason else ''}; " + ", ".join(
                f"{k} {v}" for k, v in nodes.items())
            self.view.text("manager/status", self._now(), text,
                           level="ERROR" if msg.phase in ("failed", "safe_stop") else "INFO")

    def _on_episode(self, msg: EpisodeEvent) -> None:
        event = EVENT_NAMES.get(msg.event, str(msg.event))
        self.state.put("episode", {"index": msg.episode_index, "event": event, "seed": msg.seed,
                                   "instruction": msg.instruction})
        line = f"episode {msg.episode_index} {event} (seed {msg.seed}, {msg.steps} steps): {msg.instruction}"
        self.state.add_event(line)
        if self.view is not None:
            self.view.text("episode/events", time_to_seconds(msg.header.stamp), line,
                           level="WARN" if msg.event in (EpisodeEvent.TIMEOUT, EpisodeEvent.ABORTED) else "INFO",
                           only_changes=False)

    def _on_instruction(self, msg: String) -> None:
        self.state.put("episode", {"instruction": msg.data})

    # ---- the buttons (HTTP threads) -----------------------------------------------------------------
    def _act(self, name: str, args: dict) -> tuple[bool, str]:
        timeout = self.params["service_timeout"]
        if name == "deploy":
            client, request = self._services_used["deploy"], LoadPolicy.Request(artifact=args["artifact"].strip())
            timeout = self.params["deploy_timeout"]
        elif name.startswith("mark_"):
            client, request = self._services_used["mark"], MarkEpisode.Request(
                mark=MarkEpisode.Request.SUCCESS if name == "mark_success" else MarkEpisode.Request.FAILURE)
        else:
            client, request = self._services_used[name], Trigger.Request()
        if name == "estop":
            return self._estop(client, timeout)
        if not client.service_is_ready():
            return False, f"no {client.srv_name} service: is that node running in this profile?"
        answer = self._call(client, request, timeout)
        if answer is None:
            return False, f"{client.srv_name} did not answer within {timeout:g} s"
        return bool(answer.success), answer.message

    @staticmethod
    def _call(client, request, timeout: float):
        """The service's answer, or None when it did not answer within ``timeout`` s."""
        done = threading.Event()
        future = client.call_async(request)
        future.add_done_callback(lambda _: done.set())
        if not done.wait(timeout):
            future.cancel()
            return None
        return future.result()

    def _estop(self, client, timeout: float) -> tuple[bool, str]:
        """E-stop through the shield's service; where it is not (yet) discovered or does not answer, through
        safety/estop, which the shield also latches on. Done only when confirmed: by the service's answer, or by the
        shield's own state reporting E-STOP. A node that has not discovered the shield yet (a graph just started on a
        loaded machine) waits for it within ``timeout``; an e-stop nobody received is never reported as done."""
        deadline = time.monotonic() + timeout
        if client.service_is_ready() or client.wait_for_service(timeout_sec=min(1.0, timeout)):
            answer = self._call(client, Trigger.Request(), max(0.1, deadline - time.monotonic()))
            if answer is not None and answer.success:
                return True, answer.message
        pub = self._pubs["estop"]
        while pub.get_subscription_count() == 0 and time.monotonic() < deadline:
            time.sleep(0.05)
        pub.publish(Bool(data=True))
        how = f"no answer from {client.srv_name}; e-stop sent on safety/estop"
        while time.monotonic() < deadline + 1.0:
            if self.state is not None and self.state.snapshot()["shield"].get("estop"):
                return True, f"{how}; the shield reports E-STOP"
            time.sleep(0.05)
        return False, (f"E-STOP NOT CONFIRMED: {how} ({pub.get_subscription_count()} subscriber(s)) and the "
                       f"shield's state does not show it; use the robot's hardware e-stop")

    def _publish_diagnostics(self) -> None:
        snap = self.state.snapshot()
        srv = self.server
        values = {"url": f"http://{srv.address[0]}:{srv.address[1]}/", **{f"requests_{k}": v for k, v in
                                                                          srv.requests.items()},
                  **{f"frames {c['topic']}": c["frames"] for c in snap["cameras"]},
                  **{f"latency_{k}_p99_ms": v.get("p99_ms", "") for k, v in snap["latency"].items()},
                  **{f"dropped {k}": v for k, v in snap["dropped"].items()},
                  "rerun": self.server.extra.get("viewer", "off"), "status": status_line(snap)}
        status = DiagnosticStatus(
            level=DiagnosticStatus.WARN if snap["dropped"] else DiagnosticStatus.OK,
            name=f"{self.get_name()}: operator page", hardware_id=values["url"],
            message=f"serving; {srv.requests['unauthorized']} requests refused for want of the token",
            values=[KeyValue(key=k, value=str(v)) for k, v in values.items()])
        array = DiagnosticArray(status=[status])
        array.header.stamp = self.get_clock().now().to_msg()
        self._pubs["diagnostics"].publish(array)


main = main_for(WebViewNode)
