"""`vla bench NAME`: benchmarks that print figures; the last line is one JSON object.

Benchmarks register under the 'vla.bench' entry points (``name = module:function``, all listed in this
package's setup.py); a function takes the parsed arguments (``args.quick`` asks for fewer iterations) and
``say`` (progress lines) and returns a dict. This module holds the simulator's benchmark, ``sim``.
"""
from __future__ import annotations

import json
import threading
import time

import numpy as np

from importlib.metadata import entry_points


def benches() -> dict:
    """Registered benchmarks by name."""
    return {ep.name: ep for ep in entry_points(group="vla.bench")}


def _env_rate(height: int, width: int, seconds: float) -> float:
    from vla_sim.backends import make_backend
    from vla_sim.sim_node import backend_config
    from vla_sim.sim_params import SIM_ROBOT_PARAMS
    from vla_core.params import defaults
    params = dict(defaults(SIM_ROBOT_PARAMS), image_height=height, image_width=width, max_episode_steps=10**6)
    backend = make_backend(backend_config(params))
    rng = np.random.default_rng(0)
    backend.reset(0)
    lo, hi = backend.action_low, backend.action_high
    steps, t0 = 0, time.perf_counter()
    while time.perf_counter() - t0 < seconds:
        backend.step(rng.uniform(lo, hi))
        steps += 1
    rate = steps / (time.perf_counter() - t0)
    backend.close()
    return rate


def bench_sim(args, say) -> dict:
    seconds = 1.0 if args.quick else 3.0
    result = {"bench": "sim"}
    for h, w in ((96, 96), (480, 640)):
        rate = _env_rate(h, w, seconds)
        result[f"env_steps_per_s_{w}x{h}"] = round(rate, 1)
        say(f"environment step+render at {w}x{h}: {rate:,.0f} steps/s ({rate / 10:,.0f}x real time at 10 Hz)")

    # The node at full speed, through ROS: the expert drives, /clock measures simulated time.
    for h, w in ((96, 96), (480, 640)):
        factor, up = _node_rate(h, w, seconds)
        if (h, w) == (96, 96):
            result["up_to_active_s"] = round(up, 3)
            say(f"`vla up sim` to all nodes active: {up:.2f} s")
        result[f"node_real_time_factor_{w}x{h}"] = round(factor, 1)
        say(f"sim-robot node as fast as it can ({w}x{h}, expert driving, measured on /clock): "
            f"{factor:.1f}x real time ({factor * 10:.0f} steps/s)")
    return result


def _node_rate(height: int, width: int, seconds: float) -> tuple[float, float]:
    """(achieved real-time factor, seconds from start to all active) of the sim profile at full speed."""
    from rosgraph_msgs.msg import Clock
    from vla_bringup.bringup import Bringup, spec_lookup
    from vla_bringup.profile import load_profile, parse_overrides
    from vla_ros import node_qos

    sets = ["sim_robot.real_time_factor=10000", f"sim_robot.image_height={height}", f"sim_robot.image_width={width}"]
    profile = load_profile("sim", None, parse_overrides(sets), spec_lookup)
    bringup = Bringup(profile, echo=False, say=lambda m: None)
    clock: list[tuple[float, float]] = []
    try:
        up = bringup.start(timeout=120.0)
        bringup.node.create_subscription(
            Clock, "/clock", lambda m: clock.append((time.monotonic(), m.clock.sec + m.clock.nanosec * 1e-9)),
            node_qos.CLOCK)
        time.sleep(1.0 + 2 * seconds)
        failure = bringup.supervise(threading.Event(), duration=0.0)
        if failure:
            raise RuntimeError(failure)
    finally:
        bringup.shutdown()
    window = [c for c in clock if c[0] >= clock[0][0] + 0.5] if clock else []
    if len(window) < 2:
        raise RuntimeError("no /clock messages received from the sim robot")
    return (window[-1][1] - window[0][1]) / (window[-1][0] - window[0][0]), up


def run_bench(name: str, args, say=print) -> int:
    result = benches()[name].load()(args, say)
    print(json.dumps(result), flush=True)
    return 0
