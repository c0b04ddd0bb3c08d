"""Measurements of the arm environment: step + render rate, and the scripted expert's success.

Run: ``python -m vla_sim.envs.arm_bench --expert-seeds 200`` (the last line
printed is one JSON object). Rates are given per wall-clock second and per
CPU second of this process (all its threads, Mesa's rasteriser included): on
a shared machine the second is the fairer figure of the work a step costs.
``realtime_factor`` = simulated seconds per wall-clock second.
"""

from __future__ import annotations

import argparse
import json
import time

import numpy as np

from vla_core.stats import wilson_interval
from vla_sim.arm_expert import ArmScriptedExpert
from vla_sim.envs.arm import ArmPickPlaceEnv


def step_rate(image_size: tuple[int, int], steps: int = 100, seed: int = 0) -> dict[str, float]:
    """Steps per second of ``env.step`` (physics + both cameras rendered) at ``image_size``.

    The arm follows the scripted expert, so contacts and motion are those of a
    real episode; only ``env.step`` is timed (not the expert).
    """
    env = ArmPickPlaceEnv(image_size=image_size, max_episode_steps=None)
    expert = ArmScriptedExpert()
    try:
        env.reset(seed=seed)
        env.step(expert.act(env.privileged_state()))  # GL context creation is not a step
        wall = cpu = 0.0
        done = 0
        while done < steps:
            action = expert.act(env.privileged_state())
            w0, c0 = time.perf_counter(), time.process_time()
            _, _, terminated, truncated, _ = env.step(action)
            wall += time.perf_counter() - w0
            cpu += time.process_time() - c0
            done += 1
            if terminated or truncated:
                seed += 1
                env.reset(seed=seed)
                expert.reset()
        return {
            "steps_per_s": done / wall,
            "steps_per_cpu_s": done / cpu if cpu > 0 else float("inf"),
            "realtime_factor": done * env.dt / wall,
        }
    finally:
        env.close()


def expert_success(seeds: range, noise_std: float = 0.0, **env_kwargs) -> dict[str, float]:
    """Success of the scripted expert over ``seeds`` (small images: only the expert matters)."""
    env = ArmPickPlaceEnv(image_size=(16, 16), **env_kwargs)
    expert = ArmScriptedExpert(noise_std=noise_std, seed=0)
    wins, lengths, failed = 0, [], []
    try:
        for seed in seeds:
            env.reset(seed=seed)
            expert.reset()
            for t in range(1, 10_000):
                _, _, terminated, truncated, info = env.step(expert.act(env.privileged_state().copy()))
                if terminated or truncated:
                    break
            wins += bool(info["is_success"])
            lengths.append(t)
            if not info["is_success"]:
                failed.append(seed)
    finally:
        env.close()
    lo, hi = wilson_interval(wins, len(seeds))
    return {
        "episodes": len(seeds), "success_rate": wins / len(seeds), "ci95": [lo, hi],
        "mean_steps": float(np.mean(lengths)), "failed_seeds": failed, "noise_std": noise_std,
    }


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rate-steps", type=int, default=100, help="timed steps per image size")
    parser.add_argument("--expert-seeds", type=int, default=20, help="seeds 0..N-1 for the expert (0: skip)")
    parser.add_argument("--noise-std", type=float, default=0.0, help="expert's DART noise (rad)")
    args = parser.parse_args(argv)
    result: dict[str, object] = {}
    if args.rate_steps > 0:
        for size in ((96, 96), (480, 640)):
            rate = step_rate(size, steps=args.rate_steps)
            result[f"step_render_2cam_{size[1]}x{size[0]}"] = rate
            print(f"{size[1]}x{size[0]}, 2 cameras: {rate['steps_per_s']:.1f} steps/s wall, "
                  f"{rate['steps_per_cpu_s']:.1f} per CPU-s, {rate['realtime_factor']:.1f}x real time", flush=True)
    if args.expert_seeds > 0:
        res = expert_success(range(args.expert_seeds), noise_std=args.noise_std)
        result["expert"] = res
        print(f"expert: {res['success_rate']:.3f} on {res['episodes']} seeds "
              f"(95% CI {res['ci95'][0]:.3f}..{res['ci95'][1]:.3f}), {res['mean_steps']:.1f} steps", flush=True)
    print(json.dumps(result))


if __name__ == "__main__":
    main()
