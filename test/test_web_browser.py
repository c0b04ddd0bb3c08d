"""The operator page in a real headless browser (Chromium and chromedriver from Debian's packages: `apt-get install
chromium chromium-driver`; skipped, saying so, where they are missing) against `vla up sim_web`: the page shows
camera frames and the command plot as they update, its E-STOP button makes /cmd_vel go to zero and the shield's
state latch, its recorded-episode picker lists a dataset and plays an episode into the Rerun view, and a
screenshot of the page is kept under the test's tmp dir. The WebDriver protocol is plain HTTP,
spoken here with urllib: no browser-automation package is needed."""
from __future__ import annotations

import base64
import json
import os
import shutil
import socket
import subprocess
import time
import urllib.error
import urllib.request

import numpy as np
import pytest
from diagnostic_msgs.msg import DiagnosticArray
from geometry_msgs.msg import Twist

from vla_interfaces.msg import ShieldState
from vla_ros import node_qos

pytestmark = pytest.mark.ros

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
CHROMEDRIVER = shutil.which("chromedriver")
ELEMENT = "element-6066-11e4-a52e-4f735466cecf"
PAGE_LINE = r"operator page (http://127\.0\.0\.1:(\d+))/#token=([\w-]+)"  # as in test_web.py


def vec(msg: Twist) -> np.ndarray:
    return np.array([msg.linear.x, msg.linear.y, msg.linear.z, msg.angular.x, msg.angular.y, msg.angular.z])


def small_dataset(root):
    """Two short episodes written by the workspace's own writer (state and action only)."""
    from vla_core.dataset import DatasetWriter
    features = {"observation.state": {"dtype": "float32", "shape": [2], "names": ["x", "y"]},
                "action": {"dtype": "float32", "shape": [2], "names": ["vx", "vy"]}}
    writer = DatasetWriter(root, 10.0, features)
    for task, n in (("push the red block", 4), ("push the blue block", 3)):
        ep = writer.begin_episode(task, contract="robot: test")
        for i in range(n):
            ep.add_frame({"observation.state": np.array([i, -i], np.float32), "timestamp": i / 10.0,
                          "action": np.array([0.1, 0.0], np.float32), "intervention": False, "late": False,
                          "valid": True})
        ep.save(success=True)
    return root


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class WebDriver:
    """A W3C WebDriver session on chromedriver: just what this test needs."""

    def __init__(self, driver: str, browser: str):
        self.port = free_port()
        self.proc = subprocess.Popen([driver, f"--port={self.port}"], stdout=subprocess.DEVNULL,
                                     stderr=subprocess.DEVNULL, start_new_session=True)
        self.base = f"http://127.0.0.1:{self.port}"
        deadline = time.monotonic() + 20
        while True:
            try:
                self._call("GET", "/status")
                break
            except (urllib.error.URLError, ConnectionError):
                if time.monotonic() > deadline:
                    raise AssertionError(f"{driver} did not answer on port {self.port} within 20 s")
                time.sleep(0.2)
        caps = {"browserName": "chrome", "goog:chromeOptions": {"binary": browser, "args": [
            "--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage", "--window-size=1000,1000",
            "--disable-extensions", "--no-first-run"]}}
        self.session = self._call("POST", "/session", {"capabilities": {"alwaysMatch": caps}})["sessionId"]

    def _call(self, method: str, path: str, body: dict | None = None):
        data = json.dumps(body).encode() if body is not None else None
        req = urllib.request.Request(self.base + path, data=data, method=method,
                                     headers={"Content-Type": "application/json"})
        try:
            with urllib.request.urlopen(req, timeout=60) as r:
                return json.loads(r.read())["value"]
        except urllib.error.HTTPError as e:
            raise AssertionError(f"WebDriver {method} {path}: {e.code} {e.read()[:500]!r}") from e

    def cmd(self, method: str, path: str, body: dict | None = None):
        return self._call(method, f"/session/{self.session}{path}", body)

    def open(self, url: str) -> None:
        self.cmd("POST", "/url", {"url": url})

    def js(self, script: str):
        return self.cmd("POST", "/execute/sync", {"script": script, "args": []})

    def click(self, css: str) -> None:
        found = self.cmd("POST", "/element", {"using": "css selector", "value": css})
        assert isinstance(found, dict) and ELEMENT in found, f"no element {css}: {found}"
        element = found[ELEMENT]
        self.cmd("POST", f"/element/{element}/click", {})

    def screenshot(self, path) -> None:
        path.write_bytes(base64.b64decode(self.cmd("GET", "/screenshot")))

    def wait(self, script: str, timeout: float, what: str):
        deadline, value = time.monotonic() + timeout, None
        while time.monotonic() < deadline:
            value = self.js(script)
            if value:
                return value
            time.sleep(0.2)
        raise AssertionError(f"timed out after {timeout:g} s waiting in the browser for {what} (last: {value!r})")

    def close(self) -> None:
        try:
            self.cmd("DELETE", "")
        except Exception:  # noqa: BLE001 - the driver goes anyway
            pass
        os.killpg(self.proc.pid, 9)
        self.proc.wait(5)


@pytest.fixture
def browser():
    if not CHROMIUM or not CHROMEDRIVER:
        pytest.skip("needs Chromium and chromedriver from Debian's packages: apt-get install -y chromium "
                    "chromium-driver (about 75 s, ~300 MB)")
    driver = WebDriver(CHROMEDRIVER, CHROMIUM)
    yield driver
    driver.close()


def test_browser_sees_frames_and_plot_update_and_its_estop_latches_the_shield(probe, vla, browser, tmp_path):
    commands = probe.collect(Twist, "/cmd_vel", node_qos.COMMAND)
    states = probe.collect(ShieldState, "/safety_shield/state", 10)
    diags = probe.collect(DiagnosticArray, "/diagnostics", 10)
    grpc, web = free_port(), free_port()
    recorded = small_dataset(tmp_path / "datasets" / "bench")
    up = vla("up", "sim_web", "--set", "web_view.port=0", "--set", f"web_view.rerun_grpc_port={grpc}",
             "--set", f"web_view.rerun_web_port={web}", "--set", f"web_view.datasets=[{tmp_path / 'datasets'}]")
    m = up.wait_line(PAGE_LINE, 90)
    base, token = m.group(1), m.group(3)
    up.wait_line(r"all \d+ nodes active", 90)
    probe.wait_for(lambda: sum(np.any(vec(m) != 0) for _, m in commands) > 5, 30, "the expert driving")

    browser.open(f"{base}/#token={token}")
    # Camera frames arrive and keep arriving; the command plot fills and keeps moving.
    seq0 = browser.wait("const i = document.getElementById('cam0'); return i && +i.dataset.seq >= 2 && "
                        "i.naturalWidth > 0 && +i.dataset.seq", 20, "camera frames drawn")
    browser.wait(f"return +document.getElementById('cam0').dataset.seq >= {seq0 + 5}", 10, "newer camera frames")
    pts0 = browser.wait("const n = +document.getElementById('plot').dataset.points; return n > 10 && n", 10,
                        "the command plot")
    plot0 = browser.js("return document.getElementById('plot').toDataURL()")
    browser.wait(f"return document.getElementById('plot').toDataURL() !== {json.dumps(plot0)}", 5,
                 f"the command plot to move (it had {pts0} points)")
    assert browser.js("return document.getElementById('status').dataset.estop") == "false"
    # The Rerun viewer the page links to is served from this machine.
    viewer = browser.wait("const a = document.querySelector('#viewer a'); return a && a.href", 5, "the viewer link")
    with urllib.request.urlopen(viewer.split("?")[0], timeout=10) as r:
        assert r.status == 200 and b"Rerun" in r.read()

    pressed = time.monotonic()
    browser.click("#estop")
    probe.wait_for(lambda: any(t > pressed and s.estop for t, s in states), 5, "the shield's state latching")
    latched = next(t for t, s in states if t > pressed and s.estop)
    browser.wait("return document.getElementById('status').dataset.estop === 'true'", 5, "the page showing E-STOP")
    time.sleep(1.0)
    with probe.lock:
        after = [m for t, m in commands if t > latched]
    assert len(after) >= 3 and all(np.all(vec(m) == 0) for m in after), "cmd_vel did not go to zero"
    assert "E-STOP" in browser.js("return document.getElementById('status').textContent")
    # Deploy sends the typed name to the policy node, whose refusal the page shows.
    browser.js("document.getElementById('artifact').value = 'no_such_policy/1'")
    browser.click("#deploy")
    message = browser.wait("const m = document.getElementById('message').textContent; "
                           "return m.startsWith('deploy: ') && m", 30, "the policy node's answer to Deploy")
    assert "no_such_policy" in message, message
    # Recorded episodes: the dataset under the configured folder is listed, its episodes too, and Play logs one
    # into the Rerun view.
    browser.js("document.getElementById('library').open = true")
    browser.wait("return [...document.getElementById('dataset').options].some(o => o.textContent.includes("
                 f"{json.dumps(str(recorded))}))", 10, "the dataset in the picker")
    browser.wait("return document.querySelectorAll('#episodes button[data-episode]').length === 2", 10,
                 "the dataset's two episodes")
    assert "push the blue block" in browser.js("return document.getElementById('episodes').textContent")
    browser.click("#episodes button[data-episode='1']")
    played = browser.wait("const m = document.getElementById('library_message').textContent; "
                          "return m.includes('frames in the Rerun viewer') && m", 30, "the played episode")
    assert "bench episode 1: 3 frames" in played, played
    shot = tmp_path / "operator_page.png"
    browser.screenshot(shot)
    assert shot.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    print(f"screenshot: {shot}")

    with urllib.request.urlopen(urllib.request.Request(f"{base}/api/status", headers={"X-VLA-Token": token}),
                                timeout=10) as r:
        displayed = json.loads(r.read())["latency"]["displayed"]
    assert displayed["n"] > 5, displayed
    print(f"camera stamp -> drawn in the browser (sim time): {displayed}")
    # Every callback, Rerun's logging of each message included, ran without an exception (the node base would
    # catch and count one, and the view would go on without that message).
    probe.wait_for(lambda: probe.diagnostic_values(diags, "web_view: node"), 5, "the web_view node's diagnostics")
    node_status = probe.diagnostic_values(diags, "web_view: node")
    assert node_status["callback_errors"] == "0", node_status
    up.interrupt()
    assert up.wait(60) == 0, up.output
