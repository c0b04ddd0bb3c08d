"""`vla bench policy`: tick latency on each engine, hot-swaps under load, and the gap a restart causes.

1. The default-sized policy (vla_trainer's 'mlp', ~1.9M parameters, 96x96 image, 384-d instruction), one
   control tick (feeds, inference, chunk step) paced at 30 Hz, on onnxruntime CPU and on torch eager (both one
   thread), in the same run.
2. The policy node in its own process at 50 Hz, fed camera, state and instruction over ROS, asked to hot-swap
   100 times: ticks without a command (the node's counters), the largest gap between commands received, and
   the time of each ~/load_policy call.
3. The same node restarted through its lifecycle (cleanup, configure, activate): the gap in commands.
"""
from __future__ import annotations

import tempfile
import threading
import time
from pathlib import Path

import numpy as np
import yaml

STATE = ["gantry_x.position", "gantry_x.velocity", "gantry_y.position", "gantry_y.velocity"]
ENCODER = "sentence-transformers/all-MiniLM-L6-v2"


def _percentiles(samples_ms) -> dict:
    a = np.asarray(samples_ms)
    return {"p50_ms": round(float(np.percentile(a, 50)), 3), "p99_ms": round(float(np.percentile(a, 99)), 3)}


def _contract(tmp: Path, fps: float) -> Path:
    from vla_core.paths import workspace_path
    data = yaml.safe_load(workspace_path("params/robots/tabletop_sim.yaml").read_text())
    data["fps"] = fps
    path = tmp / f"contract_{int(fps)}hz.yaml"
    path.write_text(yaml.safe_dump(data))
    return path


def _export(models: Path, version: str, fps: float, seed: int):
    import torch
    from vla_trainer.export import export_artifact
    from vla_trainer.policies import make_policy
    torch.manual_seed(seed)
    return export_artifact(make_policy("mlp"), models, "bench", version, fps=fps, state_names=STATE,
                           action_names=["vx", "vy"], encoder_id=ENCODER, execution="temporal_ensemble")[0]


def tick_latency(models: Path, contract_path: Path, ticks: int, say) -> dict:
    import torch
    from vla_core.contract import RobotContract
    from vla_policy.chunking import ChunkExecutor
    from vla_policy.inputs import InputCache
    from vla_policy.runtime import load_policy
    from vla_trainer.policies import make_policy

    contract = RobotContract.from_yaml(contract_path)
    policy = load_policy("bench/a", models, contract, ENCODER, ["onnxruntime-cpu"], threads=1)
    cache = InputCache()
    rng = np.random.default_rng(0)
    cache.put("observation.images.top", rng.integers(0, 256, (96, 96, 3), dtype=np.uint8), 0.0)
    cache.put("observation.state", rng.standard_normal(4).astype(np.float32), 0.0)
    cache.put("observation.language", rng.standard_normal(384).astype(np.float32), 0.0)
    torch.set_num_threads(1)
    torch.manual_seed(1)
    model = make_policy("mlp").eval()

    def torch_infer(feeds):
        with torch.no_grad():
            return model({"top": torch.from_numpy(feeds["image_top"])}, torch.from_numpy(feeds["state"]),
                         torch.from_numpy(feeds["language"])).numpy()[0]

    results = {}
    for engine, infer in (("onnxruntime_cpu", policy.infer), ("torch_eager", torch_infer)):
        executor = ChunkExecutor(policy.chunk_size, policy.action_dim, "temporal_ensemble")
        samples, period, next_t = [], 1 / 30, time.perf_counter()
        for tick in range(ticks):
            next_t += period
            t0 = time.perf_counter()
            executor.push(tick, infer(cache.feeds(policy.input_names)))
            executor.action(tick)
            samples.append((time.perf_counter() - t0) * 1e3)
            time.sleep(max(0.0, next_t - time.perf_counter()))
        results[engine] = _percentiles(samples)
        say(f"tick at 30 Hz, {engine}: p50 {results[engine]['p50_ms']:.2f} ms, p99 {results[engine]['p99_ms']:.2f} ms")
    return results


def swaps_and_restart(tmp: Path, models: Path, contract_path: Path, swaps: int, say) -> dict:
    from geometry_msgs.msg import Twist
    from sensor_msgs.msg import Image, JointState
    from vla_bringup.bringup import Bringup, spec_lookup
    from vla_bringup.manager_core import Command
    from vla_bringup.profile import load_profile, parse_overrides
    from vla_interfaces.msg import InstructionEmbedding, PolicyStatus
    from vla_interfaces.srv import LoadPolicy, ManageNodes
    from vla_ros import node_qos
    from vla_ros.convert import sent_time

    profile_path = tmp / "policy_bench.yaml"
    profile_path.write_text(yaml.safe_dump({
        "description": "policy node alone, fed by the benchmark", "use_sim_time": False,
        "manager": {"params": "lifecycle_manager.yaml"},
        "nodes": [{"name": "policy", "package": "vla_policy", "executable": "policy", "params": ["policy.yaml"]}]}))
    sets = [f"policy.models_dir={models}", f"policy.contract={contract_path}", "policy.artifact=bench/a",
            "policy.engines=[onnxruntime-cpu]"]
    bringup = Bringup(load_profile(str(profile_path), None, parse_overrides(sets), spec_lookup), echo=False,
                      say=lambda m: None)
    commands: list[float] = []
    statuses: list = []
    stop = threading.Event()
    try:
        bringup.start(timeout=120.0)
        node = bringup.node
        # Gaps are measured on the publisher's send time (DDS source timestamp), not on when this process,
        # busy feeding the node, got around to receiving.
        node.create_subscription(Twist, "/policy/cmd_vel",
                                 lambda m, info: commands.append((time.monotonic(), sent_time(info))),
                                 node_qos.COMMAND)
        node.create_subscription(PolicyStatus, "/policy/status", statuses.append, 10)
        emb = node.create_publisher(InstructionEmbedding, "/instruction/embedding", node_qos.LATCHED)
        emb.publish(InstructionEmbedding(text="push the red block into the purple zone", encoder_id=ENCODER,
                                         embedding=[0.05] * 384))
        image_pub = node.create_publisher(Image, "/observation/images/top", node_qos.SENSOR_PUB)
        joint_pub = node.create_publisher(JointState, "/joint_states", node_qos.SENSOR_PUB)
        pixels = np.random.default_rng(0).integers(0, 256, (96, 96, 3), dtype=np.uint8).tobytes()

        def feed():
            while not stop.is_set():
                stamp = node.get_clock().now().to_msg()
                img = Image(height=96, width=96, encoding="rgb8", step=288, data=pixels)
                img.header.stamp = stamp
                js = JointState(name=["gantry_x", "gantry_y"], position=[0.0, 0.0], velocity=[0.0, 0.0])
                js.header.stamp = stamp
                image_pub.publish(img)
                joint_pub.publish(js)
                time.sleep(0.02)
        threading.Thread(target=feed, daemon=True).start()
        load = node.create_client(LoadPolicy, "/policy/load_policy")
        load.wait_for_service(timeout_sec=10.0)
        deadline = time.monotonic() + 20
        while len(commands) < 50 and time.monotonic() < deadline:
            time.sleep(0.05)
        if len(commands) < 50:
            raise RuntimeError("the policy node proposed no commands; is it fed?")
        # Steady state first: the same node and inputs, no swaps (the baseline for the figures below).
        steady0 = statuses[-1]
        time.sleep(5.0)
        steady1 = statuses[-1]
        steady_ticks = steady1.ticks - steady0.ticks
        steady_missed = steady_ticks - (steady1.proposed - steady0.proposed)
        say(f"steady 50 Hz without swaps: {steady_missed} of {steady_ticks} ticks without a command")
        first = statuses[-1]
        t_start = time.monotonic()
        swap_ms = []
        for i in range(swaps):
            done = threading.Event()
            t0 = time.perf_counter()
            future = load.call_async(LoadPolicy.Request(artifact="bench/b" if i % 2 == 0 else "bench/a"))
            future.add_done_callback(lambda _: done.set())
            if not done.wait(30) or not future.result().success:
                raise RuntimeError(f"swap {i} failed: {future.result().message if future.done() else 'timeout'}")
            swap_ms.append((time.perf_counter() - t0) * 1e3)
            if (i + 1) % 20 == 0:
                say(f"  {i + 1}/{swaps} swaps")
        time.sleep(0.6)
        last = statuses[-1]
        # The node reports the largest interval between two commands it sent (a receiver may lose samples of
        # a keep-last-1 command topic and would see gaps the node never made).
        max_gap = last.max_command_gap_ms * 1e-3
        ticks = last.ticks - first.ticks
        missed = ticks - (last.proposed - first.proposed)

        # A lifecycle restart for comparison: reset (deactivate, cleanup) and start up (configure, activate).
        manage = node.create_client(ManageNodes, "/lifecycle_manager/manage_nodes")
        before = len(commands)
        for command in (Command.RESET, Command.STARTUP):
            done = threading.Event()
            future = manage.call_async(ManageNodes.Request(command=int(command)))
            future.add_done_callback(lambda _: done.set())
            done.wait(60)
        deadline = time.monotonic() + 20
        while len(commands) <= before + 2 and time.monotonic() < deadline:
            time.sleep(0.05)
        restart_gap = max(np.diff(np.array([sent for _, sent in commands[before - 1:]])))
    finally:
        stop.set()
        bringup.shutdown()
    period = 1 / 50
    return {"steady_ticks": int(steady_ticks), "steady_missed_ticks": int(steady_missed),
            "swaps": swaps, "ticks_during_swaps": int(ticks), "missed_ticks": int(missed),
            "max_gap_ms": round(max_gap * 1e3, 2), "max_gap_periods": round(max_gap / period, 2),
            "swap_time": _percentiles(swap_ms), "restart_gap_ms": round(float(restart_gap) * 1e3, 1),
            "restart_gap_periods": round(float(restart_gap) / period, 1)}


def bench_policy(args, say) -> dict:
    from vla_trainer.policies import make_policy, parameter_count
    result = {"bench": "policy", "parameters": parameter_count(make_policy("mlp"))}
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        models = tmp / "models"
        for version, seed in (("a", 1), ("b", 2)):
            _export(models, version, fps=30.0, seed=seed)
        result["tick_30hz"] = tick_latency(models, _contract(tmp, 30.0), 60 if args.quick else 300, say)
        models50 = tmp / "models50"
        for version, seed in (("a", 1), ("b", 2)):
            _export(models50, version, fps=50.0, seed=seed)
        swaps = 10 if args.quick else 100
        say(f"policy node at 50 Hz, {swaps} hot-swaps through ~/load_policy ...")
        result["hot_swap_50hz"] = swaps_and_restart(tmp, models50, _contract(tmp, 50.0), swaps, say)
        hs = result["hot_swap_50hz"]
        say(f"hot-swap: {hs['missed_ticks']} ticks without a command in {hs['ticks_during_swaps']}, max gap "
            f"{hs['max_gap_ms']:.1f} ms ({hs['max_gap_periods']:.2f} periods), swap call p50 "
            f"{hs['swap_time']['p50_ms']:.0f} ms / p99 {hs['swap_time']['p99_ms']:.0f} ms; a lifecycle restart "
            f"leaves a {hs['restart_gap_ms']:.0f} ms gap ({hs['restart_gap_periods']:.0f} periods)")
    return result
