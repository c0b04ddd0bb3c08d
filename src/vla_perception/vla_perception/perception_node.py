"""Perception lifecycle node: contract cameras -> model-ready images, camera health, debug overlay.

Subscribes, per contract camera: <camera topic> (sensor_msgs/Image) or, with transport 'compressed',
<camera topic>/compressed (sensor_msgs/CompressedImage); policy/status (vla_interfaces/PolicyStatus) and
policy/cmd_vel (geometry_msgs/Twist) for the overlay.
Publishes: <output_prefix>/<camera> (sensor_msgs/Image: rgb8 at the contract size, or 32FC1 metres for
depth cameras; the SOURCE header, stamp and frame_id, is kept), ~/overlay (sensor_msgs/Image rgb8, only
while someone subscribes), observation/features/<camera> (vla_interfaces/FeatureVector, with the
``features`` parameter: a frozen EfficientNet-Lite0's pooled features of the model-ready image),
/diagnostics (one status per camera: rate, age, missed and dropped frames).

Every conversion is vla_core.image's, the function the recorder and the trainer use. A frame that cannot be
converted (unknown encoding, wrong buffer size, corrupt compressed data, colour on a depth camera) is
dropped, counted per reason and reported with a throttled warning that names the value and the fix; so is a
frame stamped more than ``max_future_stamp`` ahead of the node clock (it would look fresh to every consumer).
Camera health is judged on arrivals (steady clock), so a stamp cannot silence the stale-camera alarm. The
overlay draws only what it can: a command out of range is drawn at full length, a non-finite one not at all.
INACTIVE: frames are ignored and nothing is published.
"""
from __future__ import annotations

import time
from functools import partial

import cv2
import numpy as np
from diagnostic_msgs.msg import DiagnosticArray, DiagnosticStatus, KeyValue
from geometry_msgs.msg import Twist
from sensor_msgs.msg import CompressedImage, Image

from vla_core.contract import RobotContract
from vla_core.paths import workspace_path
from vla_core.errors import ConfigError
from vla_core.image import ImageError
from vla_interfaces.msg import FeatureVector, PolicyStatus
from vla_perception.health import CameraHealth
from vla_perception.overlay import draw_overlay, status_lines
from vla_perception.perception_params import PERCEPTION_PARAMS
from vla_perception.pipeline import CameraPipeline, bridge_in_use
from vla_ros import node_qos
from vla_ros.convert import time_to_seconds
from vla_ros.node_base import ManagedNode, main_for


def array_to_image(array: np.ndarray, encoding: str, header) -> Image:
    """Model-ready array (rgb8 (H, W, 3) uint8 or 32FC1 (H, W) float32) -> Image with the source header."""
    h, w = array.shape[:2]
    msg = Image(height=h, width=w, encoding=encoding, is_bigendian=0, step=w * array.itemsize *
                (array.shape[2] if array.ndim == 3 else 1), data=array.tobytes())
    msg.header = header
    return msg


class PerceptionNode(ManagedNode):
    PARAMS = PERCEPTION_PARAMS

    def __init__(self, **kwargs):
        super().__init__("perception", **kwargs)
        self.pipelines: dict[str, CameraPipeline] = {}
        self.health: dict[str, CameraHealth] = {}
        self._pubs: dict = {}
        self._subs: list = []
        self.features = None

    def configure(self, p: dict) -> None:
        contract = RobotContract.from_yaml(workspace_path(p["contract"]))
        if not contract.cameras:
            raise ConfigError(f"contract {p['contract']} declares no cameras; add one under 'cameras:'")
        self.contract = contract
        names = [c.name for c in contract.cameras]
        self.overlay_camera = p["overlay_camera"] or names[0]
        if self.overlay_camera not in names:
            raise ConfigError(f"overlay_camera '{self.overlay_camera}' is not a contract camera; use one of {names}")
        lp = self.create_lifecycle_publisher
        for cam in contract.cameras:
            self.pipelines[cam.name] = CameraPipeline(cam, p["depth_scale"])
            self.health[cam.name] = CameraHealth(cam.name, contract.fps, p["stale_after"],
                                                 max_future=p["max_future_stamp"])
            self._pubs[cam.name] = lp(Image, f"{p['output_prefix']}/{cam.name}", node_qos.SENSOR_PUB)
            if p["transport"] == "compressed":
                self._subs.append(self.create_subscription(CompressedImage, f"{cam.topic}/compressed",
                                                           partial(self._on_compressed, cam.name),
                                                           node_qos.SENSOR_PUB))
            else:
                self._subs.append(self.create_subscription(Image, cam.topic, partial(self._on_image, cam.name),
                                                           node_qos.SENSOR_PUB))
        self._pubs["diagnostics"] = lp(DiagnosticArray, "/diagnostics", 10)
        self.features = None
        if p["features"]:
            from vla_perception.features import ImageFeatures  # torch: only when features are asked for
            self.features = ImageFeatures(p["features"])
            for cam in contract.cameras:
                if not self.pipelines[cam.name].is_depth:
                    self._pubs[f"features/{cam.name}"] = lp(FeatureVector, f"observation/features/{cam.name}",
                                                            node_qos.SENSOR_PUB)
        if p["overlay"]:
            self._pubs["overlay"] = lp(Image, "~/overlay", node_qos.SENSOR_PUB)
            self._subs.append(self.create_subscription(PolicyStatus, "policy/status", self._on_status, 10))
            self._subs.append(self.create_subscription(Twist, "policy/cmd_vel", self._on_cmd, node_qos.COMMAND))
        self.max_speed = max(abs(v) for v in contract.action.low + contract.action.high)
        self.overlay_errors = 0
        self._reset_proposal()
        self.get_logger().info(f"{len(self.pipelines)} cameras of {contract.robot} ({', '.join(names)}), "
                               f"{p['transport']} transport, images read by {bridge_in_use()}")

    def on_parameters_changed(self, changed: dict) -> None:
        """stale_after and max_future_stamp apply to every camera's health from the next frame; the overlay's
        parameters and proposal_timeout are read where used."""
        for health in self.health.values():
            health.stale_after = self.params["stale_after"]
            health.max_future = self.params["max_future_stamp"]

    def activate(self) -> None:
        self._reset_proposal()  # no stale proposal survives a re-activation
        self.start_diagnostics()

    def deactivate(self) -> None:
        self.stop_diagnostics()

    def cleanup(self) -> None:
        for pub in self._pubs.values():
            self.destroy_publisher(pub)
        for sub in self._subs:
            self.destroy_subscription(sub)
        self._pubs, self._subs, self.pipelines, self.health, self.features = {}, [], {}, {}, None

    # ---- frames --------------------------------------------------------------------------------
    def _on_image(self, camera: str, msg: Image) -> None:
        if self.is_active:
            self._process(camera, msg, self.pipelines[camera].from_image)

    def _on_compressed(self, camera: str, msg: CompressedImage) -> None:
        if self.is_active:
            self._process(camera, msg, self.pipelines[camera].from_compressed)

    def _process(self, camera: str, msg, convert) -> None:
        health = self.health[camera]
        stamp, now = time_to_seconds(msg.header.stamp), self.get_clock().now().nanoseconds * 1e-9
        problem = health.admit(stamp, now)
        if problem:
            self.get_logger().warning(f"camera '{camera}': frame dropped: {problem}", throttle_duration_sec=2.0)
            return
        try:
            array = convert(msg)
        except ImageError as exc:
            reason = "encoding" if "encoding" in str(exc) else "data"
            health.drop(reason, str(exc))
            self.get_logger().warning(f"camera '{camera}': frame dropped: {exc}", throttle_duration_sec=2.0)
            return
        pipeline = self.pipelines[camera]
        if not msg.header.frame_id:
            msg.header.frame_id = pipeline.camera.frame_id
        out = array_to_image(array, pipeline.out_encoding, msg.header)
        self._pubs[camera].publish(out)
        if self.features is not None and not pipeline.is_depth:
            vector = FeatureVector(header=msg.header, encoder_id=self.features.encoder_id,
                                   data=self.features(array).tolist())
            self._pubs[f"features/{camera}"].publish(vector)
        health.frame(stamp, time.monotonic(), now)
        if camera == self.overlay_camera and "overlay" in self._pubs:
            self._maybe_overlay(array, msg.header)

    # ---- overlay -------------------------------------------------------------------------------
    def _reset_proposal(self) -> None:
        self._status, self._status_t, self._cmd, self._cmd_t, self._overlay_t = None, -1e9, None, -1e9, -1e9

    def _on_status(self, msg: PolicyStatus) -> None:
        self._status, self._status_t = msg, time.monotonic()

    def _on_cmd(self, msg: Twist) -> None:
        self._cmd, self._cmd_t = (msg.linear.x, msg.linear.y), time.monotonic()

    def _maybe_overlay(self, array: np.ndarray, header) -> None:
        pub, now = self._pubs["overlay"], time.monotonic()
        if pub.get_subscription_count() == 0 or now - self._overlay_t < 1.0 / self.params["overlay_max_rate"]:
            return
        self._overlay_t = now
        timeout = self.params["proposal_timeout"]
        status = self._status if now - self._status_t < timeout else None
        cmd = self._cmd if now - self._cmd_t < timeout else None
        if array.ndim == 2:  # depth: metres -> grey for display (NaN/inf: no return, drawn black)
            finite = np.nan_to_num(array, nan=0.0, posinf=0.0, neginf=0.0)
            array = np.repeat(np.clip(finite * (255.0 / max(float(finite.max()), 1e-6)), 0, 255)
                              .astype(np.uint8)[..., None], 3, axis=2)
        try:
            lines, ok = status_lines(status, cmd)
            image = draw_overlay(array, self.params["overlay_width"], cmd, self.max_speed, lines, ok)
        except (cv2.error, ValueError, OverflowError) as exc:  # a debug image must never cost the camera path
            self.overlay_errors += 1
            self.get_logger().error(f"overlay not drawn ({self.overlay_errors} so far): {exc}",
                                    throttle_duration_sec=5.0)
            return
        pub.publish(array_to_image(image, "rgb8", header))

    # ---- diagnostics -----------------------------------------------------------------------------
    def _publish_diagnostics(self) -> None:
        wall = time.monotonic()
        statuses = []
        for name, health in self.health.items():
            level, message = health.level(wall)
            cam = self.pipelines[name].camera
            values = health.values(wall)
            if name == self.overlay_camera:
                values["overlay_errors"] = str(self.overlay_errors)
            statuses.append(DiagnosticStatus(
                level=bytes([level]), name=f"{self.get_name()}: camera {name}", hardware_id=cam.topic,
                message=message, values=[KeyValue(key=k, value=v) for k, v in values.items()]))
        array = DiagnosticArray(status=statuses)
        array.header.stamp = self.get_clock().now().to_msg()
        self._pubs["diagnostics"].publish(array)


main = main_for(PerceptionNode)
