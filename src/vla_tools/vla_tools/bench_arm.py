"""`vla bench arm`: the simulated arm (vla_sim/ArmPickPlace-v0, two cameras) from the simulator to a served policy.

1. Sim step + render rate, both cameras, at the contract's camera size and at 640x480 (vla_sim.envs.arm_bench:
   physics and rendering only, per wall-clock second and per CPU second of this process, and the real-time
   factor).
2. The scripted expert's success on ``--seeds`` seeds (0..N-1; default 200), with the 95% Wilson interval.
3. A 2-camera policy from scripted demonstrations: ``--demos`` demonstrations recorded straight from the sim
   (vla_sim.demos: the recorder's writer and features, every camera of the contract; ``--noise`` rad of DART
   noise), ``--policy`` (act, mlp or diffusion) trained with the arm's recipe (RECIPE, params/train/arm_act.yaml)
   for ``--steps`` optimisation steps, exported to ONNX and evaluated through onnxruntime on held-out
   seeds (from 100000) with the training phrasings and with held-out phrasings, ``--episodes`` each; success
   with its Wilson interval, and the CPU minutes of this process that demonstrations plus training took (the
   issue's budget is 15) with the load average around them.
4. The trained policy's tick on onnxruntime CPU (one thread) through vla_policy.runner.PolicyRunner, the policy
   node's own tick, re-planning every tick on the sim's observations: p50 / p99 in ms (goal: p99 under 10 ms).

Progress lines while it runs; the last line is one JSON object. ``--quick`` shrinks every part to a smoke test.
"""
from __future__ import annotations

import os
import tempfile
import time
from pathlib import Path

import numpy as np

CONTRACT = "params/robots/sim_arm.yaml"
#: The arm's training recipe (vla-train's format); the bench trains it with its own step count and directories.
RECIPE = "params/train/arm_act.yaml"
PRESET = "arm"
EVAL_SEED_START = 100_000  # never a demonstration's seed
#: How the demonstrations are made (docs/bench_arm.md, "Why it failed"): each frame's action is the expert's command
#: without its noise (the noise, on the joints and on the gripper's timing, only chooses the states visited), and a
#: change of the gripper command is held back one more step with this probability, so the frames where the fingers
#: must close or open are many, not one per episode.
DEMO_LABELS = "clean"
DEMO_EXPERT = {"gripper_delay": 0.8}
#: Full-run defaults and the --quick smoke test's sizes; a flag given on the command line wins over both.
DEFAULTS = {"seeds": 200, "demos": 200, "steps": 2000, "episodes": 100, "policy": "act", "noise": 0.02,
            "rate_steps": 100, "ticks": 300}
QUICK = {"seeds": 3, "demos": 2, "steps": 3, "episodes": 1, "rate_steps": 5, "ticks": 20}


def settings(args) -> dict:
    """The run's sizes: DEFAULTS, QUICK's with --quick, then whatever flags were given (None: not given).

    Raises: ValueError naming a flag whose value cannot be run."""
    out = {**DEFAULTS, **(QUICK if getattr(args, "quick", False) else {})}
    for key in DEFAULTS:
        value = getattr(args, key, None)
        if value is not None:
            out[key] = value
    for key in ("seeds", "demos", "steps", "episodes"):
        if out[key] < 1:
            raise ValueError(f"--{key} {out[key]}: give at least 1")
    if out["policy"] not in ("act", "mlp", "diffusion"):
        raise ValueError(f"--policy {out['policy']!r}: choose act, mlp or diffusion (a 2-camera policy type)")
    if out["noise"] < 0:
        raise ValueError(f"--noise {out['noise']}: the demonstrations' DART noise is a standard deviation in rad, "
                         ">= 0")
    return out


def _load() -> list[float]:
    return [round(x, 2) for x in os.getloadavg()]


def sim_rates(contract, steps: int, say) -> dict:
    """Step + render rate with both cameras at the contract's camera size and at 640x480."""
    from vla_sim.envs.arm_bench import step_rate
    cam = contract.cameras[0]
    out = {}
    for height, width in ((cam.height, cam.width), (480, 640)):
        rate = step_rate((height, width), steps=steps)
        key = f"{width}x{height}"
        out[key] = {k: round(v, 2) for k, v in rate.items()}
        say(f"sim, 2 cameras at {key}: {rate['steps_per_s']:.1f} steps/s wall ({rate['steps_per_cpu_s']:.1f} per "
            f"CPU-s), {rate['realtime_factor']:.1f}x real time")
    return out


def expert_figures(seeds: int, say) -> dict:
    """The scripted expert's success on seeds 0..seeds-1, with the Wilson interval."""
    from vla_sim.envs.arm_bench import expert_success
    say(f"scripted expert on {seeds} seeds ...")
    t0 = time.monotonic()
    res = expert_success(range(seeds))
    out = {"episodes": res["episodes"], "successes": round(res["success_rate"] * res["episodes"]),
           "success_rate": round(res["success_rate"], 4), "ci95": [round(x, 4) for x in res["ci95"]],
           "mean_steps": round(res["mean_steps"], 1), "failed_seeds": res["failed_seeds"],
           "wall_s": round(time.monotonic() - t0, 1)}
    say(f"scripted expert: {out['successes']}/{out['episodes']} [95% {100 * out['ci95'][0]:.1f}-"
        f"{100 * out['ci95'][1]:.1f}%], {out['mean_steps']:.0f} steps per episode")
    return out


def recipe(policy: str) -> dict:
    """The arm's training recipe (RECIPE) as nested data, for a policy of type ``policy``: the recipe's policy
    options that every policy type has are kept for another type, its own type's options only for its type."""
    import dataclasses

    import yaml

    from vla_core.paths import workspace_path
    from vla_trainer.policies import PolicyConfig
    raw = yaml.safe_load(workspace_path(RECIPE).read_text()) or {}
    pol = dict(raw.get("policy") or {})
    if pol.get("type", "act") != policy:
        common = {f.name for f in dataclasses.fields(PolicyConfig)}
        pol = {k: v for k, v in pol.items() if k in common}
    raw["policy"] = {**pol, "type": policy}
    return raw


def train_config(tmp: Path, policy: str, steps: int):
    """The recipe's ``policy`` (2 cameras) for ``steps`` steps on the demonstrations in tmp/demos (the cameras,
    shapes and statistics come from the dataset), re-planning every tick when served (as the recipe says)."""
    from vla_trainer.config import build_config
    raw = recipe(policy)
    raw["data"] = {**(raw.get("data") or {}), "paths": [str(tmp / "demos")], "cache_dir": str(tmp / "cache")}
    raw["train"] = {**(raw.get("train") or {}), "max_steps": steps, "epochs": 100_000, "time_budget_s": 3600.0,
                    "warmup_steps": min(100, max(1, steps // 10))}
    raw["output"] = {**(raw.get("output") or {}), "models_dir": str(tmp / "models"), "run_dir": str(tmp / "run"),
                     "name": "bench-arm", "version": "1", "log": ["csv"]}
    return build_config(raw)


def _trainer_progress(say):
    last = [0.0]

    def progress(event: dict) -> None:
        if event.get("event") == "log" and "warning" in event.get("message", ""):
            say(f"  {event['message']}")
        elif event.get("event") == "epoch" and time.monotonic() - last[0] > 15.0:
            last[0] = time.monotonic()
            say(f"  training: step {event['step']}, loss {event['train_loss']:.4f}, about {event['eta_s']:.0f} s left")
    return progress


def _episode_progress(say, label: str, every: int = 10):
    def progress(items):
        items = list(items)
        for i, item in enumerate(items):
            if i and i % every == 0:
                say(f"  {label}: {i}/{len(items)} episodes")
            yield item
    return progress


def policy_from_demos(tmp: Path, contract, cfg: dict, encoder, say) -> dict:
    """Record demonstrations, train, export, and evaluate with both phrasing sets; figures and the artifact."""
    from vla_core.paths import workspace_path
    from vla_sim.demos import record_scripted_demos
    from vla_core.stats import wilson_interval
    from vla_trainer.evaluate import evaluate_artifact
    from vla_trainer.train import Trainer

    out: dict = {"policy": cfg["policy"], "demo_noise_rad": cfg["noise"], "demo_labels": DEMO_LABELS,
                 "demo_expert": DEMO_EXPERT, "load_start": _load()}
    say(f"recording {cfg['demos']} scripted demonstrations (seeds from 0, training phrasings, noise "
        f"{cfg['noise']:g} rad) ...")
    t0, cpu0 = time.monotonic(), time.process_time()
    demos = record_scripted_demos(tmp / "demos", contract, preset=PRESET, episodes=cfg["demos"], seed_start=0,
                                  noise_std=cfg["noise"], labels=DEMO_LABELS, expert_kwargs=DEMO_EXPERT,
                                  progress=_episode_progress(say, "demonstrations"), environment_state=True)
    demo_s, demo_cpu = time.monotonic() - t0, time.process_time() - cpu0
    out["demos"] = {"episodes": demos["episodes"], "frames": demos["frames"],
                    "expert_failures": demos["expert_failures"], "wall_s": round(demo_s, 1),
                    "cpu_s": round(demo_cpu, 1)}
    say(f"demonstrations: {demos['episodes']} episodes, {demos['frames']} frames in {demo_s:.1f} s "
        f"({demo_cpu:.0f} CPU-s; {demos['expert_failures']} failed expert episodes skipped)")

    say(f"training a 2-camera {cfg['policy']} policy for {cfg['steps']} steps ...")
    t1, cpu1 = time.monotonic(), time.process_time()
    trained = Trainer(train_config(tmp, cfg["policy"], cfg["steps"]), _trainer_progress(say)).run()
    train_s, train_cpu = time.monotonic() - t1, time.process_time() - cpu1
    out["training"] = {"steps": trained["steps"], "stopped_by": trained["stopped_by"], "wall_s": round(train_s, 1),
                       "cpu_s": round(train_cpu, 1), "steps_per_s": trained.get("steps_per_s"),
                       "final_loss": (trained.get("final") or {}).get("train/loss"),
                       "onnx_max_abs_diff": trained.get("onnx_max_abs_diff")}
    out["cpu_minutes_demos_plus_training"] = round((demo_cpu + train_cpu) / 60.0, 2)
    out["load_after_training"] = _load()
    say(f"training: {trained['steps']} steps in {train_s:.0f} s ({train_cpu:.0f} CPU-s); demonstrations + training "
        f"{out['cpu_minutes_demos_plus_training']:.2f} CPU-minutes (goal: 80% within 15)")

    out["evaluation"] = {}
    for phrasings in ("train", "heldout"):
        say(f"evaluating on {cfg['episodes']} held-out seeds with {phrasings} phrasings ...")
        ev = evaluate_artifact(trained["artifact"], PRESET, cfg["episodes"], EVAL_SEED_START, phrasings,
                               contract=workspace_path(CONTRACT), models_dir=tmp / "models", encoder=encoder,
                               progress=_episode_progress(say, f"evaluation ({phrasings} phrasings)"))
        low, high = wilson_interval(ev["successes"], ev["episodes"])
        out["evaluation"][phrasings] = {
            "episodes": ev["episodes"], "successes": ev["successes"], "success_rate": round(ev["success_rate"], 4),
            "ci95": [round(low, 4), round(high, 4)], "wall_s": ev["wall_s"],
            "real_time_factor": ev["real_time_factor"],
            "mean_steps": round(float(np.mean([r["steps"] for r in ev["rows"]])), 1)}
        say(f"policy, {phrasings} phrasings: {ev['successes']}/{ev['episodes']} [95% {100 * low:.1f}-"
            f"{100 * high:.1f}%] on held-out seeds ({ev['wall_s']:.0f} s, {ev['real_time_factor']:.1f}x real time)")
    out["load_end"] = _load()
    out["artifact"] = trained["artifact"]
    return out


def tick_latency(artifact: str, models: Path, contract, encoder, ticks: int, say) -> dict:
    """p50/p99 of PolicyRunner.step (feeds + onnxruntime CPU, one thread + chunk execution), re-planning every
    tick, on observations of one sim episode driven by the policy itself."""
    from vla_policy.runner import PolicyRunner
    from vla_policy.runtime import load_policy
    from vla_sim.backends import PRESETS, make_backend
    from vla_trainer.evaluate import observation

    policy = load_policy(artifact, models, contract, encoder.encoder_id, ["onnxruntime-cpu"], threads=1)
    runner = PolicyRunner(policy)
    backend = make_backend({**PRESETS[PRESET], "max_episode_steps": None})
    samples = []
    try:
        frame = backend.reset(EVAL_SEED_START)
        _, embedding, _ = encoder.encode(backend.instruction)
        runner.reset()
        for tick in range(ticks + 5):
            obs = observation(frame, contract, embedding)
            t0 = time.perf_counter()
            action = runner.step(tick, obs)
            if tick >= 5:  # warm-up
                samples.append(1e3 * (time.perf_counter() - t0))
            frame = backend.step(np.asarray(action, np.float64))
    finally:
        backend.close()
    out = {"ticks": len(samples), "p50_ms": round(float(np.percentile(samples, 50)), 3),
           "p99_ms": round(float(np.percentile(samples, 99)), 3), "max_ms": round(float(np.max(samples)), 3),
           "engine": "onnxruntime-cpu", "threads": 1, "inputs": sorted(runner.features),
           "goal_p99_under_10ms": bool(np.percentile(samples, 99) < 10.0)}
    say(f"policy tick (PolicyRunner, onnxruntime CPU, 1 thread, 2 cameras): p50 {out['p50_ms']:.2f} ms, "
        f"p99 {out['p99_ms']:.2f} ms over {out['ticks']} ticks")
    return out


def bench_arm(args, say) -> dict:
    import torch
    # Before MuJoCo renders: torch._dynamo (which the optimizers import) loads triton's LLVM, and loading it after
    # Mesa's (EGL on llvmpipe) has rendered crashes the process with SIGSEGV; loaded first, both work.
    import torch._dynamo  # noqa: F401

    from vla_core.contract import RobotContract
    from vla_core.paths import workspace_path
    from vla_language.encoder import InstructionEncoder

    cfg = settings(args)
    contract = RobotContract.from_yaml(workspace_path(CONTRACT))
    result: dict = {"bench": "arm", "settings": cfg, "cameras": [c.name for c in contract.cameras],
                    "torch_threads": torch.get_num_threads(), "cpu_count": os.cpu_count(), "load_start": _load()}
    say(f"arm bench on {os.cpu_count()} CPUs (load {result['load_start'][0]:g}): cameras "
        f"{', '.join(result['cameras'])}; {cfg['seeds']} expert seeds, {cfg['demos']} demonstrations, "
        f"{cfg['policy']} for {cfg['steps']} steps, {cfg['episodes']} evaluation episodes per phrasing set")
    result["sim_step_render"] = sim_rates(contract, cfg["rate_steps"], say)
    result["expert"] = expert_figures(cfg["seeds"], say)
    encoder = InstructionEncoder()
    with tempfile.TemporaryDirectory(prefix="vla-bench-arm-") as tmp:
        tmp = Path(tmp)
        trained = policy_from_demos(tmp, contract, cfg, encoder, say)
        artifact = trained.pop("artifact")
        result["policy_from_demos"] = trained
        result["policy_tick"] = tick_latency(artifact, tmp / "models", contract, encoder, cfg["ticks"], say)
    result["load_end"] = _load()
    return result
