"""`vla bench recorder`: 30 Hz, one 640x480 rgb8 camera + joint states + the command, through real ROS topics
between processes, recorded by the real recorder node; in the same run an MCAP-only writer takes the same
stream for comparison. Reports frames missing (published vs in the dataset), recorder CPU (seconds of CPU per
second of stream, in % of one core), finalize time after the stop, MB/s written, and the MCAP figures.
"""
from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

CONTRACT = """robot: bench_arm
description: benchmark stream, one VGA camera, a 6-joint arm, a planar base command
fps: {fps}
cameras:
  top: {{topic: camera/top/image_raw, height: {height}, width: {width}, encoding: rgb8}}
state:
  topic: joint_states
  joints: [joint_1, joint_2, joint_3, joint_4, joint_5, joint_6]
  fields: [position, velocity]
action:
  topic: cmd_vel
  type: geometry_msgs/msg/Twist
  fields: [linear.x, linear.y, angular.z]
  low: [-1.0, -1.0, -1.0]
  high: [1.0, 1.0, 1.0]
"""


def _cpu_seconds(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def _dir_mb(path: Path) -> float:
    return sum(f.stat().st_size for f in path.rglob("*") if f.is_file()) / 1e6


def _wait(future, timeout: float):
    done = threading.Event()
    future.add_done_callback(lambda _: done.set())
    if not done.wait(timeout):
        raise RuntimeError(f"no answer within {timeout:g} s")
    return future.result()


def bench_recorder(args, say) -> dict:
    import rclpy
    from ament_index_python.packages import get_package_prefix
    from lifecycle_msgs.msg import Transition
    from lifecycle_msgs.srv import ChangeState
    from rclpy.action import ActionClient
    from rclpy.executors import MultiThreadedExecutor
    from std_srvs.srv import Trigger

    from vla_core.dataset import DatasetReader
    from vla_interfaces.action import RecordEpisode
    from vla_ros.spinning import SpinThread

    quick = getattr(args, "quick", False)
    fps, height, width = 30.0, 480, 640
    sim_seconds = 10.0 if quick else 300.0
    rtf = float(os.environ.get("VLA_BENCH_RTF", "1.5"))
    n_frames = int(sim_seconds * fps)
    work = Path(tempfile.mkdtemp(prefix="vla_bench_recorder_"))
    contract = work / "bench_arm.yaml"
    contract.write_text(CONTRACT.format(fps=int(fps), height=height, width=width))
    root, bag = work / "dataset", work / "mcap_only.mcap"
    recorder_exe = Path(get_package_prefix("vla_recorder")) / "lib" / "vla_recorder" / "recorder"
    procs: dict[str, subprocess.Popen] = {}
    env = dict(os.environ)

    def start(name, argv, pipe=False):
        out = subprocess.PIPE if pipe else open(work / f"{name}.log", "w")
        procs[name] = subprocess.Popen(argv, stdout=out, stderr=subprocess.STDOUT, text=True, env=env)
        return procs[name]

    say(f"{sim_seconds:g} s of {fps:g} Hz {width}x{height} rgb8 at {rtf:g}x real time; work dir {work}")
    start("recorder", [str(recorder_exe), "--ros-args", "-p", "use_sim_time:=true", "-p", f"contract:={contract}",
                       "-p", f"root:={root}", "-p", "follow_episode_events:=false", "-p", "start_timeout:=30.0",
                       "-p", "min_free_mb:=100.0", "-p", f"default_time_limit:={sim_seconds + 60}"])
    start("mcap", [sys.executable, "-m", "vla_recorder.mcap_bag", str(bag),
                   "camera/top/image_raw:sensor_msgs/msg/Image", "joint_states:sensor_msgs/msg/JointState",
                   "cmd_vel:geometry_msgs/msg/Twist", "teleop/intervention:vla_interfaces/msg/Intervention"])
    rclpy.init()
    node = rclpy.create_node(f"bench_recorder_{os.getpid()}")
    executor = MultiThreadedExecutor(num_threads=2)
    executor.add_node(node)
    spinner = SpinThread(executor).start()
    try:
        change = node.create_client(ChangeState, "/recorder/change_state")
        if not change.wait_for_service(timeout_sec=30):
            raise RuntimeError("the recorder did not start: " + (work / "recorder.log").read_text()[-2000:])
        for transition in (Transition.TRANSITION_CONFIGURE, Transition.TRANSITION_ACTIVATE):
            if not _wait(change.call_async(ChangeState.Request(transition=Transition(id=transition))), 30).success:
                raise RuntimeError("recorder transition failed; see its output")
        publisher = start("publisher", [sys.executable, "-m", "vla_recorder.bench_publisher", "--fps", str(fps),
                                        "--rtf", str(rtf), "--frames", str(n_frames), "--height", str(height),
                                        "--width", str(width), "--wait-subscribers", "2"], pipe=True)
        action = ActionClient(node, RecordEpisode, "/recorder/record_episode")
        action.wait_for_server(timeout_sec=30)
        handle = _wait(action.send_goal_async(RecordEpisode.Goal(instruction="pick up the red block")), 30)
        if not handle.accepted:
            raise RuntimeError("the recorder refused the episode")
        result_future = handle.get_result_async()
        t0, cpu0 = time.monotonic(), _cpu_seconds(procs["recorder"].pid)
        mcap_cpu0 = _cpu_seconds(procs["mcap"].pid)
        line = ""
        while not line.startswith("{"):  # the publisher's line once it has sent every frame
            line = publisher.stdout.readline()
            if not line and publisher.poll() is not None:
                raise RuntimeError("the publisher exited early")
            if result_future.done():
                raise RuntimeError(f"the episode ended early: {result_future.result().result.message}")
        published = json.loads(line)
        t_stream = time.monotonic() - t0
        time.sleep(0.3)  # let the last messages land before the stop
        stop_at = time.monotonic()
        cpu1, mcap_cpu1 = _cpu_seconds(procs["recorder"].pid), _cpu_seconds(procs["mcap"].pid)
        save = node.create_client(Trigger, "/recorder/save")
        save.wait_for_service(timeout_sec=10)
        _wait(save.call_async(Trigger.Request()), 30)
        result = _wait(result_future, 60).result
        finalize_s = time.monotonic() - stop_at
        if not result.success:
            raise RuntimeError(f"episode not saved: {result.message}")
        reader = DatasetReader(root, decode_images=False)
        episode = reader.episode(0)
        k0 = round(episode["start_stamp"] * fps)
        expected = published["last_k"] - k0 + 1
        data = reader.episode_frames(0)
        recorded = sorted({round(episode["start_stamp"] * fps + t * fps) for t in data["timestamp"].astype(float)})
        missing = expected - len(recorded)
        dataset_mb = _dir_mb(root)
        recorded_sim_s = expected / fps
    finally:
        for name in ("publisher", "mcap", "recorder"):
            p = procs.get(name)
            if p is not None and p.poll() is None:
                p.send_signal(2)
        for p in procs.values():
            try:
                p.wait(20)
            except subprocess.TimeoutExpired:
                p.kill()
        if spinner.stop():
            node.destroy_node()
        if rclpy.ok():
            rclpy.shutdown()
    mcap_out = (work / "mcap.log").read_text()
    saved_line = next((ln for ln in (work / "recorder.log").read_text().splitlines() if "saved:" in ln), "")
    mcap_stats = json.loads(next((ln for ln in mcap_out.splitlines() if ln.startswith("{")), "{}") or "{}")
    mcap_mb = bag.stat().st_size / 1e6 if bag.exists() else 0.0
    cpu_per_stream_s = (cpu1 - cpu0) / max(t_stream * rtf, 1e-9)
    report = {
        "bench": "recorder", "quick": quick, "fps": fps, "camera": f"{width}x{height} rgb8",
        "sim_seconds": round(recorded_sim_s, 1), "real_time_factor": rtf, "wall_seconds": round(t_stream, 1),
        "frames_published": expected, "frames_in_dataset": len(recorded), "frames_missing": missing,
        "late_frames": result.late_frames, "dropped_frames": result.dropped_frames,
        "recorder_cpu_percent_of_one_core": round(100 * cpu_per_stream_s, 1),
        "recorder_cpu_percent_wall": round(100 * (cpu1 - cpu0) / max(t_stream, 1e-9), 1),
        "finalize_s": round(finalize_s, 2),
        "dataset_mb": round(dataset_mb, 1), "dataset_mb_per_s": round(dataset_mb / max(t_stream, 1e-9), 2),
        "dataset_mb_per_stream_s": round(dataset_mb / recorded_sim_s, 3),
        "mcap_mb": round(mcap_mb, 1), "mcap_mb_per_s": round(mcap_mb / max(t_stream, 1e-9), 2),
        "mcap_messages": mcap_stats.get("mcap_messages"),
        "mcap_cpu_percent_of_one_core": round(100 * (mcap_cpu1 - mcap_cpu0) / max(t_stream * rtf, 1e-9), 1),
        "goals_met": {"zero_missing": missing == 0, "cpu_le_60": cpu_per_stream_s <= 0.60,
                      "finalize_le_2s": finalize_s <= 2.0},
    }
    say(saved_line.split("]: ", 1)[-1])
    say(f"{len(recorded)}/{expected} frames in the dataset ({missing} missing), recorder CPU "
        f"{report['recorder_cpu_percent_of_one_core']}% of a core per stream second, finalize {finalize_s:.2f} s, "
        f"dataset {dataset_mb:.1f} MB vs MCAP {mcap_mb:.1f} MB")
    shutil.rmtree(work, ignore_errors=True)
    return report
