"""Offline RL against behaviour cloning on mixed-quality data (docs/offline_rl.md):

    python -m vla_trainer.bench_offline_rl --expert 50 --noisy 200 --minutes 15 --episodes 100

1. ``--expert`` scripted demonstrations on the hard tabletop task (successes only, the demo's DART noise), then
   ``--noisy`` episodes of the same expert with ``--noise`` m/s on its commands, kept whether they succeed or not
   (their success labels are the rewards), in one dataset.
2. Each of ``--algorithms`` trains the tabletop ACT recipe (params/train/tabletop_act.yaml) for the same wall time
   (``--minutes``, one torch thread, one run after another; the CPU seconds are reported too), is exported and is
   evaluated in the sim on ``--episodes`` held-out seeds (from 100000) with held-out phrasings.

Prints one line per run and, last, one JSON object with successes and 95% Wilson intervals.
"""
from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time
from pathlib import Path

import torch

from vla_core.stats import wilson_interval

PRESET = "tabletop_hard"


def record(root: Path, expert: int, noisy: int, noise: float, say) -> dict:
    from vla_core.contract import RobotContract
    from vla_core.paths import workspace_path
    from vla_sim.demos import DEMO_NOISE, record_scripted_demos
    contract = RobotContract.from_yaml(workspace_path("params/robots/tabletop_sim.yaml"))
    t0 = time.monotonic()
    # With the environment state: the recipe's auxiliary loss (policy.aux_env_state) trains on it.
    good = record_scripted_demos(root, contract, PRESET, expert, seed_start=0, noise_std=DEMO_NOISE,
                                 environment_state=True)
    mixed = record_scripted_demos(root, contract, PRESET, noisy, seed_start=good["next_seed"], only_successes=False,
                                  noise_std=noise, environment_state=True)
    from vla_core.dataset import DatasetReader
    reader = DatasetReader(root, decode_images=False)
    successes = sum(bool(reader.episode(i)["success"]) for i in range(good["episodes"], reader.num_episodes))
    out = {"expert": good["episodes"], "noisy": mixed["episodes"], "noisy_successes": successes,
           "noise_m_per_s": noise, "frames": good["frames"] + mixed["frames"],
           "seconds": round(time.monotonic() - t0, 1)}
    say(f"data: {out}")
    return out


def run(algorithm: str, tmp: Path, minutes: float, episodes: int, say) -> dict:
    from vla_trainer.bench import _recipe_config
    from vla_trainer.evaluate import evaluate_artifact
    from vla_trainer.train import Trainer
    cfg = _recipe_config(tmp, algorithm, (f"algorithm.type={algorithm}", "train.max_steps=0",
                                          f"train.time_budget_s={minutes * 60:g}", "train.threads=1"))
    load = [round(x, 2) for x in os.getloadavg()]
    t0, cpu0 = time.monotonic(), time.process_time()
    trained = Trainer(cfg).run()
    train_s, cpu_s = time.monotonic() - t0, time.process_time() - cpu0
    ev = evaluate_artifact(trained["artifact"], PRESET, episodes, 100_000, "heldout", models_dir=tmp / "models")
    low, high = wilson_interval(ev["successes"], episodes)
    out = {"steps": trained["steps"], "train_s": round(train_s, 1), "train_cpu_s": round(cpu_s, 1),
           "load_at_start": load, "successes": ev["successes"], "episodes": episodes,
           "success": round(ev["success_rate"], 4), "ci95": [round(low, 4), round(high, 4)]}
    say(f"{algorithm}: {out}")
    return out


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--expert", type=int, default=50)
    parser.add_argument("--noisy", type=int, default=200)
    parser.add_argument("--noise", type=float, default=1.0, help="m/s on the noisy episodes' commands")
    parser.add_argument("--minutes", type=float, default=15.0, help="training wall time per algorithm")
    parser.add_argument("--episodes", type=int, default=100, help="held-out evaluation seeds")
    parser.add_argument("--algorithms", default="bc,iql,cql,td3bc")
    args = parser.parse_args(argv)
    torch.set_num_threads(1)

    def say(text: str) -> None:
        print(text, file=sys.stderr, flush=True)
    with tempfile.TemporaryDirectory(prefix="vla-bench-offline-rl-") as d:
        tmp = Path(d)
        result = {"preset": PRESET, "data": record(tmp / "demos", args.expert, args.noisy, args.noise, say),
                  "minutes": args.minutes, "runs": {}}
        for algorithm in args.algorithms.split(","):
            result["runs"][algorithm] = run(algorithm, tmp, args.minutes, args.episodes, say)
    print(json.dumps(result), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
