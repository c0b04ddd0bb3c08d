"""The web view's pure parts: token and bind rules, frame decoding and throttling, the page's server (real HTTP on
a free port, a recording stand-in for the ROS services it calls)."""
from __future__ import annotations

import json
import threading
import urllib.error
import urllib.request

import numpy as np
import pytest

from vla_core.errors import ConfigError
from vla_web.auth import check_bind, new_token, token_ok
from vla_web.frames import FrameThrottle, downscale, image_to_rgb, to_jpeg
from vla_web.server import OperatorServer
from vla_web.view_state import ViewState, status_line

TOKEN = "t" * 16


@pytest.mark.parametrize("bind,token,ok", [("127.0.0.1", "", True), ("localhost", "", True), ("::1", "", True),
                                           ("0.0.0.0", "", False), ("192.168.1.20", "", False),
                                           ("0.0.0.0", TOKEN, True), ("127.0.0.1", "short", False)])
def test_the_page_leaves_this_machine_only_with_a_token_chosen(bind, token, ok):
    if ok:
        check_bind(bind, token)
    else:
        with pytest.raises(ConfigError, match="token"):
            check_bind(bind, token)


def test_bad_bind_address_is_named():
    with pytest.raises(ConfigError, match="'robot.local' is not an IP address"):
        check_bind("robot.local", TOKEN)


def test_tokens_are_random_and_compared_whole():
    a, b = new_token(), new_token()
    assert a != b and len(a) >= 16
    assert token_ok(a, a) and not token_ok(a[:-1], a) and not token_ok("", "") and not token_ok(None, a)


def test_throttle_lets_rate_through_and_owes_nothing_after_a_pause():
    th = FrameThrottle(10.0)
    passed = sum(th.accept(i / 30.0) for i in range(300))  # 10 s of 30 Hz
    assert 99 <= passed <= 101
    assert th.accept(100.0) and not th.accept(100.01) and th.accept(100.1)


def test_images_decode_by_encoding_and_bad_ones_are_named():
    rgb = np.arange(2 * 3 * 3, dtype=np.uint8).reshape(2, 3, 3)
    assert np.array_equal(image_to_rgb("rgb8", 2, 3, 9, rgb.tobytes()), rgb)
    assert np.array_equal(image_to_rgb("bgr8", 2, 3, 9, rgb[..., ::-1].tobytes()), rgb)
    padded = np.zeros((2, 12), np.uint8)
    padded[:, :9] = rgb.reshape(2, 9)
    assert np.array_equal(image_to_rgb("rgb8", 2, 3, 12, padded.tobytes()), rgb)
    mono = image_to_rgb("mono8", 2, 3, 3, bytes(range(6)))
    assert mono.shape == (2, 3, 3) and mono[1, 2, 0] == 5
    with pytest.raises(ValueError, match="'32FC1' is not shown"):
        image_to_rgb("32FC1", 2, 3, 12, bytes(24))
    with pytest.raises(ValueError, match="needs 18 bytes, got 17"):
        image_to_rgb("rgb8", 2, 3, 9, bytes(17))


def test_frames_are_downscaled_with_their_aspect_and_encoded():
    big = np.zeros((480, 640, 3), np.uint8)
    assert downscale(big, 320).shape == (240, 320, 3)
    assert downscale(big[:10, :10], 320).shape == (10, 10, 3)
    assert to_jpeg(big, 80)[:2] == b"\xff\xd8"


def test_command_history_keeps_its_window_and_restarts_when_the_clock_does():
    state = ViewState(["/cam"], history_s=2.0)
    for i in range(50):
        state.put_command("sent", i * 0.1, [i, 0])
    times = [t for t, _ in state.snapshot()["commands"]["sent"]]
    assert times[0] >= 4.9 - 2.0 - 1e-9 and times[-1] == pytest.approx(4.9)
    state.put_command("sent", 0.5, [1, 1])  # a new simulation
    assert [t for t, _ in state.snapshot()["commands"]["sent"]] == [0.5]


def test_status_line_puts_the_estop_first():
    state = ViewState(["/cam"], 30.0)
    state.put("shield", {"estop": True, "active_source": "estop", "rules": ["estop"]})
    state.put("manager", {"phase": "active", "reason": ""})
    assert status_line(state.snapshot()).startswith("E-STOP latched")


class Served:
    def __init__(self):
        self.calls: list[str] = []
        self.state = ViewState(["/a", "/b"], 30.0)
        self.now = 100.0
        self.server = OperatorServer(self.state, self.act, lambda: self.now, TOKEN, "127.0.0.1", 0)
        self.server.start()
        self.base = "http://127.0.0.1:%d" % self.server.address[1]

    def act(self, name, args):
        self.calls.append((name, args) if args else name)
        return name != "save", f"{name} answered"

    def request(self, path, token=TOKEN, data=None):
        req = urllib.request.Request(self.base + path, data=data, method="POST" if data is not None else "GET",
                                     headers={"X-VLA-Token": token} if token else {})
        try:
            with urllib.request.urlopen(req, timeout=5) as r:
                return r.status, r.read(), r.headers
        except urllib.error.HTTPError as e:
            return e.code, e.read(), e.headers


@pytest.fixture
def served():
    s = Served()
    yield s
    s.server.close()


def test_every_api_request_without_the_token_is_refused_and_nothing_is_called(served):
    for path, data in (("/api/estop", b""), ("/api/reset", b""), ("/api/status", None), ("/api/camera/0", None)):
        for token in (None, "wrong-token-xxxx"):
            code, body, _ = served.request(path, token, data)
            assert code == 401 and "token" in json.loads(body)["error"], (path, token)
    assert served.calls == [] and served.server.requests["unauthorized"] == 8
    code, body, _ = served.request("/", None)
    assert code == 200 and b"E-STOP" in body  # the page itself holds nothing


def test_buttons_call_their_action_and_report_its_answer(served):
    code, body, _ = served.request("/api/estop", data=b"")
    assert code == 200 and json.loads(body) == {"ok": True, "message": "estop answered"}
    code, body, _ = served.request("/api/save", data=b"")
    assert code == 502 and json.loads(body)["ok"] is False
    code, body, _ = served.request("/api/launch", data=b"")
    assert code == 404 and "estop" in json.loads(body)["error"]
    for bad in (b"", b"[1]", b'{"artifact": ""}', json.dumps({"artifact": "x" * 301}).encode()):
        code, body, _ = served.request("/api/deploy", data=bad)
        assert code == 400 and "deploy" in json.loads(body)["error"], bad
    code, body, _ = served.request("/api/deploy", data=b'{"artifact": "act_tabletop/3"}')
    assert code == 200
    code, body, _ = served.request("/api/deploy", data=b"{" + b" " * 5000 + b"}")
    assert code == 413 and "4096" in json.loads(body)["error"]
    assert served.calls == ["estop", "save", ("deploy", {"artifact": "act_tabletop/3"})]


def test_camera_long_poll_returns_a_new_frame_as_soon_as_it_exists(served):
    timer = threading.Timer(0.2, lambda: served.state.put_frame(1, 99.95, b"\xff\xd8jpeg", 4, 3))
    timer.start()
    code, body, headers = served.request("/api/camera/1?after=0")
    assert code == 200 and body == b"\xff\xd8jpeg" and headers["X-Seq"] == "1" and float(headers["X-Stamp"]) == 99.95
    code, _, _ = served.request("/api/camera/7")
    assert code == 400
    # The page's next request reports the frame drawn: 50 ms after its stamp on the node clock.
    threading.Timer(0.1, lambda: served.state.put_frame(1, 100.0, b"\xff\xd8next", 4, 3)).start()
    code, body, headers = served.request("/api/camera/1?after=1&drawn=1")
    assert code == 200 and headers["X-Seq"] == "2"
    assert served.state.snapshot()["latency"]["displayed"]["p50_ms"] == pytest.approx(50.0)
    served.state.put_command("sent", 99.0, [0.1, 0.0])
    served.state.put_command("sent", 99.5, [0.2, 0.0])
    code, body, _ = served.request("/api/status?since=99.0")
    snap = json.loads(body)
    assert code == 200 and snap["cameras"][1]["frames"] == 2 and snap["now"] == 100.0
    assert snap["commands"]["sent"] == [[99.5, [0.2, 0.0]]]


def test_rerun_view_serves_its_viewer_and_takes_every_kind_of_entry():
    """rerun-sdk's API as the node uses it (a version that changed it fails here, not in a callback)."""
    import socket
    from vla_web.rerun_view import RerunView, rule_path

    def free_port():
        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            return s.getsockname()[1]
    view = RerunView(["camera_top"], free_port(), free_port(), "16MiB")
    try:
        view.image("camera_top", 1.0, to_jpeg(np.zeros((8, 8, 3), np.uint8), 80))
        view.series("command/sent", 1.0, ("vx", "vy"), [0.1, 0.2])
        view.series("joints/position", 1.0, ("j1", "gripper"), np.array([0.5, 0.08]))
        view.scalars("shield/rule", 1.0, {rule_path("zone.stop:front"): 0.3})
        view.text("shield/state", 1.0, "source estop E-STOP", level="ERROR")
        view.flush()
        url = view.viewer_url()
        assert f":{view.web_port}/?url=rerun%2Bhttp%3A%2F%2F127.0.0.1%3A{view.grpc_port}%2Fproxy" in url
        with urllib.request.urlopen(url.split("?")[0], timeout=10) as r:
            assert r.status == 200 and b"Rerun" in r.read()
    finally:
        view.close()


def test_a_serialized_image_is_read_as_rclpy_reads_it():
    """parse_image_cdr against rclpy's own serialization: odd frame_id and encoding lengths (alignment), three
    encodings, a padded step, big stamps; a truncated or foreign buffer is refused."""
    from rclpy.serialization import serialize_message
    from sensor_msgs.msg import Image

    from vla_web.frames import parse_image_cdr
    rng = np.random.default_rng(0)
    for frame_id, encoding, h, w, step_pad in (("", "rgb8", 3, 5, 0), ("cam", "bgr8", 4, 2, 2),
                                               ("camera_top_optical", "mono8", 7, 9, 3), ("x" * 13, "rgb8", 1, 1, 1)):
        channels = 1 if encoding == "mono8" else 3
        step = w * channels + step_pad
        data = rng.integers(0, 256, h * step, dtype=np.uint8)
        msg = Image(height=h, width=w, encoding=encoding, step=step, data=data.tobytes(), is_bigendian=0)
        msg.header.frame_id = frame_id
        msg.header.stamp.sec, msg.header.stamp.nanosec = 1_796_663_924, 924_058_676
        got = parse_image_cdr(serialize_message(msg))
        assert (got.sec, got.nanosec, got.height, got.width, got.encoding, got.step) == \
            (1_796_663_924, 924_058_676, h, w, encoding, step)
        assert bytes(got.data) == data.tobytes()
        assert np.array_equal(image_to_rgb(got.encoding, h, w, step, got.data),
                              image_to_rgb(encoding, h, w, step, data.tobytes()))
    raw = serialize_message(Image(height=2, width=2, encoding="rgb8", step=6, data=bytes(12)))
    for bad in (raw[:-3], raw[:20], b"\x01\x02\x00\x00" + raw[4:], b""):
        with pytest.raises(ValueError):
            parse_image_cdr(bad)
