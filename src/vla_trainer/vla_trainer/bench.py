"""`vla bench train`: training throughput per policy type, the data pipeline's share of a step, and what ACT reaches
on the embedded sim task from as many scripted demonstrations as `vla demo` records, on this CPU.

1. 200 scripted demonstrations (``DEMOS``, `vla demo`'s default) written as a dataset (vla_sim.demos: the
   recorder's writer and features), with the demonstration noise the demo records with (DART,
   vla_sim.demos.DEMO_NOISE).
2. Per policy type at default size: samples/s of full training steps (batches from the dataset, augmented), and
   the same steps on one batch already in memory, side by side in one run; the data share is
   1 - (in-memory step time / full step time).
3. The data path on LeRobot's packed layout: the same demonstrations remuxed into one parquet and one MP4 for
   all episodes (episodes located by from_timestamp, as LeRobot writes by default) against one file per episode:
   the time to decode every frame of the dataset, the time to load it for training (decode + resize + cache), and
   ACT's samples/s on each. Goal: the packed layout within 10% of one file per episode.
4. ACT trained from those demonstrations with the embedded task's recipe (params/train/tabletop_act.yaml) for
   the recipe's optimisation steps (train.max_steps; --quick: 100), exported, and evaluated through onnxruntime in
   the sim on 100 held-out seeds with held-out phrasings (--quick: 10), with the Wilson interval, the steps/s,
   the CPU seconds and the load average around it (the same steps on any machine: load changes the time only).

``--variant NAME:KEY=VALUE,...`` (repeatable; ``NAME:`` is the recipe as it is) runs only the comparison: every
variant's step time, then each trained for the same steps on the same demonstrations and evaluated on the same
episodes, side by side in one run. The last line is one JSON object.
"""
from __future__ import annotations

import tempfile
import time
from pathlib import Path

import numpy as np
import torch

from vla_core.stats import wilson_interval

DEMOS = 200


def _train_step(trainer, batch) -> None:
    """One optimisation step as the trainer takes it (bf16 autocast where it uses it)."""
    with torch.autocast("cpu", dtype=torch.bfloat16, enabled=trainer.bf16):
        loss = trainer.model(batch)["loss"]
    trainer.optimizer.zero_grad(set_to_none=True)
    loss.backward()
    trainer.optimizer.step()


def _throughput(trainer, steps: int) -> dict:
    """Full steps (gather + tensors + augment + step) vs steps on a batch already in memory, interleaved."""
    cfg = trainer.config
    frames = trainer.sampler.samples[:cfg.train.batch_size]
    cached = trainer._tensors(trainer.sampler.gather(frames, True, trainer.rng), augment_images=True)
    full, memory, data = [], [], []

    for i in range(steps + 2):
        t0 = time.perf_counter()
        idx = trainer.rng.choice(trainer.sampler.samples, cfg.train.batch_size)
        batch = trainer._tensors(trainer.sampler.gather(idx, True, trainer.rng), augment_images=True)
        t1 = time.perf_counter()
        _train_step(trainer, batch)
        t2 = time.perf_counter()
        _train_step(trainer, cached)
        t3 = time.perf_counter()
        if i >= 2:  # warm-up
            full.append(t2 - t0)
            data.append(t1 - t0)
            memory.append(t3 - t2)
    full_s, memory_s = float(np.median(full)), float(np.median(memory))
    return {"samples_per_s": round(cfg.train.batch_size / full_s, 1),
            "samples_per_s_in_memory": round(cfg.train.batch_size / memory_s, 1),
            "step_ms": round(full_s * 1e3, 1), "step_in_memory_ms": round(memory_s * 1e3, 1),
            "data_ms": round(float(np.median(data)) * 1e3, 2),
            "data_share": round(max(0.0, 1.0 - memory_s / full_s), 4),
            "data_share_measured": round(float(np.median(data)) / full_s, 4), "bf16": trainer.bf16}


def _data_layouts(demos: Path, tmp: Path, quick: bool, say) -> dict:
    """Decode and load time, and ACT samples/s, on one file per episode vs LeRobot's packed layout."""
    from vla_core.dataset import DatasetReader
    from vla_core.dataset.lerobot_import import pack_dataset
    from vla_trainer.config import build_config
    from vla_trainer.data import DataConfig, load_training_data
    from vla_trainer.train import Trainer

    packed = tmp / "demos_packed"
    pack_dataset(demos, packed, episodes_per_file=10_000)
    out: dict = {}
    for name, root in (("per_episode_files", demos), ("packed", packed)):
        reader = DatasetReader(root)
        t0 = time.perf_counter()
        frames = sum(len(reader.episode_images(ep, key)) for ep in range(reader.num_episodes)
                     for key in reader.camera_keys)
        decode_s = time.perf_counter() - t0
        reader.close()
        t0 = time.perf_counter()
        load_training_data(DataConfig(paths=(str(root),), cache_dir=str(tmp / f"cache-{name}")))
        load_s = time.perf_counter() - t0
        cfg = build_config({"policy": {"type": "act"}, "data": {"paths": [str(root)],
                                                                 "cache_dir": str(tmp / f"cache-{name}")},
                            "output": {"models_dir": str(tmp / "models"), "run_dir": str(tmp / f"layout-{name}")}})
        trainer = Trainer(cfg)
        trainer._setup()
        figures = _throughput(trainer, 5 if quick else 10)
        out[name] = {"files": len({(e["data/chunk_index"], e["data/file_index"]) for e in reader.episodes}),
                     "frames": frames, "decode_s": round(decode_s, 2), "load_s": round(load_s, 2),
                     "act_samples_per_s": figures["samples_per_s"]}
        say(f"data path, {name.replace('_', ' ')} ({out[name]['files']} data files): decode {decode_s:.2f} s for "
            f"{frames} frames, load {load_s:.2f} s, ACT {figures['samples_per_s']:.1f} samples/s")
    a, b = out["per_episode_files"], out["packed"]
    out["packed_decode_ratio"] = round(b["decode_s"] / max(a["decode_s"], 1e-9), 3)
    out["packed_samples_ratio"] = round(b["act_samples_per_s"] / max(a["act_samples_per_s"], 1e-9), 3)
    out["goal_met"] = bool(out["packed_decode_ratio"] <= 1.1 and out["packed_samples_ratio"] >= 0.9)
    return out


def bench_train(args, say) -> dict:
    from vla_core.contract import RobotContract
    from vla_core.paths import workspace_path
    from vla_sim.demos import DEMO_NOISE, record_scripted_demos
    from vla_trainer.config import build_config, parse_overrides
    from vla_trainer.evaluate import evaluate_artifact
    from vla_trainer.policies import POLICIES, parameter_count
    from vla_trainer.train import Trainer

    if getattr(args, "variant", None):
        return bench_train_variants(args, parse_variants(args.variant), say)
    if getattr(args, "lerobot_python", None):
        return bench_train_against_lerobot(args, say)
    quick = bool(getattr(args, "quick", False))
    contract = RobotContract.from_yaml(workspace_path("params/robots/tabletop_sim.yaml"))
    result: dict = {"bench": "train", "threads": torch.get_num_threads()}
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        t0 = time.monotonic()
        demos = record_scripted_demos(tmp / "demos", contract, episodes=DEMOS, seed_start=0, noise_std=DEMO_NOISE,
                                      environment_state=True)
        result["demos"] = {"episodes": demos["episodes"], "frames": demos["frames"],
                           "seconds": round(time.monotonic() - t0, 2)}
        result["demos"]["noise_m_per_s"] = DEMO_NOISE
        say(f"{DEMOS} scripted demonstrations ({DEMO_NOISE:g} m/s noise on the commands): {demos['frames']} frames in "
            f"{result['demos']['seconds']:.1f} s")

        result["policies"] = {}
        for name in sorted(POLICIES):
            cfg = build_config({"policy": {"type": name}, "data": {"paths": [str(tmp / "demos")],
                                                                   "cache_dir": str(tmp / "cache")},
                                "output": {"models_dir": str(tmp / "models"), "run_dir": str(tmp / f"t-{name}")}})
            trainer = Trainer(cfg)
            trainer._setup()
            figures = _throughput(trainer, 5 if quick else 20)
            figures["parameters"] = parameter_count(trainer.policy, trainable_only=True)
            result["policies"][name] = figures
            say(f"{name:9s} {figures['samples_per_s']:7.1f} samples/s ({figures['step_ms']:.0f} ms per step of "
                f"{cfg.train.batch_size}; {figures['samples_per_s_in_memory']:.1f}/s on a batch in memory), data "
                f"pipeline {100 * figures['data_share']:.1f}% of a step, bf16 {'on' if figures['bf16'] else 'off'}")

        result["data_layouts"] = _data_layouts(tmp / "demos", tmp, quick, say)

        result["act_recipe"] = str(workspace_path(RECIPE))
        result["act_from_demos"] = _act_run(tmp, "recipe", (), quick, say)
    return result


# LeRobot ACT's defaults (lerobot.policies.act.configuration_act.ACTConfig) in this workspace's ACT: the transformer
# at the same size; images through the workspace's CNN (LeRobot's is a ResNet-18), so compute per sample differs.
LEROBOT_ACT_SIZE = {"dim": 512, "heads": 8, "encoder_layers": 4, "decoder_layers": 1, "ff_dim": 3200,
                    "use_vae": True, "latent_dim": 32, "chunk_size": 100}
LEROBOT_BATCH, LEROBOT_WORKERS = 8, 2  # lerobot-train's batch size; its 4 loader workers, at most the CPUs here


def _cpu_per_sample(trainer, steps: int) -> float:
    """CPU seconds (every thread of this process) per sample of the trainer's full step: gather, tensors,
    augmentation, forward, backward, optimiser."""
    cfg = trainer.config
    t0 = time.process_time()
    for _ in range(steps):
        idx = trainer.rng.choice(trainer.sampler.samples, cfg.train.batch_size)
        _train_step(trainer, trainer._tensors(trainer.sampler.gather(idx, True, trainer.rng), augment_images=True))
    return (time.process_time() - t0) / (steps * cfg.train.batch_size)


def bench_train_against_lerobot(args, say) -> dict:
    """Training throughput at LeRobot ACT's default size: LeRobot's own loop (its dataset, DataLoader and policy, in
    the given Python) against this workspace's trainer, on the same demonstrations in LeRobot's packed layout,
    in alternating rounds on the same machine."""
    import json
    import os
    import subprocess

    from vla_core.contract import RobotContract
    from vla_core.dataset.lerobot_import import pack_dataset
    from vla_core.paths import workspace_path
    from vla_sim.demos import DEMO_NOISE, record_scripted_demos
    from vla_trainer.config import build_config
    from vla_trainer.train import Trainer

    quick = bool(getattr(args, "quick", False))
    demos, steps, rounds = (10, 1, 1) if quick else (50, 6, 3)
    contract = RobotContract.from_yaml(workspace_path("params/robots/tabletop_sim.yaml"))
    script = Path(__file__).resolve().parent / "lerobot_loop.py"
    result: dict = {"bench": "train", "part": "lerobot_loop", "threads": torch.get_num_threads(),
                    "cpus": os.cpu_count(), "load_start": list(os.getloadavg()), "lerobot_act": LEROBOT_ACT_SIZE,
                    "batch_size": LEROBOT_BATCH, "lerobot_workers": LEROBOT_WORKERS}
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        # No environment state: LeRobot's ACT would take it as an input.
        record_scripted_demos(tmp / "demos", contract, episodes=demos, seed_start=0, noise_std=DEMO_NOISE)
        packed = tmp / "packed"
        pack_dataset(tmp / "demos", packed, episodes_per_file=10_000)
        say(f"{demos} demonstrations in LeRobot's packed layout; {rounds} rounds of {steps} steps each side")
        cfg = build_config({"policy": {"type": "act", **LEROBOT_ACT_SIZE},
                            "train": {"batch_size": LEROBOT_BATCH},
                            "data": {"paths": [str(packed)], "cache_dir": str(tmp / "cache")},
                            "output": {"models_dir": str(tmp / "models"), "run_dir": str(tmp / "run")}})
        trainer = Trainer(cfg)
        trainer._setup()
        ours, theirs = [], []
        for r in range(rounds):
            proc = subprocess.run([args.lerobot_python, str(script), str(packed), str(steps), str(LEROBOT_BATCH),
                                   str(LEROBOT_WORKERS)], capture_output=True, text=True, timeout=1800,
                                  env={**os.environ, "HF_HUB_OFFLINE": "1", "PYTHONPATH": ""})
            if proc.returncode != 0:
                raise RuntimeError(f"LeRobot's loop failed in {args.lerobot_python} (is lerobot[dataset]==0.6.1 "
                                   f"installed there, and ffmpeg's libraries?):\n{proc.stderr[-2000:]}")
            theirs.append(json.loads(proc.stdout.strip().splitlines()[-1]))
            ours.append(_throughput(trainer, steps))
            ours[-1]["cpu_s_per_sample"] = _cpu_per_sample(trainer, steps)
            say(f"round {r + 1}: LeRobot {theirs[-1]['samples_per_s']:.2f} samples/s, "
                f"{theirs[-1]['cpu_s_per_sample']:.2f} CPU-s per sample "
                f"({theirs[-1]['data_wait_ms']:.0f} ms of {theirs[-1]['step_ms']:.0f} waiting for data), workspace "
                f"{ours[-1]['samples_per_s']:.2f} samples/s, {ours[-1]['cpu_s_per_sample']:.2f} CPU-s per sample "
                f"({ours[-1]['data_ms']:.0f} ms of {ours[-1]['step_ms']:.0f} "
                f"for data)")
        med = lambda rows, key: float(np.median([row[key] for row in rows]))  # noqa: E731
        result["lerobot"] = {"samples_per_s": med(theirs, "samples_per_s"), "step_ms": med(theirs, "step_ms"),
                             "compute_ms": med(theirs, "compute_ms"), "data_wait_ms": med(theirs, "data_wait_ms"),
                             "params_m": theirs[0]["params_m"], "torch": theirs[0]["torch"]}
        result["workspace"] = {"samples_per_s": med(ours, "samples_per_s"), "step_ms": med(ours, "step_ms"),
                               "compute_ms": med(ours, "step_in_memory_ms"), "data_ms": med(ours, "data_ms"),
                               "params_m": round(sum(p.numel() for p in trainer.policy.parameters()) / 1e6, 2),
                               "bf16": ours[0]["bf16"], "torch": torch.__version__}
        result["lerobot"]["cpu_s_per_sample"] = med(theirs, "cpu_s_per_sample")
        result["workspace"]["cpu_s_per_sample"] = med(ours, "cpu_s_per_sample")
        result["cpu_speedup"] = round(result["lerobot"]["cpu_s_per_sample"] /
                                      max(result["workspace"]["cpu_s_per_sample"], 1e-9), 3)
        result["speedup"] = round(result["workspace"]["samples_per_s"] / max(result["lerobot"]["samples_per_s"],
                                                                             1e-9), 3)
        result["load_end"] = list(os.getloadavg())
        say(f"workspace / LeRobot samples/s: {result['speedup']:.2f}x (wall), {result['cpu_speedup']:.2f}x by CPU "
            f"seconds per sample")
    return result


def bench_train_variants(args, variants: dict[str, tuple[str, ...]], say) -> dict:
    """Recipe variants side by side on the same demonstrations: step time, then each trained for the recipe's
    steps and evaluated on the same held-out episodes."""
    from vla_core.contract import RobotContract
    from vla_core.paths import workspace_path
    from vla_sim.demos import DEMO_NOISE, record_scripted_demos

    quick = bool(getattr(args, "quick", False))
    contract = RobotContract.from_yaml(workspace_path("params/robots/tabletop_sim.yaml"))
    result: dict = {"bench": "train", "threads": torch.get_num_threads(), "act_recipe": str(workspace_path(RECIPE)),
                    "variants": {name: list(sets) for name, sets in variants.items()}}
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        t0 = time.monotonic()
        demos = record_scripted_demos(tmp / "demos", contract, episodes=DEMOS, seed_start=0, noise_std=DEMO_NOISE,
                                      environment_state=True)
        result["demos"] = {"episodes": demos["episodes"], "frames": demos["frames"],
                           "seconds": round(time.monotonic() - t0, 2), "noise_m_per_s": DEMO_NOISE}
        say(f"{DEMOS} scripted demonstrations: {demos['frames']} frames in {result['demos']['seconds']:.1f} s")
        result["act_variants"] = {}
        for name, sets in variants.items():
            say(f"variant {name}: {' '.join(sets) or '(the recipe as it is)'}")
            result["act_variants"][name] = _act_run(tmp, name, sets, quick, say)
    return result


RECIPE = "params/train/tabletop_act.yaml"


def _recipe_config(tmp: Path, name: str, sets: tuple[str, ...], extra: tuple[str, ...] = ()):
    from vla_core.paths import workspace_path
    from vla_trainer.config import build_config, parse_overrides
    raw = parse_overrides([f"--config={workspace_path(RECIPE)}", f"--data.paths={tmp / 'demos'}",
                           f"--data.cache_dir={tmp / 'cache'}", "--train.epochs=100000",
                           f"--output.models_dir={tmp / 'models'}", f"--output.run_dir={tmp / f'act-{name}'}",
                           f"--output.name=bench-{name}", "--output.version=1", *extra,
                           *(s if s.startswith("--") else f"--{s}" for s in sets)])
    return build_config(raw)


def _act_run(tmp: Path, name: str, sets: tuple[str, ...], quick: bool, say) -> dict:
    """One recipe variant: step time, then trained for its steps (the recipe's train.max_steps; --quick: 100) with
    a safety cap of 20 minutes, exported and evaluated on held-out seeds and phrasings (100; --quick: 10), with the
    CPU time it took and the load average around it."""
    import os
    from vla_trainer.evaluate import evaluate_artifact
    from vla_trainer.train import Trainer

    steps_cfg = _recipe_config(tmp, name, sets)
    steps = 100 if quick else steps_cfg.train.max_steps
    if steps < 1:
        raise ValueError(f"{RECIPE} sets no train.max_steps; the bench trains each variant for the recipe's steps")
    episodes = 10 if quick else 100
    cfg = _recipe_config(tmp, name, sets, (f"--train.max_steps={steps}", "--train.time_budget_s=1200"))
    probe = Trainer(cfg, lambda e: None)
    probe._setup()
    step = _throughput(probe, 3 if quick else 10)
    torch.set_num_threads(_THREADS)  # a variant's train.threads must not leak into the next
    del probe
    load_start = [round(x, 2) for x in os.getloadavg()]
    t1, cpu1 = time.monotonic(), time.process_time()
    trained = Trainer(cfg, lambda e: say(f"  {e['message']}") if e.get("event") == "log"
                      and "warning" in e.get("message", "") else None).run()
    torch.set_num_threads(_THREADS)
    train_s, cpu_s = time.monotonic() - t1, time.process_time() - cpu1
    ev = evaluate_artifact(trained["artifact"], "tabletop", episodes, 100_000, "heldout", models_dir=tmp / "models")
    low, high = wilson_interval(ev["successes"], episodes)
    out = {"step_ms": step["step_ms"], "bf16": step["bf16"], "steps": trained["steps"],
           "stopped_by": trained["stopped_by"], "train_seconds": round(train_s, 1), "train_cpu_s": round(cpu_s, 1),
           "steps_per_s": trained.get("steps_per_s"), "epochs": trained["epochs"],
           "successes_heldout": ev["successes"], "episodes": episodes,
           "success_heldout": round(ev["success_rate"], 4), "ci95": [round(low, 4), round(high, 4)],
           "eval_wall_s": ev["wall_s"], "load_start": load_start,
           "load_end": [round(x, 2) for x in os.getloadavg()]}
    say(f"  {name}: {step['step_ms']:.0f} ms per step; {trained['steps']} steps in {train_s:.0f} s "
        f"({cpu_s:.0f} CPU-s, load {load_start[0]:g}); held-out {ev['successes']}/{episodes} "
        f"[95% {100 * low:.1f}-{100 * high:.1f}%]" + (" (CUT SHORT by the time cap)"
                                                      if trained["stopped_by"] == "time_budget" else ""))
    return out


_THREADS = torch.get_num_threads()


def parse_variants(items) -> dict[str, tuple[str, ...]]:
    """``NAME:KEY=VALUE,KEY=VALUE`` (``--variant``) -> {name: (KEY=VALUE, ...)}; ``NAME:`` is the recipe itself.

    Raises: ValueError naming the item and the form expected."""
    out: dict[str, tuple[str, ...]] = {}
    for item in items or ():
        name, sep, rest = item.partition(":")
        sets = tuple(p.strip() for p in rest.split(",") if p.strip())
        if not sep or not name.strip() or any("=" not in p for p in sets):
            raise ValueError(f"--variant {item!r}: expected NAME:KEY=VALUE[,KEY=VALUE...] (e.g. "
                             "small:policy.dim=64,policy.ff_dim=256), or NAME: for the recipe as it is")
        if name in out:
            raise ValueError(f"--variant {name!r} is given twice; give each variant its own name")
        out[name.strip()] = sets
    return out
