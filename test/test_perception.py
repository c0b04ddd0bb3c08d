"""The perception node across processes: model-ready images bitwise equal to the recorder's function,
source stamps kept, depth, compressed transport, bad frames dropped and counted, the debug overlay."""
from __future__ import annotations

import time
from pathlib import Path

import cv2
import numpy as np
import pytest
from diagnostic_msgs.msg import DiagnosticArray, DiagnosticStatus
from geometry_msgs.msg import Twist
from sensor_msgs.msg import CompressedImage, Image

from vla_core.image import camera_frame
from vla_interfaces.msg import FeatureVector, PolicyStatus
from vla_ros import node_qos

WS = Path(__file__).resolve().parents[1]

pytestmark = pytest.mark.ros

CONTRACT = """
robot: two_camera_test
fps: 30
cameras:
  top: {topic: camera/top/image_raw, height: 96, width: 96, encoding: rgb8, frame_id: camera_top_optical_frame}
  depth: {topic: camera/depth/image_raw, height: 48, width: 64, encoding: 16UC1}
state: {topic: joint_states, joints: [gantry_x, gantry_y]}
action: {topic: cmd_vel, type: geometry_msgs/msg/Twist, fields: [linear.x, linear.y], low: [-0.25, -0.25],
         high: [0.25, 0.25]}
"""


def perception_profile(one_node_profile, transport: str) -> list[str]:
    profile = one_node_profile("perception", "vla_perception", WS / "params" / "perception.yaml",
                               "the perception node alone, fed by the test")
    contract = profile.parent / "two_camera.yaml"
    contract.write_text(CONTRACT)
    return [str(profile), "--quiet", "--set", f"perception.contract={contract}", "--set",
            f"perception.transport={transport}", "--set", "perception.diagnostics_period=0.2"]


def fixed_bgr(h=480, w=640):
    rng = np.random.default_rng(7)
    img = rng.integers(0, 256, (h, w, 3), dtype=np.uint8)
    img[100:300, 200:400] = (10, 200, 30)
    return img


def image_msg(array, encoding, sec, frame_id="", data=None):
    h, w = array.shape[:2]
    step = w * array.itemsize * (array.shape[2] if array.ndim == 3 else 1)
    msg = Image(height=h, width=w, encoding=encoding, step=step, data=data if data is not None else array.tobytes())
    msg.header.stamp.sec, msg.header.frame_id = sec, frame_id
    return msg


def test_raw_images_depth_bad_frames_and_overlay(probe, vla, one_node_profile):
    top = probe.collect(Image, "/observation/images/top", node_qos.SENSOR_SUB)
    depth = probe.collect(Image, "/observation/images/depth", node_qos.SENSOR_SUB)
    overlay = probe.collect(Image, "/perception/overlay", node_qos.SENSOR_SUB)
    diags = probe.collect(DiagnosticArray, "/diagnostics", 10)
    up = vla("up", *perception_profile(one_node_profile, "raw"))
    up.wait_line("all 1 nodes active", 90)
    pub = probe.node.create_publisher(Image, "/camera/top/image_raw", node_qos.SENSOR_PUB)
    depth_pub = probe.node.create_publisher(Image, "/camera/depth/image_raw", node_qos.SENSOR_PUB)
    probe.wait_for(lambda: pub.get_subscription_count() and depth_pub.get_subscription_count(), 10,
                   "perception's camera subscriptions")

    # Parity across processes: what the node publishes is bitwise what the recorder's function makes.
    bgr = fixed_bgr()
    msg = image_msg(bgr, "bgr8", 1234, "my_camera_frame")
    probe.publish_until(pub, msg, lambda: top, 10, "a model-ready image")
    out = top[-1][1]
    expected = camera_frame(msg.data, 480, 640, "bgr8", 640 * 3, 96, 96)
    assert (out.height, out.width, out.encoding, out.step) == (96, 96, "rgb8", 288)
    assert bytes(out.data) == expected.tobytes()
    assert out.header.stamp.sec == 1234 and out.header.frame_id == "my_camera_frame"

    # A frame without frame_id gets the contract's.
    probe.publish_until(pub, image_msg(bgr, "bgr8", 1235), lambda: top[-1][1].header.stamp.sec == 1235, 10,
                        "the second frame")
    assert top[-1][1].header.frame_id == "camera_top_optical_frame"

    # 16-bit depth in millimetres -> 32FC1 metres at the contract size.
    mm = np.full((96, 128), 1250, np.uint16)
    probe.publish_until(depth_pub, image_msg(mm, "16UC1", 1236), lambda: depth, 10, "a depth image")
    d = depth[-1][1]
    assert (d.height, d.width, d.encoding) == (48, 64, "32FC1")
    np.testing.assert_allclose(np.frombuffer(bytes(d.data), np.float32), 1.25)

    # Bad frames are dropped, counted per reason, and reported.
    n_top = len(top)
    bad_encoding = image_msg(bgr, "yuv422", 1237)
    probe.publish_until(pub, bad_encoding,
                        lambda: probe.count(diags, "perception: camera top", "dropped_encoding") >= 3, 10,
                        "3 frames dropped for their encoding")
    short = image_msg(bgr, "bgr8", 1238, data=bgr.tobytes()[:-7])
    probe.publish_until(pub, short, lambda: probe.count(diags, "perception: camera top", "dropped_data") >= 3,
                        10, "3 frames dropped for their size")
    probe.publish_until(depth_pub, image_msg(bgr, "bgr8", 1239),
                        lambda: probe.count(diags, "perception: camera depth", "dropped_encoding") >= 1, 10,
                        "a colour frame dropped on the depth camera")
    assert len(top) == n_top, "a bad frame was published"
    # The test's frames are stamped in 1970: the camera is reported stale (ERROR), its drops counted.
    status = [s for _, a in list(diags) for s in a.status if s.name == "perception: camera top"][-1]
    assert status.level == DiagnosticStatus.ERROR and "stale" in status.message

    # Overlay: the policy's status and proposed command drawn on the frame.
    status_pub = probe.node.create_publisher(PolicyStatus, "/policy/status", 10)
    cmd_pub = probe.node.create_publisher(Twist, "/policy/cmd_vel", node_qos.COMMAND)
    probe.wait_for(lambda: status_pub.get_subscription_count() and cmd_pub.get_subscription_count(), 10,
                   "overlay subscriptions")
    cmd = Twist()
    cmd.linear.x = 0.25

    def forward_arrow(o) -> bool:
        """A red arrow from the image centre upwards: +x (forward) is image up on the top camera."""
        img = np.frombuffer(bytes(o.data), np.uint8).reshape(o.height, o.width, 3)
        red = (img[..., 0] > 200) & (img[..., 1] < 80) & (img[..., 2] < 80)
        rows = np.nonzero(red[:, o.width // 2 - 12: o.width // 2 + 12])[0]
        return rows.size > 20 and rows.mean() < o.height / 2 - 40

    deadline = time.monotonic() + 10
    while time.monotonic() < deadline and not any(forward_arrow(o) for _, o in list(overlay)):
        status_pub.publish(PolicyStatus(policy="bc", version="1", engine="onnxruntime-cpu", proposing=True))
        cmd_pub.publish(cmd)
        pub.publish(image_msg(bgr, "bgr8", 1240))
        time.sleep(0.1)
    drawn = [o for _, o in list(overlay) if forward_arrow(o)]
    assert drawn, f"no overlay with the forward arrow among {len(overlay)} overlays"
    assert (drawn[-1].width, drawn[-1].height, drawn[-1].header.stamp.sec) == (384, 384, 1240)
    up.interrupt()
    assert up.wait(30) == 0


def test_compressed_transport_and_features(probe, vla, one_node_profile):
    """PNG over the compressed transport is bitwise the raw path; with features on, the frozen encoder's
    vector of that frame comes with the frame's stamp."""
    from vla_perception.features import ImageFeatures
    top = probe.collect(Image, "/observation/images/top", node_qos.SENSOR_SUB)
    feats = probe.collect(FeatureVector, "/observation/features/top", node_qos.SENSOR_SUB)
    diags = probe.collect(DiagnosticArray, "/diagnostics", 10)
    up = vla("up", *perception_profile(one_node_profile, "compressed"),
             "--set", "perception.features=efficientnet-lite0")
    up.wait_line("all 1 nodes active", 90)
    pub = probe.node.create_publisher(CompressedImage, "/camera/top/image_raw/compressed", node_qos.SENSOR_PUB)
    probe.wait_for(lambda: pub.get_subscription_count(), 10, "perception's compressed subscription")
    bgr = fixed_bgr()
    ok, png = cv2.imencode(".png", bgr)
    msg = CompressedImage(format="png", data=png.tobytes())
    msg.header.stamp.sec = 77
    probe.publish_until(pub, msg, lambda: top, 10, "a model-ready image")
    expected = camera_frame(bgr.tobytes(), 480, 640, "bgr8", 640 * 3, 96, 96)
    assert bytes(top[-1][1].data) == expected.tobytes() and top[-1][1].header.stamp.sec == 77
    probe.wait_for(lambda: feats, 10, "a feature vector")
    vector = feats[-1][1]
    assert vector.encoder_id == "efficientnet-lite0@imagenet" and vector.header.stamp.sec == 77
    np.testing.assert_allclose(np.asarray(vector.data, np.float32), ImageFeatures()(expected), atol=1e-4)
    corrupt = CompressedImage(format="jpeg", data=b"\xff\xd8\xff\xe0 not a jpeg")
    probe.publish_until(pub, corrupt, lambda: probe.count(diags, "perception: camera top", "dropped_data") >= 2, 10,
                        "corrupt frames dropped")
    up.interrupt()
    assert up.wait(30) == 0


def test_overlay_survives_any_command_and_a_future_stamp_cannot_silence_the_stale_alarm(probe, vla, one_node_profile):
    """A proposal of 1e7 m/s while someone watches the overlay used to crash the node (OpenCV "Can't parse
    'pt2'"); one frame stamped in the future used to keep the camera 'fresh' for good."""
    overlay = probe.collect(Image, "/perception/overlay", node_qos.SENSOR_SUB)
    top = probe.collect(Image, "/observation/images/top", node_qos.SENSOR_SUB)
    diags = probe.collect(DiagnosticArray, "/diagnostics", 10)
    up = vla("up", *perception_profile(one_node_profile, "raw"), "--set", "perception.stale_after=0.5")
    up.wait_line("all 1 nodes active", 90)
    pub = probe.node.create_publisher(Image, "/camera/top/image_raw", node_qos.SENSOR_PUB)
    cmd_pub = probe.node.create_publisher(Twist, "/policy/cmd_vel", node_qos.COMMAND)
    probe.wait_for(lambda: pub.get_subscription_count() and cmd_pub.get_subscription_count(), 10,
                   "perception's subscriptions")
    bgr = fixed_bgr(96, 96)

    def now_msg(offset: float = 0.0) -> Image:
        msg = image_msg(bgr, "bgr8", 0)
        t = time.time() + offset
        msg.header.stamp.sec, msg.header.stamp.nanosec = int(t), int((t % 1) * 1e9)
        return msg

    for vx, vy in [(1e7, 0.0), (-1e308, 1e308), (float("nan"), 1.0), (0.0, float("-inf"))]:
        cmd = Twist()
        cmd.linear.x, cmd.linear.y = vx, vy
        n = len(overlay)
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline and len(overlay) < n + 3:
            cmd_pub.publish(cmd)
            pub.publish(now_msg())
            time.sleep(0.12)
        assert len(overlay) >= n + 3, f"no overlay drawn for the command ({vx}, {vy}):\n{up.output}"
    assert up.proc.poll() is None, up.output

    # One frame from a clock a day ahead is refused and counted, not published ...
    n_top = len(top)
    probe.publish_until(pub, now_msg(86400.0),
                        lambda: probe.count(diags, "perception: camera top", "dropped_future_stamp") >= 1, 10,
                        "the future-stamped frame refused")
    assert all(abs(m.header.stamp.sec - time.time()) < 60 for _, m in top[n_top:])
    # ... and with no frame since, the camera is reported stale.
    t_quiet = time.monotonic()
    probe.wait_for(lambda: any(s.name == "perception: camera top" and s.level == DiagnosticStatus.ERROR
                               and "no frame for" in s.message
                               for t, a in list(diags) if t > t_quiet + 0.6 for s in a.status),
                   10, "the stale-camera alarm after a future-stamped frame")
    up.interrupt()
    assert up.wait(30) == 0
