"""`vla bench web`: what the web view costs the robot and how late it shows a frame.

A publisher process sends 2 cameras x 30 Hz of 640x480 rgb8 frames, stamped with the wall clock when published,
plus commands and shield states at 10 Hz; the web_view node runs in its own process (Rerun on), configured and
activated through its lifecycle services; a viewer watches the operator page:
- with Chromium installed (Debian: apt-get install chromium), headless Chromium on the page itself: the latency is
  from the camera's stamp to the frame drawn in the browser (the page reports each frame once decoded and drawn;
  the report's own trip is included, so it is an upper bound);
- otherwise a Python client long-polling the page's frames: stamp to the JPEG received by the client.
``delivered`` is stamp to the frame handed to Rerun's recording stream and the page (node side). CPU is the
web_view process's user+system time over the measuring window, in % of one core; the viewer's own CPU is not
counted (it runs on the operator's machine). Last line: one JSON object.
"""
from __future__ import annotations

import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
import urllib.error
import urllib.request

import numpy as np

TOKEN = "bench-token-0123456789"
NODE_CODE = "from vla_web.web_node import main; main()"
NODE_NAME = "web_bench_view"  # not web_view: a running profile's view is never touched
CAMERAS = 2
RATE_HZ = 30.0


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _cpu_s(pid: int) -> float:
    fields = open(f"/proc/{pid}/stat").read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def _thread_cpu_s(pid: int) -> dict[str, float]:
    """CPU seconds by thread name (threads of one name summed): where the view's CPU goes."""
    out: dict[str, float] = {}
    for tid in os.listdir(f"/proc/{pid}/task"):
        try:
            stat = open(f"/proc/{pid}/task/{tid}/stat").read()
        except OSError:
            continue
        name = stat[stat.index("(") + 1: stat.rindex(")")]
        fields = stat.rsplit(")", 1)[1].split()
        out[name] = out.get(name, 0.0) + (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")
    return out


def _get(url: str, timeout: float = 5.0):
    req = urllib.request.Request(url, headers={"X-VLA-Token": TOKEN})
    with urllib.request.urlopen(req, timeout=timeout) as r:
        return r.status, r.headers, r.read()


class PollingViewer:
    """The page's frame loop in Python: long-poll each camera, note stamp -> received (wall clock, ms)."""

    def __init__(self, base: str, cameras: int):
        self.base, self.latencies, self.stop = base, [], threading.Event()
        self.threads = [threading.Thread(target=self._loop, args=(i,), daemon=True) for i in range(cameras)]
        for t in self.threads:
            t.start()

    def _loop(self, camera: int) -> None:
        seq = 0
        while not self.stop.is_set():
            try:
                status, headers, _ = _get(f"{self.base}/api/camera/{camera}?after={seq}")
            except (urllib.error.URLError, ConnectionError, TimeoutError):
                time.sleep(0.2)
                continue
            if status == 200:
                self.latencies.append((time.time() - float(headers["X-Stamp"])) * 1e3)
                seq = int(headers["X-Seq"])

    def close(self) -> None:
        self.stop.set()


def _chromium_viewer(url: str) -> subprocess.Popen | None:
    browser = shutil.which("chromium") or shutil.which("chromium-browser")
    if browser is None:
        return None
    profile = tempfile.mkdtemp(prefix="vla-web-bench-")
    proc = subprocess.Popen([browser, "--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
                             "--no-first-run", f"--user-data-dir={profile}", "--remote-debugging-port=0", url],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True)
    proc.profile_dir = profile
    return proc


def _lifecycle(node, name: str, transition: int, log: str, timeout: float = 30.0) -> None:
    from lifecycle_msgs.msg import Transition
    from lifecycle_msgs.srv import ChangeState
    import rclpy
    client = node.create_client(ChangeState, f"/{name}/change_state")
    if not client.wait_for_service(timeout_sec=timeout):
        raise RuntimeError(f"/{name}/change_state did not appear within {timeout:g} s; its output: {log}")
    future = client.call_async(ChangeState.Request(transition=Transition(id=transition)))
    rclpy.spin_until_future_complete(node, future, timeout_sec=timeout)
    if not future.done() or not future.result().success:
        out = open(log, errors="replace").read()[-2000:]
        raise RuntimeError(f"{name}: lifecycle transition {transition} failed; its output ({log}):\n{out}")


def run_once(camera_rate: float, seconds: float, browser: bool, say, extra: tuple[str, ...] = ()) -> dict:
    import rclpy
    port, grpc, web = _free_port(), _free_port(), _free_port()
    from vla_web.bench_publisher import PREFIX
    topics = [f"{PREFIX}/cam{i}/image_raw" for i in range(CAMERAS)]
    env = dict(os.environ)
    log = tempfile.NamedTemporaryFile(prefix="vla-web-bench-", suffix=".log", delete=False)
    view = subprocess.Popen(
        [sys.executable, "-c", NODE_CODE, "--ros-args", "-r", f"__node:={NODE_NAME}",
         "-p", f"proposed_topic:={PREFIX}/policy/cmd_vel", "-p", f"sent_topic:={PREFIX}/cmd_vel",
         "-p", f"shield:={PREFIX}/safety_shield", "-p", f"recorder:={PREFIX}/recorder",
         "-p", f"policy:={PREFIX}/policy", "-p", f"manager:={PREFIX}/lifecycle_manager",
         "-p", f"policy_status_topic:={PREFIX}/policy/status",
         "-p", f"cameras:={json.dumps(topics)}", "-p", f"port:={port}", "-p", f"token:={TOKEN}",
         "-p", f"rerun_grpc_port:={grpc}", "-p", f"rerun_web_port:={web}", "-p", f"camera_rate:={camera_rate}",
         *[a for p in extra for a in ("-p", p)]],
        env=env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
    publisher = viewer = chromium = None
    rclpy.init()
    node = rclpy.create_node("web_bench")
    try:
        _lifecycle(node, NODE_NAME, 1, log.name)  # configure
        _lifecycle(node, NODE_NAME, 3, log.name)  # activate
        publisher = subprocess.Popen(
            [sys.executable, "-m", "vla_web.bench_publisher", "--cameras", str(CAMERAS), "--rate", str(RATE_HZ),
             "--seconds", str(seconds + 8)], env=env, start_new_session=True)
        base = f"http://127.0.0.1:{port}"
        chromium = _chromium_viewer(f"{base}/#token={TOKEN}") if browser else None
        if chromium is None:
            viewer = PollingViewer(base, CAMERAS)
        time.sleep(4.0)  # discovery, the first frames, the browser's start
        c0, threads0, t0 = _cpu_s(view.pid), _thread_cpu_s(view.pid), time.monotonic()
        time.sleep(seconds)
        elapsed = time.monotonic() - t0
        cpu = (_cpu_s(view.pid) - c0) / elapsed * 100
        threads = {k: round((v - threads0.get(k, 0.0)) / elapsed * 100, 1) for k, v in _thread_cpu_s(view.pid).items()}
        _, _, body = _get(f"{base}/api/status")
        status = json.loads(body)
    finally:
        for proc in (chromium, publisher, view):
            if proc is not None and proc.poll() is None:
                os.killpg(proc.pid, signal.SIGINT if proc is view else signal.SIGKILL)
        if viewer is not None:
            viewer.close()
        try:
            view.wait(10)
        except subprocess.TimeoutExpired:
            os.killpg(view.pid, signal.SIGKILL)
        log.close()
        if chromium is not None:
            chromium.wait(10)
            shutil.rmtree(chromium.profile_dir, ignore_errors=True)
        node.destroy_node()
        rclpy.try_shutdown()
    os.unlink(log.name)  # kept when something failed: the error names it
    frames = [c["frames"] for c in status["cameras"]]
    top = dict(sorted(((k, v) for k, v in threads.items() if v >= 0.5), key=lambda kv: -kv[1]))
    result = {"camera_rate_hz": camera_rate, "cpu_percent_one_core": round(cpu, 1), "cpu_by_thread": top,
              "frames_shown": frames,
              "delivered": status["latency"]["delivered"]}
    if chromium is not None:
        result["display"] = {"to": "drawn in headless Chromium", **status["latency"]["displayed"]}
    else:
        lat = np.asarray(viewer.latencies[len(viewer.latencies) // 4:]) if viewer.latencies else np.zeros(0)
        result["display"] = {"to": "received by a polling client (no Chromium)", "n": int(lat.size)}
        if lat.size:
            result["display"].update(p50_ms=round(float(np.percentile(lat, 50)), 2),
                                     p99_ms=round(float(np.percentile(lat, 99)), 2))
    d = result["display"]
    say(f"{CAMERAS} cameras x {RATE_HZ:g} Hz 640x480, shown at {camera_rate:g} Hz each: web_view CPU {cpu:.1f}% of "
        f"one core; stamp -> {d['to']}: p50 {d.get('p50_ms', '?')} ms, p99 {d.get('p99_ms', '?')} ms "
        f"({d['n']} frames); stamp -> Rerun stream: p99 {result['delivered'].get('p99_ms', '?')} ms")
    return result


def bench_web(args, say) -> dict:
    seconds = 5.0 if args.quick else 15.0
    browser = not os.environ.get("VLA_BENCH_NO_BROWSER")
    result = {"bench": "web", "cameras": CAMERAS, "publish_rate_hz": RATE_HZ, "frame": "640x480 rgb8",
              "goal": {"p99_ms": 150, "cpu_percent_one_core": 15}}
    rates = (10.0,) if args.quick else (10.0, 30.0)
    for rate in rates:
        result[f"shown_{rate:g}hz"] = run_once(rate, seconds, browser, say)
    default = result["shown_10hz"]
    result["display_p99_ms"] = default["display"].get("p99_ms")
    result["cpu_percent_one_core"] = default["cpu_percent_one_core"]
    return result
