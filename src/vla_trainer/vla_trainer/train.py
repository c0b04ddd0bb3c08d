"""The training loop: one process on a CPU or GPU, or one of several under ``torchrun`` (DDP).

Rank 0 writes everything (progress, TensorBoard/CSV, checkpoints, the loss-curve PNG, the artifact); every rank
trains on its own share of each epoch's samples. Checkpoints are safetensors (model, optimizer, critics) plus a
JSON file of counters: never pickles. ``progress`` receives one dict per event (``epoch``, ``done``), which the
CLI prints as JSON lines for the trainer node.
"""
from __future__ import annotations

import contextlib
import csv
import json
import math
import os
import shutil
import time
from dataclasses import asdict, replace
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, Callable

import numpy as np
import torch
# torch's optimizers import torch._dynamo (and with it triton's native library) on first use. Loaded that late, in a
# process that already holds many native libraries (rclpy, pyarrow, av: the test session), triton's library crashed
# the process (SIGSEGV in its import); loaded with torch, it does not. Training imports it anyway.
import torch._dynamo  # noqa: F401
from safetensors.torch import load_file, save_file
from torch import nn

from vla_core.observation import to_chw_float
from vla_core.paths import workspace_path
from vla_trainer.algorithms import make_algorithm
from vla_trainer.config import TrainConfig
from vla_trainer.data import (BatchSampler, DataError, LanguageTable, TrainingData, action_reference,
                              load_training_data)
from vla_trainer.policies import make_policy, parameter_count

Progress = Callable[[dict[str, Any]], None]


class _LossModule(nn.Module):
    """DDP syncs gradients of what its forward computed, so the loss goes through forward."""

    def __init__(self, policy: nn.Module, algorithm=None):
        super().__init__()
        self.policy, self.algorithm = policy, algorithm

    def forward(self, batch: dict) -> dict[str, torch.Tensor]:
        if self.algorithm is not None:  # its own loss for the policy (an actor's, in td3bc and cql)
            return self.algorithm.policy_loss(self.policy, batch)
        return self.policy.compute_loss(batch)


def image_encoders(policy: nn.Module) -> list[nn.Module]:
    """The policy's per-camera image encoders (``policy.encoders``), or [] when it has none."""
    encoders = getattr(policy, "encoders", None)
    return list(encoders.values()) if isinstance(encoders, nn.ModuleDict) else []


def enable_activation_checkpointing(policy: nn.Module) -> int:
    """Recompute each image encoder's activations in backward instead of keeping them (train.activation_checkpointing):
    the encoder's outermost forward (``forward_multiscale`` where it has one, which ``forward`` calls) runs under
    torch.utils.checkpoint while gradients are being recorded, and as before otherwise (evaluation, export).
    Returns how many encoders; the weights and their names are untouched."""
    from torch.utils.checkpoint import checkpoint
    count = 0
    for encoder in image_encoders(policy):
        name = "forward_multiscale" if hasattr(encoder, "forward_multiscale") else "forward"
        original = getattr(encoder, name)

        def run(*args, _fn=original, _module=encoder):
            if torch.is_grad_enabled() and _module.training:
                return checkpoint(_fn, *args, use_reentrant=False)
            return _fn(*args)
        setattr(encoder, name, run)
        count += 1
    return count


def disable_activation_checkpointing(policy: nn.Module) -> None:
    for encoder in image_encoders(policy):
        for name in ("forward_multiscale", "forward"):
            encoder.__dict__.pop(name, None)


def distributed_env() -> tuple[int, int, int]:
    """(rank, world size, local rank) from torchrun's environment; (0, 1, 0) for a plain process."""
    return int(os.environ.get("RANK", 0)), int(os.environ.get("WORLD_SIZE", 1)), int(os.environ.get("LOCAL_RANK", 0))


def _device(local_rank: int) -> torch.device:
    if torch.cuda.is_available():
        torch.cuda.set_device(local_rank)
        return torch.device("cuda", local_rank)
    return torch.device("cpu")


def batch_tensors(arrays: dict, device: torch.device) -> dict[str, Any]:
    """A gathered batch (numpy) -> tensors on ``device``. Images, (N, H, W, 3) uint8 RGB per camera, become
    (N, 3, H, W) float32 in [0, 1] through :func:`vla_core.observation.to_chw_float`, the conversion the policy
    node and the simulated evaluation use, so training sees bitwise the tensors that serving sees. An observation
    history's (N, T, H, W, 3) become (N, T, 3, H, W)."""
    images = {cam: torch.from_numpy(to_chw_float(frames.reshape(-1, *frames.shape[-3:])).reshape(
        *frames.shape[:-3], 3, *frames.shape[-3:-1])).to(device) for cam, frames in arrays["images"].items()}
    return {"images": images, **{key: torch.from_numpy(arrays[key]).to(device)
                                 for key in ("state", "language", "action", "action_pad", "env_state")
                                 if key in arrays}}


def augment(images: torch.Tensor, shift: int, jitter: float, generator: torch.Generator) -> torch.Tensor:
    """(B, 3, H, W) in [0, 1]: random integer shifts up to ``shift`` px (replicate padding), brightness and
    contrast scaled by up to ``jitter``. Hue is untouched: block colours carry the task. An observation history,
    (B, T, 3, H, W), gets one shift and one jitter per sample: its frames stay aligned with each other."""
    if images.dim() == 5:
        return augment(images.flatten(1, 2), shift, jitter, generator).view(images.shape)
    b, _, h, w = images.shape
    if shift > 0:
        padded = nn.functional.pad(images, (shift, shift, shift, shift), mode="replicate")
        dx = torch.randint(0, 2 * shift + 1, (b,), generator=generator)
        dy = torch.randint(0, 2 * shift + 1, (b,), generator=generator)
        images = torch.stack([padded[i, :, dy[i]:dy[i] + h, dx[i]:dx[i] + w] for i in range(b)])
    if jitter > 0:
        bright = 1.0 + (torch.rand(b, 1, 1, 1, generator=generator) * 2 - 1) * jitter
        contrast = 1.0 + (torch.rand(b, 1, 1, 1, generator=generator) * 2 - 1) * jitter
        mean = images.mean(dim=(1, 2, 3), keepdim=True)
        images = ((images - mean) * contrast + mean) * bright
        images = images.clamp(0.0, 1.0)
    return images


class Trainer:
    def __init__(self, config: TrainConfig, progress: Progress | None = None, data: TrainingData | None = None):
        self.config = config
        self.rank, self.world, self.local_rank = distributed_env()
        self.device = _device(self.local_rank)
        self.progress = progress or (lambda event: None)
        self.is_main = self.rank == 0
        out = config.output
        version = out.version or datetime.now(timezone.utc).strftime("%Y%m%dT%H%M%S")
        self.version = version
        self.run_dir = Path(out.run_dir) if out.run_dir else workspace_path(f"runs/train/{out.name}-{version}")
        if config.resume:
            self.run_dir = Path(config.resume)
        self._data = data
        self._train_start: float | None = None

    # --- setup -------------------------------------------------------------------------------------------
    def _setup(self) -> None:
        cfg = self.config
        if self.world > 1 and not torch.distributed.is_initialized():
            backend = "nccl" if self.device.type == "cuda" else "gloo"
            torch.distributed.init_process_group(backend)
        if cfg.train.threads > 0:
            torch.set_num_threads(cfg.train.threads)
        torch.manual_seed(cfg.train.seed + self.rank)
        self.rng = np.random.default_rng(cfg.train.seed + 1000 * self.rank)
        self.gen = torch.Generator().manual_seed(cfg.train.seed + self.rank)
        self._say(f"reading {', '.join(cfg.data.paths)}")
        policy_size = cfg.policy.get("image_size")
        self.data = self._data or load_training_data(cfg.data, tuple(policy_size) if policy_size else None,
                                                     progress=self._bar("decoding episodes"))
        from vla_language.encoder import InstructionEncoder
        encoder = InstructionEncoder()
        self.encoder_id = encoder.encoder_id
        self.language = LanguageTable(self.data.instructions, cfg.data.paraphrase, lambda t: encoder.encode(t)[1])
        resume_state = self._read_resume() if cfg.resume else None
        init_weights, init_stats = _read_init(cfg.train.init_from) if cfg.train.init_from and not resume_state \
            else (None, None)
        reference = action_reference(cfg.policy.get("relative_actions", ()), self.data.action_names,
                                     self.data.state_names)
        # Fine-tuning keeps the normaliser the weights were trained with.
        stats = resume_state["stats"] if resume_state else init_stats or self.data.stats(reference)
        overrides = {k: v for k, v in cfg.policy.items() if k != "type"}
        if reference:
            overrides["action_reference"] = reference
        if float(overrides.get("aux_env_state", 0.0)) > 0:
            if not self.data.env_state_names:
                raise ValueError("policy.aux_env_state needs observation.environment_state in every episode (where a "
                                 "simulator says its task's objects are: vla_sim.demos with environment_state=True); "
                                 "this data has none, so set policy.aux_env_state=0")
            overrides["env_state_dim"] = len(self.data.env_state_names)
            if "env_state_mean" not in stats:
                stats = {**stats, **{k: v for k, v in self.data.stats(reference, env_state=True).items()
                                     if k.startswith("env_state")}}
        self.policy = make_policy(cfg.policy["type"], cameras=self.data.cameras, image_size=self.data.image_size,
                                  state_dim=len(self.data.episodes[0].state[0]),
                                  action_dim=len(self.data.episodes[0].action[0]),
                                  language_dim=int(self.language.embeddings.shape[1]), **stats, **overrides)
        self.stats = stats
        if init_weights is not None:
            missing, unexpected = self.policy.load_state_dict(init_weights, strict=False)
            if missing or unexpected:
                raise ValueError(f"train.init_from={cfg.train.init_from}: weights do not fit this policy (missing "
                                 f"{missing[:3]}, unexpected {unexpected[:3]}); use the same policy type and options")
            self._say(f"starting from the weights of {cfg.train.init_from}")
        if cfg.train.init_encoder and not resume_state:
            from vla_trainer.pretrain_encoder import load_encoder_into
            cams = load_encoder_into(self.policy, cfg.train.init_encoder)
            self._say(f"image encoders of {', '.join(cams)} start from {cfg.train.init_encoder}")
        self.policy.to(self.device)
        if cfg.train.activation_checkpointing:
            if not enable_activation_checkpointing(self.policy):
                raise ValueError(f"train.activation_checkpointing: the {cfg.policy['type']} policy has no image "
                                 "encoders to checkpoint; set it false")
            self._say("activation checkpointing: the image encoders recompute their activations in backward")
        self.frozen: list[nn.Parameter] = []
        if cfg.train.freeze_encoder_steps:
            self.frozen = [p for encoder in image_encoders(self.policy) for p in encoder.parameters()
                           if p.requires_grad]
            if not self.frozen:
                raise ValueError(f"train.freeze_encoder_steps: the {cfg.policy['type']} policy has no trainable image "
                                 "encoder to freeze; set it 0")
        self.algorithm = make_algorithm(cfg.algorithm, self.data)
        k, history = self.policy.config.chunk_size, self.policy.config.n_obs_steps
        if history > 1 and not self.algorithm.takes_history:
            raise ValueError(f"algorithm.type={cfg.algorithm.type} learns from single observations; set "
                             f"policy.n_obs_steps=1 (it is {history}) or use algorithm.type=bc or hg_dagger")
        frame_weights = None
        weights = [self.algorithm.frame_weights(self.data.episodes[i]) for i in self.data.train_episodes]
        if all(w is not None for w in weights):
            frame_weights = np.concatenate(weights)
        self.sampler = BatchSampler(self.data, self.data.train_episodes, k, self.language,
                                    self.algorithm.frame_filter, frame_weights, cfg.data.symmetry, history)
        self.val_sampler = None
        if self.data.val_episodes:  # validated on the same targets as trained on (HG-DAgger: operator frames)
            try:
                self.val_sampler = BatchSampler(self.data, self.data.val_episodes, k, self.language,
                                                self.algorithm.frame_filter, history=history)
            except DataError:
                self._say(f"no validation: the {len(self.data.val_episodes)} validation episode(s) have no frame "
                          f"algorithm '{cfg.algorithm.type}' learns from")
        self.algorithm.attach(self.sampler, self.policy, self.device)
        params = [p for p in self.policy.parameters() if p.requires_grad]
        self.optimizer = torch.optim.AdamW(params, lr=cfg.train.lr, weight_decay=cfg.train.weight_decay)
        if cfg.train.threads == -1:
            self._choose_threads()
        self.bf16 = self._choose_bf16()  # before DDP wraps the policy: these trial steps must not reach its hooks
        self.model = _LossModule(self.policy, self.algorithm)
        if self.world > 1:
            self.model = nn.parallel.DistributedDataParallel(
                self.model, device_ids=[self.local_rank] if self.device.type == "cuda" else None)
        per_epoch = len(self.sampler.epoch(cfg.train.batch_size, np.random.default_rng(0), self.rank, self.world))
        per_epoch = max(1, per_epoch // cfg.train.grad_accum_steps)  # optimizer steps
        self.steps_per_epoch = per_epoch
        self.total_steps = cfg.train.epochs * per_epoch
        if cfg.train.max_steps:
            self.total_steps = min(self.total_steps, cfg.train.max_steps)
        self.step, self.start_epoch, self.history = 0, 0, []
        if resume_state:
            self._load_checkpoint(resume_state)

    def _read_resume(self) -> dict:
        state_path = Path(self.config.resume) / "checkpoint" / "state.json"
        if not state_path.is_file():
            raise FileNotFoundError(f"--resume {self.config.resume}: no checkpoint/state.json there; pass the run "
                                    "directory of an earlier `vla-train` (it prints it)")
        return json.loads(state_path.read_text())

    def _choose_threads(self) -> None:
        """train.threads=-1: time a few steps on one thread and on one per core (a step already slower than the
        best is not repeated) and keep the faster; more threads must save 10%."""
        cores = os.cpu_count() or 1
        if self.device.type != "cpu" or cores < 2:
            return
        frames = self.sampler.samples[:min(len(self.sampler), self.config.train.batch_size)]
        batch = self._tensors(self.sampler.gather(frames, False, self.rng), augment_images=False)
        timings: dict[int, float] = {}
        for threads in (1, cores):
            torch.set_num_threads(threads)
            best = float("inf")
            for i in range(4):
                t0 = time.perf_counter()
                self.policy.compute_loss(batch)["loss"].backward()
                elapsed = time.perf_counter() - t0
                if i > 0:  # the first is a warm-up
                    best = min(best, elapsed)
                if timings and elapsed > 2 * timings[1]:
                    best = min(best, elapsed)
                    break
            self.policy.zero_grad(set_to_none=True)
            timings[threads] = best
        use = cores if timings[cores] < 0.9 * timings[1] else 1
        torch.set_num_threads(use)
        self._say(f"{use} torch thread(s): a step takes {timings[1] * 1e3:.0f} ms on 1, "
                  f"{timings[cores] * 1e3:.0f} ms on {cores}")

    def _choose_bf16(self) -> bool:
        mode = self.config.train.bf16
        if mode != "auto":
            return mode == "on"
        if self.device.type == "cuda":
            return torch.cuda.is_bf16_supported()
        frames = self.sampler.samples[:min(len(self.sampler), self.config.train.batch_size)]
        batch = self._tensors(self.sampler.gather(frames, False, self.rng), augment_images=False)
        timings = {}
        for enabled in (False, True):
            times = []
            for _ in range(3):
                t0 = time.perf_counter()
                with torch.autocast(self.device.type, dtype=torch.bfloat16, enabled=enabled):
                    loss = self.policy.compute_loss(batch)["loss"]
                loss.backward()
                times.append(time.perf_counter() - t0)
            self.policy.zero_grad(set_to_none=True)
            timings[enabled] = min(times[1:])
        use = timings[True] < 0.85 * timings[False]
        self._say(f"bf16 autocast {'on' if use else 'off'}: a step takes {timings[True] * 1e3:.0f} ms with it, "
                  f"{timings[False] * 1e3:.0f} ms without")
        return use

    # --- batches -----------------------------------------------------------------------------------------
    def _tensors(self, arrays: dict, augment_images: bool) -> dict:
        batch = batch_tensors(arrays, self.device)
        if augment_images:
            cfg = self.config.data
            batch["images"] = {cam: augment(x, cfg.image_shift, cfg.colour_jitter, self.gen).contiguous()
                               for cam, x in batch["images"].items()}
        return batch

    def _lr(self) -> float:
        cfg = self.config.train
        if self.step < cfg.warmup_steps:
            return cfg.lr * (self.step + 1) / cfg.warmup_steps
        progress = min(1.0, (self.step - cfg.warmup_steps) / max(1, self.total_steps - cfg.warmup_steps))
        if cfg.time_budget_s and not cfg.max_steps and self._train_start is not None:
            # Without a step count the budget ends this run, so it drives the schedule; with one, the steps do and
            # the budget is only a safety cap (the same steps give the same schedule on any machine).
            progress = max(progress, min(1.0, (time.monotonic() - self._train_start) / cfg.time_budget_s))
        return cfg.lr * (0.1 + 0.9 * 0.5 * (1 + math.cos(math.pi * progress)))

    # --- the loop ----------------------------------------------------------------------------------------
    def run(self) -> dict[str, Any]:
        t_start = time.monotonic()
        self._setup()
        cfg = self.config
        if self.is_main:
            self.run_dir.mkdir(parents=True, exist_ok=True)
            (self.run_dir / "config.json").write_text(json.dumps(cfg.to_dict(), indent=1, default=str))
            self._open_logs()
            self._say(f"{cfg.policy['type']} policy, {parameter_count(self.policy, True):,} trainable parameters; "
                      f"{len(self.data.train_episodes)} training / {len(self.data.val_episodes)} validation episodes, "
                      f"{len(self.sampler)} samples; {self.steps_per_epoch} steps per epoch on {self.world} "
                      f"process(es), {self.device}; run directory {self.run_dir}")
        stop_reason = "epochs"
        epoch = self.start_epoch
        data_time = compute_time = 0.0
        train_start = self._train_start = time.monotonic()
        self._first_step = self.step
        bar = self._total_bar()
        accum = cfg.train.grad_accum_steps
        self.best: dict[str, Any] = {}
        if self.frozen and self.step < cfg.train.freeze_encoder_steps:
            self._say(f"image encoders frozen for the first {cfg.train.freeze_encoder_steps} steps")
        while epoch < cfg.train.epochs:
            self.policy.train()
            sums: dict[str, float] = {}
            batches = self.sampler.epoch(cfg.train.batch_size, self.rng, self.rank, self.world)
            micro = 0
            for frames in batches:
                t0 = time.perf_counter()
                batch = self._tensors(self.sampler.gather(frames, True, self.rng), augment_images=True)
                t1 = time.perf_counter()
                extra = self.algorithm.update(batch, frames, lambda a: self._tensors(a, augment_images=False))
                if micro == 0:
                    for group in self.optimizer.param_groups:
                        group["lr"] = self._lr()
                    self.optimizer.zero_grad(set_to_none=True)
                last = micro == accum - 1
                # Between the batches of one step, DDP keeps each process's gradients to itself.
                sync = self.model.no_sync() if self.world > 1 and not last else contextlib.nullcontext()
                with sync:
                    with torch.autocast(self.device.type, dtype=torch.bfloat16, enabled=self.bf16):
                        losses = self.model(batch)
                    (losses["loss"] / accum if accum > 1 else losses["loss"]).backward()
                for key, value in {**{k: float(v.detach()) for k, v in losses.items()}, **extra}.items():
                    sums[key] = sums.get(key, 0.0) + value
                micro = 0 if last else micro + 1
                if not last:
                    data_time += t1 - t0
                    compute_time += time.perf_counter() - t1
                    continue
                if self.frozen and self.step < cfg.train.freeze_encoder_steps:
                    for p in self.frozen:
                        p.grad = None  # the optimizer skips them: no step, no weight decay
                elif self.frozen and self.step == cfg.train.freeze_encoder_steps:
                    self._say(f"step {self.step}: the image encoders train from here on")
                if cfg.train.grad_clip > 0:
                    nn.utils.clip_grad_norm_(self.policy.parameters(), cfg.train.grad_clip)
                self.optimizer.step()
                t2 = time.perf_counter()
                data_time += t1 - t0
                compute_time += t2 - t1
                self.step += 1
                if bar is not None:
                    bar.update(1)
                    bar.set_postfix(epoch=epoch + 1, loss=f"{float(losses['loss']):.4f}")
                if self._should_stop(train_start):
                    break
            epoch += 1
            metrics = {f"train/{k}": v / max(1, len(batches)) for k, v in sums.items()}
            metrics.update(self.validate())
            metrics["lr"] = self._lr()
            self._end_epoch(epoch, metrics, time.monotonic() - train_start)
            if self._early_stop(epoch, metrics):
                stop_reason = "early_stopping"
                break
            if self._should_stop(train_start):
                stop_reason = "max_steps" if cfg.train.max_steps and self.step >= cfg.train.max_steps else "time_budget"
                break
        if stop_reason == "time_budget" and cfg.train.max_steps:
            self._say(f"warning: the time cap (train.time_budget_s={cfg.train.time_budget_s:g}) cut training short "
                      f"at step {self.step} of {cfg.train.max_steps}; the policy is undertrained. Raise the cap, or "
                      "train where the CPU is less busy")
        if bar is not None:
            bar.close()
        in_sync = self._ranks_in_sync()
        train_seconds = time.monotonic() - train_start
        result: dict[str, Any] = {"run_dir": str(self.run_dir), "epochs": epoch, "steps": self.step,
                                  "stopped_by": stop_reason, "train_seconds": round(train_seconds, 2),
                                  "planned_steps": self.total_steps,
                                  "steps_per_s": round((self.step - self._first_step) / max(train_seconds, 1e-9), 3),
                                  "samples_per_s": round((self.step - self._first_step) * cfg.train.batch_size
                                                         * accum * self.world / max(train_seconds, 1e-9), 1),
                                  "data_share": round(data_time / max(data_time + compute_time, 1e-9), 4),
                                  "bf16": self.bf16, "world_size": self.world, "ranks_in_sync": in_sync,
                                  "final": self.history[-1] if self.history else {}}
        if self.best:
            result.update(best_epoch=self.best["epoch"], best_step=self.best["step"],
                          best_val_loss=self.best["val_loss"])
        if self.is_main:
            self._save_checkpoint(epoch)  # the last weights, to resume from
            self._plot()
            self._close_logs()
            if self.best.get("weights") is not None and self.best["epoch"] != epoch:
                self.policy.load_state_dict(self.best["weights"])
                self._say(f"exporting the weights of epoch {self.best['epoch']} (step {self.best['step']}, "
                          f"validation loss {self.best['val_loss']:.4f}), the best validation")
            if cfg.output.export:
                result.update(self._export())
            result["total_seconds"] = round(time.monotonic() - t_start, 2)
            (self.run_dir / "result.json").write_text(json.dumps(result, indent=1, default=str))
        if self.world > 1:
            torch.distributed.barrier()
        if self.is_main:
            self.progress({"event": "done", **result})
        return result

    def _early_stop(self, epoch: int, metrics: dict[str, float]) -> bool:
        """train.early_stop_patience: remember the best validation's weights (on every process: each holds the same
        weights and validates on the same episodes) and say when ``patience`` validations brought nothing better."""
        patience = self.config.train.early_stop_patience
        if not patience:
            return False
        loss = metrics.get("val/loss")
        if loss is None:
            if epoch == self.start_epoch + 1:
                self._say("warning: train.early_stop_patience needs validation episodes (data.val_fraction > 0); "
                          "early stopping is off")
            return False
        if not self.best or loss < self.best["val_loss"]:
            weights = {k: v.detach().cpu().clone() for k, v in self.policy.state_dict().items()}
            self.best = {"epoch": epoch, "step": self.step, "val_loss": float(loss), "weights": weights}
            if self.is_main:
                save_file({k: v.contiguous() for k, v in weights.items()}, str(self.run_dir / "best.safetensors"))
            return False
        if epoch - self.best["epoch"] >= patience:
            self._say(f"early stopping at epoch {epoch}: no lower validation loss in {patience} validations since "
                      f"epoch {self.best['epoch']} ({self.best['val_loss']:.4f})")
            return True
        return False

    def _ranks_in_sync(self) -> bool:
        """Every rank holds the same weights (DDP averaged every gradient); trivially true for one process."""
        if self.world == 1:
            return True
        total = torch.stack([p.detach().double().sum() for p in self.policy.parameters()]).sum().reshape(1)
        high, low = total.clone(), total.clone()
        torch.distributed.all_reduce(high, op=torch.distributed.ReduceOp.MAX)
        torch.distributed.all_reduce(low, op=torch.distributed.ReduceOp.MIN)
        return bool((high - low).abs().item() <= 1e-6 * max(1.0, abs(total.item())))

    def _should_stop(self, train_start: float) -> bool:
        cfg = self.config.train
        if cfg.max_steps and self.step >= cfg.max_steps:
            return True
        if cfg.time_budget_s and time.monotonic() - train_start >= cfg.time_budget_s:
            if self.world > 1:  # every rank must stop at the same step, or DDP waits forever
                flag = torch.tensor([1.0])
                torch.distributed.all_reduce(flag)
                return bool(flag.item() > 0)
            return True
        if cfg.time_budget_s and self.world > 1:
            flag = torch.tensor([0.0])
            torch.distributed.all_reduce(flag)
            return bool(flag.item() > 0)
        return False

    @torch.no_grad()
    def validate(self) -> dict[str, float]:
        """Validation loss and the mean absolute action error per dimension, in the action's units."""
        if self.val_sampler is None:
            return {}
        self.policy.eval()
        rng = np.random.default_rng(1)
        losses, abs_err, count = [], None, 0
        for frames in self.val_sampler.epoch(self.config.train.batch_size, rng):
            batch = self._tensors(self.val_sampler.gather(frames, False, rng), augment_images=False)
            batch.pop("env_state", None)  # the validation loss is the action's, with or without the auxiliary loss
            losses.append(float(self.policy.compute_loss(batch)["loss"]))
            pred = self.policy(batch["images"], batch["state"], batch["language"])
            keep = (~batch["action_pad"]).float()[..., None]
            err = ((pred - batch["action"]).abs() * keep).sum(dim=(0, 1))
            abs_err = err if abs_err is None else abs_err + err
            count += float(keep.sum())
        names = self.data.action_names or [str(i) for i in range(len(abs_err))]
        out = {"val/loss": float(np.mean(losses))}
        out.update({f"val/action_mae/{n}": float(v) / max(count, 1.0) for n, v in zip(names, abs_err)})
        return out

    # --- logs, checkpoints, plots ------------------------------------------------------------------------
    def _say(self, text: str) -> None:
        if self.is_main:
            self.progress({"event": "log", "message": text})

    def _bar(self, desc: str):
        def wrap(items):
            if not self.is_main or not self._tty():
                return items
            from tqdm import tqdm
            return tqdm(items, desc=desc, unit="episode", leave=False)
        return wrap

    def _total_bar(self):
        if not self.is_main or not self._tty():
            return None
        from tqdm import tqdm
        return tqdm(total=self.total_steps, initial=self.step, desc="training", unit="step")

    @staticmethod
    def _tty() -> bool:
        import sys
        return sys.stderr.isatty() and os.environ.get("VLA_PROGRESS", "") != "json"

    def _open_logs(self) -> None:
        self.tb = None
        if "tensorboard" in self.config.output.log:
            from torch.utils.tensorboard import SummaryWriter
            self.tb = SummaryWriter(str(self.run_dir / "tensorboard"))
        self.csv_path = self.run_dir / "metrics.csv" if "csv" in self.config.output.log else None

    def _close_logs(self) -> None:
        if self.tb is not None:
            self.tb.close()

    def _end_epoch(self, epoch: int, metrics: dict[str, float], elapsed: float) -> None:
        row = {"epoch": epoch, "step": self.step, "elapsed_s": round(elapsed, 2), **metrics}
        self.history.append(row)
        if not self.is_main:
            return
        if self.tb is not None:
            for key, value in metrics.items():
                self.tb.add_scalar(key, value, self.step)
        if self.csv_path is not None:
            rows = self.history
            keys = list(dict.fromkeys(k for r in rows for k in r))
            with open(self.csv_path, "w", newline="") as f:
                writer = csv.DictWriter(f, fieldnames=keys)
                writer.writeheader()
                writer.writerows(rows)
        epochs_left = self.config.train.epochs - epoch
        per_epoch = elapsed / max(1, epoch - self.start_epoch)
        eta = epochs_left * per_epoch
        if self.config.train.max_steps:  # whichever limit comes first
            eta = min(eta, max(0, self.config.train.max_steps - self.step) * per_epoch / self.steps_per_epoch)
        if self.config.train.time_budget_s:
            eta = min(eta, max(0.0, self.config.train.time_budget_s - elapsed))
        self.progress({"event": "epoch", "epoch": epoch, "epochs": self.config.train.epochs, "step": self.step,
                       "train_loss": metrics.get("train/loss", float("nan")),
                       "val_loss": metrics.get("val/loss", float("nan")), "eta_s": round(eta, 1),
                       "metrics": metrics})
        if self.config.output.checkpoint_every and epoch % self.config.output.checkpoint_every == 0:
            self._save_checkpoint(epoch)

    def _save_checkpoint(self, epoch: int) -> None:
        ckpt = self.run_dir / "checkpoint"
        tmp = self.run_dir / "checkpoint.tmp"
        tmp.mkdir(parents=True, exist_ok=True)
        save_file({k: v.detach().cpu().contiguous() for k, v in self.policy.state_dict().items()},
                  str(tmp / "model.safetensors"))
        opt, meta = _flatten_optimizer(self.optimizer)
        save_file(opt, str(tmp / "optimizer.safetensors"))
        algo = self.algorithm.state_dict()
        if algo:
            save_file({k: v.detach().cpu().contiguous() for k, v in algo.items()}, str(tmp / "algorithm.safetensors"))
        state = {"epoch": epoch, "step": self.step, "stats": self.stats, "optimizer": meta,
                 "policy": {"type": self.config.policy["type"], **_jsonable(asdict(self.policy.config))},
                 "history": self.history, "encoder_id": self.encoder_id}
        (tmp / "state.json").write_text(json.dumps(state, indent=1))
        old = self.run_dir / "checkpoint.old"
        shutil.rmtree(old, ignore_errors=True)
        if ckpt.exists():
            ckpt.replace(old)  # a kill between these two renames leaves checkpoint.old, never a half checkpoint
        tmp.replace(ckpt)
        shutil.rmtree(old, ignore_errors=True)
        self.progress({"event": "checkpoint", "epoch": epoch, "path": str(ckpt)})

    def _load_checkpoint(self, state: dict) -> None:
        ckpt = Path(self.config.resume) / "checkpoint"
        self.policy.load_state_dict(load_file(str(ckpt / "model.safetensors")))
        _load_optimizer(self.optimizer, load_file(str(ckpt / "optimizer.safetensors")), state["optimizer"])
        if (ckpt / "algorithm.safetensors").is_file():
            self.algorithm.load_state_dict(load_file(str(ckpt / "algorithm.safetensors")))
        self.step, self.start_epoch = int(state["step"]), int(state["epoch"])
        self.history = list(state.get("history", []))
        self._say(f"resumed from {ckpt} at epoch {self.start_epoch}, step {self.step}")

    def _plot(self) -> None:
        if not self.history:
            return
        from vla_trainer.report import loss_curve_png
        loss_curve_png(self.history, self.run_dir / "loss.png", title=f"{self.config.policy['type']} training")

    def _export(self) -> dict[str, Any]:
        from vla_trainer.export import export_artifact
        cfg = self.config
        disable_activation_checkpointing(self.policy)  # the exported graph is the plain forward
        self.policy.eval()
        policy = self.policy.float().cpu()
        self._say("exporting ONNX and checking it against torch")
        artifact, diff = export_artifact(
            policy, workspace_path(cfg.output.models_dir) if not Path(cfg.output.models_dir).is_absolute()
            else Path(cfg.output.models_dir), cfg.output.name, self.version, fps=self.data.fps,
            state_names=self.data.state_names, action_names=self.data.action_names, encoder_id=self.encoder_id,
            execution=cfg.output.execution or policy.default_execution, ensemble_coeff=cfg.output.ensemble_coeff,
            receding_steps=cfg.output.receding_steps or policy.default_receding_steps(),
            training={"config": _jsonable(cfg.to_dict()), "steps": self.step, "history": self.history[-1:],
                      "datasets": list(cfg.data.paths), "episodes": len(self.data.episodes),
                      "frames": self.data.num_frames},
            dataset_fingerprint=self.data.fingerprint, tensorrt=cfg.output.tensorrt, fp16=cfg.output.fp16)
        self._say(f"artifact {artifact.path} (ONNX vs torch max abs diff {diff:.2e})")
        return {"artifact": str(artifact.path), "name": artifact.name, "version": artifact.version,
                "onnx_max_abs_diff": diff, "engines": artifact.manifest.get("engines", [])}


def _read_init(path: str) -> tuple[dict[str, torch.Tensor], dict[str, list[float]]]:
    """Weights and normalisation statistics of an artifact directory or a run directory's checkpoint."""
    root = Path(path)
    if (root / "manifest.json").is_file():
        from vla_core.artifact import verify_artifact
        artifact = verify_artifact(root)  # checksums before anything is deserialised
        config = artifact.manifest["weights"]["config"]
        weights = root / artifact.manifest["weights"]["file"]
    elif (root / "checkpoint" / "state.json").is_file():
        config = json.loads((root / "checkpoint" / "state.json").read_text())["policy"]
        weights = root / "checkpoint" / "model.safetensors"
    else:
        raise FileNotFoundError(f"train.init_from={path}: neither an artifact (manifest.json) nor a run directory "
                                "(checkpoint/state.json)")
    stats = {k: config[k] for k in ("state_mean", "state_std", "action_mean", "action_std") if config.get(k)}
    return load_file(str(weights)), (stats if len(stats) == 4 else None)


def _jsonable(obj):
    return json.loads(json.dumps(obj, default=lambda o: list(o) if isinstance(o, tuple) else str(o)))


def _flatten_optimizer(optimizer: torch.optim.Optimizer) -> tuple[dict[str, torch.Tensor], dict]:
    """The optimizer's state as named tensors (for safetensors) plus its JSON-able scalars."""
    sd = optimizer.state_dict()
    tensors, scalars = {}, {}
    for pid, state in sd["state"].items():
        for key, value in state.items():
            if torch.is_tensor(value):
                tensors[f"{pid}.{key}"] = value.detach().cpu().contiguous()
            else:
                scalars[f"{pid}.{key}"] = value
    return tensors, {"param_groups": _jsonable(sd["param_groups"]), "scalars": scalars}


def _load_optimizer(optimizer: torch.optim.Optimizer, tensors: dict[str, torch.Tensor], meta: dict) -> None:
    state: dict[int, dict] = {}
    for name, value in tensors.items():
        pid, key = name.split(".", 1)
        state.setdefault(int(pid), {})[key] = value
    for name, value in meta["scalars"].items():
        pid, key = name.split(".", 1)
        state.setdefault(int(pid), {})[key] = value
    optimizer.load_state_dict({"state": state, "param_groups": meta["param_groups"]})


def train(config: TrainConfig, progress: Progress | None = None) -> dict[str, Any]:
    """Train, checkpoint, export; returns the result (run directory, artifact, figures)."""
    trainer = Trainer(config, progress)
    try:
        return trainer.run()
    finally:
        if trainer.world > 1 and torch.distributed.is_initialized():
            torch.distributed.destroy_process_group()


def with_overrides(config: TrainConfig, **sections) -> TrainConfig:
    """A copy of ``config`` with some fields of some sections replaced: ``with_overrides(c, train={"epochs": 2})``."""
    updates = {}
    for section, values in sections.items():
        current = getattr(config, section)
        updates[section] = {**current, **values} if isinstance(current, dict) else replace(current, **values)
    return replace(config, **updates)
