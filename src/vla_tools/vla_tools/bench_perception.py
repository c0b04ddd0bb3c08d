"""`vla bench perception`: camera-to-model-image cost, the naive way for comparison, sustained rate through
ROS for two VGA cameras, and instruction-embedding latency. The last line printed is one JSON object."""
from __future__ import annotations

import os
import shutil
import tempfile
import time
from pathlib import Path

import cv2
import numpy as np
from sensor_msgs.msg import CompressedImage, Image

from vla_core.contract import CameraSpec
from vla_perception.pipeline import CameraPipeline

VGA = (480, 640)
MODEL = (96, 96)


def _vga_message() -> Image:
    rng = np.random.default_rng(0)
    bgr = rng.integers(0, 256, (*VGA, 3), dtype=np.uint8)
    cv2.rectangle(bgr, (100, 100), (300, 260), (20, 180, 40), -1)
    return Image(height=VGA[0], width=VGA[1], encoding="bgr8", step=VGA[1] * 3, data=bgr.tobytes())


def _naive(msg: Image) -> np.ndarray:
    """The same conversion written the naive way: a copying decode of the message buffer, a separate
    full-size colour-swap copy, a float64 copy, the resize, and rounding back to uint8."""
    array = np.array(msg.data, dtype=np.uint8).reshape(msg.height, msg.width, 3)
    rgb = array[..., ::-1].copy()
    as_float = rgb.astype(np.float64)
    small = cv2.resize(as_float, (MODEL[1], MODEL[0]), interpolation=cv2.INTER_AREA)
    return np.clip(np.round(small), 0, 255).astype(np.uint8)


def _times_ms(fn, arg, n: int) -> np.ndarray:
    for _ in range(min(20, n)):
        fn(arg)
    out = np.empty(n)
    for i in range(n):
        t0 = time.perf_counter()
        fn(arg)
        out[i] = (time.perf_counter() - t0) * 1e3
    return out


def _summary(t: np.ndarray) -> dict:
    return {"p50_ms": round(float(np.percentile(t, 50)), 4), "p99_ms": round(float(np.percentile(t, 99)), 4)}


def bench_frames(n: int, say) -> dict:
    msg = _vga_message()
    cam = CameraSpec("top", "camera/top/image_raw", "", MODEL[0], MODEL[1], "rgb8")
    pipeline = CameraPipeline(cam)
    ours = _times_ms(pipeline.from_image, msg, n)
    naive = _times_ms(_naive, msg, max(20, n // 10))
    ok, jpg = cv2.imencode(".jpg", np.frombuffer(msg.data, np.uint8).reshape(*VGA, 3))
    compressed = _times_ms(pipeline.from_compressed, CompressedImage(format="jpeg", data=jpg.tobytes()), n // 2)
    s, z, c = _summary(ours), _summary(naive), _summary(compressed)
    ratio = z["p50_ms"] / s["p50_ms"]
    say(f"640x480 bgr8 Image -> 96x96 rgb8: p50 {s['p50_ms']:.3f} ms, p99 {s['p99_ms']:.3f} ms (goal p99 < 2 ms)")
    say(f"the naive way (copying decode, separate full-size copies, float64): p50 {z['p50_ms']:.2f} ms, "
        f"p99 {z['p99_ms']:.2f} ms: {ratio:.1f}x slower")
    say(f"640x480 JPEG CompressedImage -> 96x96 rgb8: p50 {c['p50_ms']:.3f} ms, p99 {c['p99_ms']:.3f} ms")
    return {"frame_640x480_to_96x96": s, "naive_640x480_to_96x96": z, "naive_over_ours_p50": round(ratio, 1),
            "jpeg_640x480_to_96x96": c}


CONTRACT = """
robot: bench_two_vga_cameras
fps: 30
cameras:
  left: {topic: camera/left/image_raw, height: 96, width: 96, encoding: bgr8}
  right: {topic: camera/right/image_raw, height: 96, width: 96, encoding: bgr8}
state: {topic: joint_states, joints: [j0]}
action: {topic: cmd_vel, type: geometry_msgs/msg/Twist, fields: [linear.x], low: [-1.0], high: [1.0]}
"""


def _cpu_seconds(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def bench_ros(seconds: float, say) -> dict:
    """Two 640x480 bgr8 cameras published at 30 Hz into the perception node (its own process)."""
    import rclpy
    from rclpy.executors import SingleThreadedExecutor

    from vla_bringup.bringup import Bringup, spec_lookup
    from vla_bringup.profile import load_profile, parse_overrides
    from vla_ros import node_qos
    from vla_ros.spinning import SpinThread

    tmp = Path(tempfile.mkdtemp(prefix="vla_bench_perception_"))
    (tmp / "contract.yaml").write_text(CONTRACT)
    ws = Path(os.environ.get("VLA_WS", Path.cwd()))
    (tmp / "profile.yaml").write_text(f"""
description: perception alone, two VGA cameras at 30 Hz
use_sim_time: false
manager: {{params: {ws / 'params' / 'lifecycle_manager.yaml'}}}
nodes:
  - name: perception
    package: vla_perception
    executable: perception
    params: [{ws / 'params' / 'perception.yaml'}]
""")
    sets = [f"perception.contract={tmp / 'contract.yaml'}", "perception.overlay=false"]
    profile = load_profile(str(tmp / "profile.yaml"), None, parse_overrides(sets), spec_lookup)
    bringup = Bringup(profile, echo=False, say=lambda m: None)
    received = {"left": [], "right": []}
    node = executor = spinner = None
    try:
        bringup.start(timeout=60.0)
        # The bench's own node on a single-threaded executor (as the nodes themselves are spun): rclpy's
        # multi-threaded executor, which Bringup's client uses, would add its own latency to every frame.
        node = rclpy.create_node("perception_bench_probe")
        executor = SingleThreadedExecutor()
        executor.add_node(node)
        spinner = SpinThread(executor).start()
        pubs = {c: node.create_publisher(Image, f"/camera/{c}/image_raw", node_qos.SENSOR_PUB) for c in received}
        for cam, sink in received.items():
            node.create_subscription(Image, f"/observation/images/{cam}",
                                     lambda m, s=sink: s.append((time.time(), m.header.stamp)), node_qos.SENSOR_PUB)
        deadline = time.monotonic() + 10
        while any(p.get_subscription_count() == 0 for p in pubs.values()) and time.monotonic() < deadline:
            time.sleep(0.05)
        msg = _vga_message()
        pid = next(c.process.pid for c in bringup.group.children if c.name == "perception")
        cpu0, sent, period = _cpu_seconds(pid), 0, 1 / 30
        t0 = time.monotonic()
        while time.monotonic() - t0 < seconds:
            stamp = time.time()
            msg.header.stamp.sec, msg.header.stamp.nanosec = int(stamp), int((stamp % 1) * 1e9)
            for p in pubs.values():
                p.publish(msg)
            sent += 1
            time.sleep(max(0.0, t0 + sent * period - time.monotonic()))
        elapsed = time.monotonic() - t0
        time.sleep(0.5)
        cpu = (_cpu_seconds(pid) - cpu0) / elapsed
    finally:
        if node is not None and (spinner is None or spinner.stop()):
            node.destroy_node()
        bringup.shutdown()
        shutil.rmtree(tmp, ignore_errors=True)
    out = {"sent_per_camera": sent, "seconds": round(elapsed, 2), "perception_cpu_fraction": round(cpu, 3)}
    for cam, frames in received.items():
        lat = np.array([(t - (s.sec + s.nanosec * 1e-9)) * 1e3 for t, s in frames]) if frames else np.zeros(1)
        out[cam] = {"received": len(frames), "rate_hz": round(len(frames) / elapsed, 1),
                    "latency_p50_ms": round(float(np.percentile(lat, 50)), 2),
                    "latency_p99_ms": round(float(np.percentile(lat, 99)), 2)}
        say(f"camera {cam}: {len(frames)}/{sent} frames in {elapsed:.1f} s = {len(frames) / elapsed:.1f} Hz, "
            f"publish-to-model-image latency p50 {out[cam]['latency_p50_ms']} ms, p99 {out[cam]['latency_p99_ms']} ms")
    say(f"perception process CPU: {cpu * 100:.0f}% of one core for two VGA cameras at 30 Hz")
    return out


def bench_language(n: int, say) -> dict:
    from vla_language.encoder import InstructionEncoder
    out = {}
    for runtime in ("onnx", "torch"):
        t0 = time.perf_counter()
        enc = InstructionEncoder(runtime=runtime)
        load = time.perf_counter() - t0
        cold = []
        for i in range(n):
            t0 = time.perf_counter()
            enc.encode(f"push the red cube onto the purple square, variant {i}")
            cold.append((time.perf_counter() - t0) * 1e3)
        cached = _times_ms(enc.encode, "push the red cube onto the purple square, variant 0", n * 10)
        out[runtime] = {"load_s": round(load, 2), "cold": _summary(np.array(cold)), "cached": _summary(cached)}
        say(f"language {runtime}: load {load:.2f} s, new instruction p50 {out[runtime]['cold']['p50_ms']:.2f} ms "
            f"p99 {out[runtime]['cold']['p99_ms']:.2f} ms, cached p50 {out[runtime]['cached']['p50_ms']:.4f} ms")
    return out


def bench_features(n: int, say) -> dict:
    try:
        from vla_perception.features import ImageFeatures
        features = ImageFeatures()
    except Exception as exc:  # noqa: BLE001 - optional: report why it was not measured
        say(f"image features not measured: {exc}")
        return {"skipped": str(exc)}
    rgb = np.random.default_rng(1).integers(0, 256, (*MODEL, 3), dtype=np.uint8)
    s = _summary(_times_ms(features, rgb, n))
    say(f"EfficientNet-Lite0 features of a 96x96 image (torch CPU, 1 thread): p50 {s['p50_ms']:.1f} ms, "
        f"p99 {s['p99_ms']:.1f} ms")
    return s


def bench_perception(args, say) -> dict:
    quick = getattr(args, "quick", False)
    result = {"bench": "perception"}
    result.update(bench_frames(300 if quick else 2000, say))
    result["features_efficientnet_lite0_96x96"] = bench_features(10 if quick else 50, say)
    result["ros_two_vga_cameras_30hz"] = bench_ros(3.0 if quick else 10.0, say)
    result["language"] = bench_language(10 if quick else 40, say)
    return result
