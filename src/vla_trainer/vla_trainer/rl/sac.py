"""Soft actor-critic (Haarnoja et al. 2018) on the workspace's encoders, with RLPD-style batches.

One :meth:`SACAgent.update` on a batch (the flat layout of vla_trainer.rl.replay, numpy) does, in this order:
1. check the batch (shapes, finite values; a ValueError names the field);
2. compute every loss from the weights as they are: the critics' TD loss against
   ``y = r + discount * (1 - done) * (min(Q1', Q2')(s', a') - alpha * log pi(a'|s'))`` with ``a' ~ pi(s')`` and the
   target critics Q', the actor's ``alpha * log pi(a|s) - min(Q1, Q2)(s, a)`` (the critics' features detached, so
   only the actor moves), and the temperature's ``-log alpha * (log pi + target_entropy)``;
3. compute each loss's gradients for its own parameters only, and refuse the whole update, raising
   :class:`DivergedUpdate`, when a loss or a gradient is not finite: no optimizer has stepped, so every weight, the
   target critics and the optimizers' moments are as they were;
4. step the three optimizers and move the target critics by Polyak averaging (``tau``).

Losses come from the same weights (the actor's from the critics before their step), which is what makes step 3
all-or-nothing; RLPD and HIL-SERL's learners update critics and actor from one batch the same way.

Why no RL library: stable-baselines3's SAC owns its policy classes (built from gym spaces, not our
image/state/instruction encoders), its replay buffer and a pickled zip checkpoint, while artifacts here are
safetensors and a verified ONNX graph; torchrl's ``SACLoss`` could wrap these modules through TensorDict, but it is
not installed, pins torch versions, and its loss-then-step loop would need this same code around it to refuse a
non-finite update atomically. The update is ~100 lines of plain torch, tested term by term (test_rl_sac.py).
"""
from __future__ import annotations

import copy
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from safetensors.torch import load_file, save_file

from vla_core.observation import to_chw_float
from vla_trainer.rl.networks import SACActor, SACNetConfig, TwinQ
from vla_trainer.rl.replay import TransitionSpec, check_batch


class DivergedUpdate(ValueError):
    """An update whose loss or gradient was not finite; it was not applied (the weights are unchanged)."""


@dataclass(frozen=True)
class SACConfig:
    discount: float = 0.97
    tau: float = 0.005                 # Polyak factor of the target critics per update
    actor_lr: float = 3e-4
    critic_lr: float = 3e-4
    temperature_lr: float = 3e-4
    init_temperature: float = 0.1
    target_entropy: float | None = None  # None: -action_dim (Haarnoja et al.'s heuristic)
    batch_size: int = 256
    demo_fraction: float = 0.5         # RLPD: this share of each batch from demonstrations
    image_shift: int = 4               # DrQ random-shift augmentation of obs and next obs, pixels (0: none)
    max_grad_norm: float = 10.0        # gradient clipping per network (0: none)
    seed: int = 0

    def __post_init__(self):
        problems = []
        if not 0.0 < self.discount < 1.0:
            problems.append(f"discount {self.discount} must be in (0, 1)")
        if not 0.0 < self.tau <= 1.0:
            problems.append(f"tau {self.tau} must be in (0, 1]")
        for name in ("actor_lr", "critic_lr", "temperature_lr", "init_temperature"):
            if not getattr(self, name) > 0:
                problems.append(f"{name} {getattr(self, name)} must be positive")
        if self.target_entropy is not None and not np.isfinite(self.target_entropy):
            problems.append(f"target_entropy {self.target_entropy} must be finite (or None for -action_dim)")
        if self.batch_size < 1 or self.image_shift < 0 or self.max_grad_norm < 0:
            problems.append(f"batch_size {self.batch_size} must be >= 1, image_shift {self.image_shift} and "
                            f"max_grad_norm {self.max_grad_norm} >= 0")
        if not 0.0 <= self.demo_fraction <= 1.0:
            problems.append(f"demo_fraction {self.demo_fraction} must be in [0, 1]")
        if problems:
            raise ValueError("SAC config: " + "; ".join(problems))


class SACAgent:
    """Actor, twin critics with target copies, and the entropy temperature, on one device."""

    def __init__(self, net: SACNetConfig, config: SACConfig = SACConfig(), device: str | torch.device = "cpu"):
        self.config, self.device = config, torch.device(device)
        torch.manual_seed(config.seed)
        self.actor = SACActor(net).to(self.device)
        self.critic = TwinQ(net).to(self.device)
        self.critic_target = copy.deepcopy(self.critic)
        for p in self.critic_target.parameters():
            p.requires_grad_(False)
        self.log_alpha = torch.tensor(float(np.log(config.init_temperature)), device=self.device, requires_grad=True)
        self.target_entropy = float(-net.action_dim if config.target_entropy is None else config.target_entropy)
        self.actor_params = [p for p in self.actor.parameters() if p.requires_grad]
        self.critic_params = [p for p in self.critic.parameters() if p.requires_grad]
        self.actor_opt = torch.optim.Adam(self.actor_params, lr=config.actor_lr)
        self.critic_opt = torch.optim.Adam(self.critic_params, lr=config.critic_lr)
        self.alpha_opt = torch.optim.Adam([self.log_alpha], lr=config.temperature_lr)
        self.spec = TransitionSpec.from_config(net)
        self.generator = torch.Generator().manual_seed(config.seed)
        self.updates = 0

    @property
    def alpha(self) -> float:
        return float(self.log_alpha.detach().exp())

    # --- batches -----------------------------------------------------------------------------------------
    def tensors(self, batch: dict, augment_images: bool = True) -> dict[str, Any]:
        """A checked numpy batch -> tensors: images (B, 3, H, W) float32 in [0, 1] through the one conversion
        the trainer and the policy node use (vla_core.observation.to_chw_float), DrQ shifts when enabled."""
        from vla_trainer.train import augment
        out: dict[str, Any] = {}
        for key in ("images", "next_images"):
            imgs = {cam: torch.from_numpy(to_chw_float(v)).to(self.device) for cam, v in batch[key].items()}
            if augment_images and self.config.image_shift:
                imgs = {cam: augment(x, self.config.image_shift, 0.0, self.generator) for cam, x in imgs.items()}
            out[key] = imgs
        for key in ("state", "next_state", "language", "action", "reward"):
            out[key] = torch.from_numpy(np.ascontiguousarray(batch[key], np.float32)).to(self.device)
        out["done"] = torch.from_numpy(np.asarray(batch["done"], np.float32)).to(self.device)
        return out

    # --- the terms ---------------------------------------------------------------------------------------
    def td_target(self, t: dict, noise: torch.Tensor | None = None) -> torch.Tensor:
        """(B,) soft TD target from the target critics and a fresh action at the next observation."""
        with torch.no_grad():
            a2, logp2 = self.actor.sample(t["next_images"], t["next_state"], t["language"], noise, self.generator)
            q1, q2 = self.critic_target(t["next_images"], self.actor.normalize_state(t["next_state"]), t["language"],
                                        self.actor.to_unit(a2))
            soft_v = torch.min(q1, q2) - self.log_alpha.exp() * logp2
            return t["reward"] + self.config.discount * (1.0 - t["done"]) * soft_v

    def losses(self, t: dict, noise: torch.Tensor | None = None,
               next_noise: torch.Tensor | None = None) -> dict[str, torch.Tensor]:
        """The three losses of one update, all from the current weights (see the module docstring)."""
        y = self.td_target(t, next_noise)
        feats = self.critic.features(t["images"], self.actor.normalize_state(t["state"]), t["language"])
        q1, q2 = self.critic.heads(feats, self.actor.to_unit(t["action"]))
        critic_loss = 0.5 * ((q1 - y).pow(2).mean() + (q2 - y).pow(2).mean())
        action, logp = self.actor.sample(t["images"], t["state"], t["language"], noise, self.generator)
        pq1, pq2 = self.critic.heads(feats.detach(), self.actor.to_unit(action))
        actor_loss = (self.log_alpha.detach().exp() * logp - torch.min(pq1, pq2)).mean()
        alpha_loss = -(self.log_alpha * (logp.detach() + self.target_entropy)).mean()
        return {"critic": critic_loss, "actor": actor_loss, "temperature": alpha_loss, "q": q1.detach(),
                "target": y, "logp": logp.detach()}

    # --- the update --------------------------------------------------------------------------------------
    def update(self, batch: dict, noise: torch.Tensor | None = None,
               next_noise: torch.Tensor | None = None) -> dict[str, float]:
        """One SAC update on a flat numpy batch; returns scalar metrics. Raises ValueError for a bad batch and
        DivergedUpdate (nothing applied) for a non-finite loss or gradient."""
        arrays = check_batch(batch, self.spec)
        t = self.tensors(arrays)
        self.actor.train()
        self.critic.train()
        terms = self.losses(t, noise, next_noise)
        groups = (("critic", self.critic_params), ("actor", self.actor_params), ("temperature", [self.log_alpha]))
        grads, problems = {}, []
        for name, params in groups:
            loss = terms[name]
            if not torch.isfinite(loss):
                problems.append(f"{name} loss is {float(loss.detach())}")
                continue
            g = torch.autograd.grad(loss, params, retain_graph=True, allow_unused=True)
            grads[name] = [torch.zeros_like(p) if gi is None else gi for p, gi in zip(params, g)]
        norms = {}
        if not problems:
            for name, params in groups:
                for p, gi in zip(params, grads[name]):
                    p.grad = gi
                # one fused pass: the total norm is not finite when any gradient is not (and clips when it is)
                limit = self.config.max_grad_norm if self.config.max_grad_norm and name != "temperature" else \
                    float("inf")
                norms[name] = float(torch.nn.utils.clip_grad_norm_(params, limit))
                if not np.isfinite(norms[name]):
                    problems.append(f"{name} gradient is not finite")
        if problems:
            for _, params in groups:
                for p in params:
                    p.grad = None
            raise DivergedUpdate(f"SAC update {self.updates + 1} refused: {'; '.join(problems)}. Nothing was applied "
                                 "(weights, target critics and optimizer state are unchanged); check the rewards' and "
                                 "states' scale or lower the learning rates")
        for opt in (self.critic_opt, self.actor_opt, self.alpha_opt):
            opt.step()
            opt.zero_grad(set_to_none=True)
        self.soft_update()
        self.updates += 1
        return {"critic_loss": float(terms["critic"].detach()), "actor_loss": float(terms["actor"].detach()),
                "temperature_loss": float(terms["temperature"].detach()), "alpha": self.alpha,
                "q": float(terms["q"].mean()), "td_target": float(terms["target"].mean()),
                "entropy": float(-terms["logp"].mean()), "critic_grad_norm": norms["critic"],
                "actor_grad_norm": norms["actor"]}

    def soft_update(self) -> None:
        with torch.no_grad():
            torch._foreach_lerp_(list(self.critic_target.parameters()), list(self.critic.parameters()),
                                 self.config.tau)
            for b, tb in zip(self.critic.buffers(), self.critic_target.buffers()):
                tb.copy_(b)

    # --- acting ------------------------------------------------------------------------------------------
    @torch.no_grad()
    def act(self, images: dict[str, np.ndarray], state: np.ndarray, language: np.ndarray,
            deterministic: bool = False) -> np.ndarray:
        """Actions (B, D) in SI units for uint8 frames (B, H, W, 3) per camera, states (B, S), embeddings (B, L)."""
        self.actor.eval()
        imgs = {cam: torch.from_numpy(to_chw_float(v)).to(self.device) for cam, v in images.items()}
        s = torch.as_tensor(state, dtype=torch.float32, device=self.device)
        lang = torch.as_tensor(language, dtype=torch.float32, device=self.device)
        if deterministic:
            return self.actor(imgs, s, lang)[:, 0].cpu().numpy()
        return self.actor.sample(imgs, s, lang, generator=self.generator)[0].cpu().numpy()

    # --- persistence -------------------------------------------------------------------------------------
    def state_dict(self) -> dict[str, torch.Tensor]:
        out = {"log_alpha": self.log_alpha.detach().reshape(1)}
        for name in ("actor", "critic", "critic_target"):
            out.update({f"{name}.{k}": v.detach() for k, v in getattr(self, name).state_dict().items()})
        return out

    def save(self, path: str | Path) -> None:
        """All weights as safetensors (no pickles); the configs go in the metadata as JSON."""
        import json
        meta = {"net": json.dumps(asdict(self.actor.config)), "sac": json.dumps(asdict(self.config)),
                "updates": str(self.updates)}
        save_file({k: v.contiguous().cpu() for k, v in self.state_dict().items()}, str(path), metadata=meta)

    def load_weights(self, path: str | Path) -> None:
        """Weights saved by :meth:`save` for the same network shapes (a mismatch raises, naming the keys)."""
        state = load_file(str(path))
        with torch.no_grad():
            self.log_alpha.copy_(state["log_alpha"][0])
        for name in ("actor", "critic", "critic_target"):
            prefix = f"{name}."
            sub = {k[len(prefix):]: v for k, v in state.items() if k.startswith(prefix)}
            getattr(self, name).load_state_dict(sub, strict=True)

    def export_actor(self, models_dir: Path, name: str, version: str, *, fps: float, state_names: list[str],
                     action_names: list[str], encoder_id: str, **kwargs):
        """The deterministic actor (tanh of the mean) as a policy artifact through vla_trainer.export: ONNX
        checked against torch, golden pair, safetensors; executed one action per tick (receding horizon of 1)."""
        from vla_trainer.export import export_artifact
        return export_artifact(self.actor, Path(models_dir), name, version, fps=fps, state_names=list(state_names),
                               action_names=list(action_names), encoder_id=encoder_id, execution="receding_horizon",
                               receding_steps=1, **kwargs)


def net_config_for(data, language_dim: int, action_low, action_high, **overrides) -> SACNetConfig:
    """Network shapes and normaliser from training data (vla_trainer.data.TrainingData) and the contract's action
    bounds (``contract.action.low``/``high``)."""
    stats = data.stats()
    return SACNetConfig(cameras=data.cameras, image_size=data.image_size, state_dim=len(data.state_names) or
                        int(data.episodes[0].state.shape[1]), language_dim=language_dim,
                        action_dim=int(data.episodes[0].action.shape[1]), state_mean=stats["state_mean"],
                        state_std=stats["state_std"], action_mean=stats["action_mean"],
                        action_std=stats["action_std"], action_low=tuple(action_low),
                        action_high=tuple(action_high), **overrides)
