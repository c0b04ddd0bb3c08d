"""The web view in real processes: `vla up sim_web` with the operator page; a request without the token is refused
and changes nothing; with it, the page's e-stop makes /cmd_vel go to zero and the shield's state latch, and its
reset releases it. The headless-browser test is test/test_web_browser.py."""
from __future__ import annotations

import json
import re
import signal
import subprocess
import sys
import time
import urllib.error
import urllib.request

import numpy as np
import pytest
from geometry_msgs.msg import Twist

from vla_interfaces.msg import ShieldState
from vla_ros import node_qos

pytestmark = pytest.mark.ros

PAGE_LINE = r"operator page (http://127\.0\.0\.1:(\d+))/#token=([\w-]+)"


def vec(msg: Twist) -> np.ndarray:
    return np.array([msg.linear.x, msg.linear.y, msg.linear.z, msg.angular.x, msg.angular.y, msg.angular.z])


def post(url: str, token: str | None) -> tuple[int, dict]:
    req = urllib.request.Request(url, data=b"", method="POST", headers={"X-VLA-Token": token} if token else {})
    try:
        with urllib.request.urlopen(req, timeout=10) as r:
            return r.status, json.loads(r.read())
    except urllib.error.HTTPError as e:
        return e.code, json.loads(e.read())


def page_status(base: str, token: str) -> dict:
    req = urllib.request.Request(f"{base}/api/status", headers={"X-VLA-Token": token})
    with urllib.request.urlopen(req, timeout=10) as r:
        return json.loads(r.read())


def start_sim_web(vla, *extra: str):
    """`vla up sim_web` on a free port; returns (process, base URL, token) once every node is active."""
    up = vla("up", "sim_web", "--set", "web_view.port=0", *extra)
    m = up.wait_line(PAGE_LINE, 90)
    up.wait_line(r"all \d+ nodes active", 90)
    return up, m.group(1), m.group(3)


def test_page_refuses_without_the_token_and_its_estop_stops_the_robot(probe, vla):
    commands = probe.collect(Twist, "/cmd_vel", node_qos.COMMAND)
    states = probe.collect(ShieldState, "/safety_shield/state", 10)
    up, base, token = start_sim_web(vla, "--set", "web_view.rerun=false")
    probe.wait_for(lambda: sum(np.any(vec(m) != 0) for _, m in commands) > 5, 30, "the expert driving via the shield")

    for bad in (None, token[:-1] + ("x" if token[-1] != "x" else "y")):
        code, body = post(f"{base}/api/estop", bad)
        assert code == 401 and "token" in body["error"], body
    refused_at = time.monotonic()
    probe.wait_for(lambda: any(t > refused_at and np.any(vec(m) != 0) for t, m in commands), 5,
                   "the expert still driving after the refused requests")
    assert not any(s.estop for _, s in states), "a request without the token latched the e-stop"

    # As an operator would: the page shows the shield's state before its e-stop is pressed (on a loaded machine
    # the view may take seconds to discover the shield; its e-stop then waits for it, see the next test).
    deadline = time.monotonic() + 30
    while not page_status(base, token)["shield"].get("active_source") and time.monotonic() < deadline:
        time.sleep(0.2)
    pressed = time.monotonic()
    code, body = post(f"{base}/api/estop", token)
    assert code == 200 and body["ok"], body
    probe.wait_for(lambda: any(t > pressed and s.estop for t, s in states), 5, "the shield's state latching")
    latched = next(t for t, s in states if t > pressed and s.estop)
    time.sleep(1.0)
    with probe.lock:
        after = [m for t, m in commands if t > latched]
        later_states = [s for t, s in states if t > latched]
    assert len(after) >= 3 and all(np.all(vec(m) == 0) for m in after), "cmd_vel did not stay zero after e-stop"
    assert later_states and all(s.estop and s.active_source == "estop" for s in later_states)

    code, body = post(f"{base}/api/reset", token)
    assert code == 200 and body["ok"], body
    reset_at = time.monotonic()
    probe.wait_for(lambda: any(t > reset_at and np.any(vec(m) != 0) for t, m in commands), 20,
                   "the expert driving again after the page's reset")
    # A button whose node is not in the profile says so instead of pretending.
    code, body = post(f"{base}/api/save", token)
    assert code == 502 and "/recorder/save" in body["message"], body
    # Roll back and deploy reach the policy node, which answers for itself.
    code, body = post(f"{base}/api/rollback", token)
    assert code == 502 and "service" not in body["message"] and body["message"], body

    # A second view beside the running graph, with no profile change, brings itself up and shows the camera.
    alone = subprocess.Popen([sys.executable, "-m", "vla_web.standalone", "--ros-args", "-p", "use_sim_time:=true",
                              "-p", "port:=0", "-p", "rerun:=false", "-r", "__node:=web_view_alone"],
                             stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    try:
        line = ""
        deadline = time.monotonic() + 30
        while "operator page" not in line and time.monotonic() < deadline:
            line = alone.stdout.readline()
        m = re.search(PAGE_LINE, line)
        assert m, f"the standalone view printed no page address: {line!r}"
        # A long poll answers 204 after 2 s without a frame: the new node may not have discovered the camera yet.
        req = urllib.request.Request(f"{m.group(1)}/api/camera/0?after=0", headers={"X-VLA-Token": m.group(3)})
        status, jpeg, deadline = None, b"", time.monotonic() + 30
        while status != 200 and time.monotonic() < deadline:
            with urllib.request.urlopen(req, timeout=10) as r:
                status, jpeg = r.status, r.read()
        assert status == 200 and jpeg[:2] == b"\xff\xd8", f"no camera frame from the standalone view in 30 s ({status})"
    finally:
        alone.send_signal(signal.SIGINT)
        alone.wait(10)
    up.interrupt()
    assert up.wait(60) == 0, up.output


def test_an_estop_nobody_received_is_never_reported_done(vla, one_node_profile):
    """The web view alone (no shield in the graph): the page's e-stop finds neither the shield's service nor a
    subscriber of safety/estop, and says so (502, "E-STOP NOT CONFIRMED", the hardware e-stop) within its
    service_timeout, instead of reporting an e-stop that reached nobody."""
    from pathlib import Path
    ws = Path(__file__).resolve().parents[1]
    profile = one_node_profile("web_view", "vla_web", ws / "params" / "web_view.yaml", "the web view alone")
    up = vla("up", str(profile), "--set", "web_view.port=0", "--set", "web_view.rerun=false",
             "--set", "web_view.service_timeout=1.0")
    m = up.wait_line(PAGE_LINE, 90)
    up.wait_line(r"all \d+ nodes active", 90)
    t0 = time.monotonic()
    code, body = post(f"{m.group(1)}/api/estop", m.group(3))
    took = time.monotonic() - t0
    assert code == 502 and not body["ok"] and "E-STOP NOT CONFIRMED" in body["message"], body
    assert "hardware e-stop" in body["message"] and took < 5.0, (took, body)
    up.interrupt()
    assert up.wait(60) == 0, up.output


def test_the_page_is_not_opened_to_the_network_without_a_token_chosen(vla):
    up = vla("up", "sim_web", "--quiet", "--set", "web_view.bind=0.0.0.0", "--set", "web_view.rerun=false")
    assert up.wait(90) == 1, up.output
    assert "web_view" in up.output and "set the token parameter" in up.output, up.output


def test_bench_web_quick_prints_json_last(vla, monkeypatch):
    """Without a browser (a polling client stands in), on topics under /web_bench only."""
    monkeypatch.setenv("VLA_BENCH_NO_BROWSER", "1")
    bench = vla("bench", "web", "--quick")
    assert bench.wait(120) == 0, bench.output
    result = json.loads(bench.lines[-1])
    shown = result["shown_10hz"]
    assert result["bench"] == "web" and 0 < shown["cpu_percent_one_core"] < 200
    assert min(shown["frames_shown"]) > 10 and shown["display"]["n"] > 10 and shown["display"]["p99_ms"] > 0
