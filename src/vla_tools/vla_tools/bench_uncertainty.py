"""`vla bench uncertainty`: what an ensemble's uncertainty costs per control tick.

The tabletop recipe's ACT (params/train/tabletop_act.yaml's policy: chunk 5, image_downsample 2, re-planning
every tick) exported twice from the same seed, with one action head and with ``ensemble_heads`` K (5), each loaded
as the policy node loads it (onnxruntime CPU, one thread). One control tick is what the node's tick runs: the
runner's step from a fresh observation (feeds, inference, chunk step) and, for the ensemble, its uncertainty and
the help monitor's update. Each 10 Hz period runs one tick of each policy, in alternating order, so machine
load and the wake-up after the period's sleep fall on both alike. Untrained weights: the latency does not depend on what the policy learned.
"""
from __future__ import annotations

import tempfile
import time
from pathlib import Path

import numpy as np

STATE = ["gantry_x.position", "gantry_x.velocity", "gantry_y.position", "gantry_y.velocity"]
ENCODER = "sentence-transformers/all-MiniLM-L6-v2"


def _percentiles(samples_ms) -> dict:
    a = np.asarray(samples_ms)
    return {"p50_ms": round(float(np.percentile(a, 50)), 3), "p99_ms": round(float(np.percentile(a, 99)), 3),
            "mean_ms": round(float(a.mean()), 3)}


def measure(ticks: int, heads: int, say) -> dict:
    import torch
    from vla_core.contract import RobotContract
    from vla_core.paths import workspace_path
    from vla_policy.runner import PolicyRunner
    from vla_policy.runtime import load_policy
    from vla_policy.uncertainty import HelpMonitor
    from vla_trainer.export import export_artifact
    from vla_trainer.policies import make_policy

    torch.set_num_threads(1)
    contract = RobotContract.from_yaml(workspace_path("params/robots/tabletop_sim.yaml"))
    recipe = dict(chunk_size=5, image_downsample=2)
    with tempfile.TemporaryDirectory() as tmp:
        models = Path(tmp) / "models"
        runners = {}
        for label, k in (("one_head", 0), (f"ensemble_{heads}", heads)):
            torch.manual_seed(0)
            policy = make_policy("act", **recipe, ensemble_heads=k)
            export_artifact(policy, models, "bench", label, fps=contract.fps, state_names=STATE,
                            action_names=["vx", "vy"], encoder_id=ENCODER, execution="receding_horizon",
                            receding_steps=1)
            runners[label] = PolicyRunner(load_policy(f"bench/{label}", models, contract, ENCODER,
                                                      ["onnxruntime-cpu"], threads=1))
        rng = np.random.default_rng(0)
        observations = [{"observation.images.top": rng.integers(0, 256, (96, 96, 3), dtype=np.uint8),
                         "observation.state": rng.standard_normal(4).astype(np.float32),
                         "observation.language": rng.standard_normal(384).astype(np.float32)} for _ in range(8)]
        help = HelpMonitor(threshold=1.0)
        samples: dict[str, list[float]] = {label: [] for label in runners}
        uncertainties = []
        period, next_t = 0.1, time.perf_counter()
        for tick in range(ticks):
            order = list(runners.items())
            for label, runner in (order if tick % 2 else order[::-1]):  # neither always runs first after the sleep
                obs = observations[tick % len(observations)]
                t0 = time.perf_counter()
                _, uncertainty = runner.step_with_uncertainty(tick, obs)
                if uncertainty is not None:  # what the node adds for an artifact with an uncertainty output
                    help.update(uncertainty)
                samples[label].append((time.perf_counter() - t0) * 1e3)
                if uncertainty is not None:
                    uncertainties.append(uncertainty)
            next_t += period
            time.sleep(max(0.0, next_t - time.perf_counter()))
    results = {label: _percentiles(s) for label, s in samples.items()}
    for label, r in results.items():
        say(f"tick, ACT {label}: p50 {r['p50_ms']:.2f} ms, p99 {r['p99_ms']:.2f} ms, mean {r['mean_ms']:.2f} ms")
    one, ens = results["one_head"], results[f"ensemble_{heads}"]
    results["added_p50_ms"] = round(ens["p50_ms"] - one["p50_ms"], 3)
    results["added_mean_ms"] = round(ens["mean_ms"] - one["mean_ms"], 3)
    results["uncertainty_p50"] = round(float(np.median(uncertainties)), 4)
    say(f"ensemble of {heads} heads adds p50 {results['added_p50_ms']:+.2f} ms, mean "
        f"{results['added_mean_ms']:+.2f} ms per tick")
    return results


def main(args, say=print) -> dict:
    ticks = 60 if getattr(args, "quick", False) else 600
    return {"ticks": ticks, "heads": 5, **measure(ticks, 5, say)}
