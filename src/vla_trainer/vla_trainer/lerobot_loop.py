"""LeRobot's own ACT training loop, timed: run by a Python that has `lerobot` (its own venv), never imported by the
workspace. `vla bench train --lerobot-python PY` runs it on the same dataset as the workspace's trainer.

    python lerobot_loop.py ROOT STEPS BATCH WORKERS

LeRobot's ACT at its default size (ResNet-18 backbone without pretrained weights, as offline; 512-wide transformer,
4 encoder and 1 decoder layers, chunk 100, the VAE on), fed as `lerobot-train` feeds it: LeRobotDataset with
delta_timestamps for the action chunk, a shuffling DataLoader with WORKERS processes, AdamW. Prints one JSON object:
median step time with and without the wait for data, samples/s, and the CPU seconds per sample of this process and
its loader workers together (less sensitive to other work on the machine than wall time). Imports only lerobot, torch and numpy.
"""
from __future__ import annotations

import json
import sys
import time

import numpy as np
import torch


def main(root: str, steps: int, batch_size: int, workers: int) -> dict:
    from lerobot.configs.types import FeatureType
    from lerobot.datasets.lerobot_dataset import LeRobotDataset
    from lerobot.policies.act.configuration_act import ACTConfig
    from lerobot.policies.act.modeling_act import ACTPolicy
    try:  # LeRobot 0.5+
        from lerobot.utils.feature_utils import dataset_to_policy_features
    except ImportError:  # LeRobot 0.4
        from lerobot.datasets.utils import dataset_to_policy_features

    meta = LeRobotDataset("local/bench", root=root).meta
    features = dataset_to_policy_features(meta.features)
    outputs = {k: f for k, f in features.items() if f.type is FeatureType.ACTION}
    inputs = {k: f for k, f in features.items() if k not in outputs and f.type is not FeatureType.ENV}
    cfg = ACTConfig(input_features=inputs, output_features=outputs, pretrained_backbone_weights=None, device="cpu")
    dataset = LeRobotDataset("local/bench", root=root, delta_timestamps={
        "action": [i / meta.fps for i in range(cfg.chunk_size)]})
    loader = torch.utils.data.DataLoader(dataset, batch_size=batch_size, shuffle=True, num_workers=workers,
                                         drop_last=True, persistent_workers=workers > 0)
    policy = ACTPolicy(cfg)
    policy.train()
    optimizer = torch.optim.AdamW(policy.parameters(), lr=cfg.optimizer_lr, weight_decay=cfg.optimizer_weight_decay)
    full, compute, it = [], [], iter(loader)
    cpu0 = 0.0
    for i in range(steps + 2):
        if i == 2:  # after warm-up: CPU seconds of this process and of the loader's workers from here on
            cpu0 = _cpu_seconds(it)
        t0 = time.perf_counter()
        try:
            batch = next(it)
        except StopIteration:
            it = iter(loader)
            batch = next(it)
        t1 = time.perf_counter()
        loss, _ = policy.forward(batch)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
        t2 = time.perf_counter()
        if i >= 2:  # warm-up
            full.append(t2 - t0)
            compute.append(t2 - t1)
    cpu_per_sample = (_cpu_seconds(it) - cpu0) / (steps * batch_size)
    step_s = float(np.median(full))
    return {"samples_per_s": round(batch_size / step_s, 2), "step_ms": round(step_s * 1e3, 1),
            "compute_ms": round(float(np.median(compute)) * 1e3, 1),
            "data_wait_ms": round((step_s - float(np.median(compute))) * 1e3, 1),
            "params_m": round(sum(p.numel() for p in policy.parameters()) / 1e6, 2), "batch_size": batch_size,
            "cpu_s_per_sample": round(cpu_per_sample, 4), "workers": workers, "chunk_size": cfg.chunk_size, "loss_finite": bool(torch.isfinite(loss)),
            "torch": torch.__version__}


def _cpu_seconds(iterator) -> float:
    """User + system CPU seconds of this process and of the DataLoader's worker processes (from /proc)."""
    import os
    total = time.process_time()
    tick = os.sysconf("SC_CLK_TCK")
    for worker in getattr(iterator, "_workers", []):
        try:
            fields = open(f"/proc/{worker.pid}/stat").read().rsplit(")", 1)[1].split()
            total += (int(fields[11]) + int(fields[12])) / tick  # utime, stime
        except (OSError, IndexError, ValueError):
            pass
    return total


if __name__ == "__main__":
    root, steps, batch, workers = sys.argv[1], *map(int, sys.argv[2:5])
    print(json.dumps(main(root, steps, batch, workers)), flush=True)
