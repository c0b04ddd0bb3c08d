"""`vla demo`: bring the simulated robot up, let the scripted expert drive N episodes through the ROS
graph, and report the success rate and timings."""
from __future__ import annotations

import json
import threading
import time

from vla_bringup.bringup import Bringup, BringupError, spec_lookup
from vla_bringup.profile import load_profile, parse_overrides
from vla_interfaces.msg import EpisodeEvent
from vla_ros import node_qos


def run_demo(args, say=print) -> int:
    t_start = time.monotonic()
    sets = [f"sim_robot.real_time_factor={args.real_time_factor}", f"sim_robot.seed={args.seed}", *(args.set or [])]
    profile = load_profile(args.profile, None, parse_overrides(sets), spec_lookup)
    bringup = Bringup(profile, echo=False, say=lambda m: None)
    ends: list[EpisodeEvent] = []
    done = threading.Event()

    def on_event(msg: EpisodeEvent) -> None:
        if msg.event in (EpisodeEvent.SUCCESS, EpisodeEvent.TIMEOUT) and len(ends) < args.episodes:
            ends.append(msg)
            rate = sum(e.event == EpisodeEvent.SUCCESS for e in ends) / len(ends)
            mark = "success" if msg.event == EpisodeEvent.SUCCESS else "timeout"
            say(f"episode {len(ends):3d}/{args.episodes}  seed {msg.seed:5d}  {mark:7s}  "
                f"{msg.sim_time:5.1f} s sim  running success {rate:6.1%}  \"{msg.instruction}\"")
            if len(ends) >= args.episodes:
                done.set()

    say(f"bringing up profile '{profile.name}' ({', '.join(n.name for n in profile.nodes)}); logs: {bringup.log_dir}")
    failure = None
    try:
        up = bringup.start(timeout=120.0)
        say(f"all nodes active in {up:.2f} s; the scripted expert drives {args.episodes} episodes at "
            f"{args.real_time_factor:g}x real time")
        t_episodes = time.monotonic()
        bringup.node.create_subscription(EpisodeEvent, "/episode/events", on_event, node_qos.EVENTS)
        stop = threading.Event()
        watcher = threading.Thread(target=lambda: stop.set() if done.wait(args.timeout) or True else None,
                                   daemon=True)
        watcher.start()
        failure = bringup.supervise(stop)
        episodes_s = time.monotonic() - t_episodes
        if failure is None and not done.is_set():
            failure = f"only {len(ends)} of {args.episodes} episodes finished within {args.timeout:g} s"
    except BringupError as exc:
        failure, up, episodes_s = str(exc), float("nan"), 0.0
    finally:
        t_down = time.monotonic()
        bringup.shutdown()
        down = time.monotonic() - t_down
    if failure:
        say(f"error: vla demo --expert-only failed: {failure} (node logs: {bringup.log_dir})")
        return 1
    successes = sum(e.event == EpisodeEvent.SUCCESS for e in ends)
    sim_seconds = sum(e.sim_time for e in ends)
    report = {
        "demo": "scripted-expert", "profile": profile.name, "episodes": len(ends), "successes": successes,
        "success_rate": round(successes / len(ends), 4), "mean_episode_sim_s": round(sim_seconds / len(ends), 2),
        "achieved_real_time_factor": round(sim_seconds / max(episodes_s, 1e-9), 2),
        "bringup_s": round(up, 2), "episodes_s": round(episodes_s, 2), "shutdown_s": round(down, 2),
        "total_s": round(time.monotonic() - t_start, 2),
    }
    say(f"success rate {successes}/{len(ends)} = {report['success_rate']:.1%} on seeds {args.seed}..; "
        f"bring-up {up:.1f} s, episodes {episodes_s:.1f} s ({report['achieved_real_time_factor']:.1f}x real time), "
        f"shutdown {down:.1f} s")
    print(json.dumps(report), flush=True)
    return 0
