"""Actor-critic offline RL: TD3+BC and CQL, training the policy itself as the actor (docs/offline_rl.md).

Both learn from the same transitions as IQL (:class:`vla_trainer.algorithms.CriticAlgorithm`: the datasets'
rewards or success labels; failed and partial episodes are data), with twin critics Q(s, a) over the first action
of the chunk (the one executed at s) in the policy's normalised action units, and Polyak-averaged targets.

- ``td3bc`` (Fujimoto & Gu 2021): critics by TD3 (clipped double Q, a target actor with target policy smoothing),
  ``policy_delay`` critic updates per actor update; the actor minimises
  ``-lambda * Q1(s, pi(s)) + MSE(pi(s), a)`` with ``lambda = alpha / mean|Q1(s, a)|`` (detached), the MSE over the
  whole action chunk.
- ``cql`` (Kumar et al. 2020), CQL(H): the critics' TD loss plus
  ``alpha * (log-sum-exp_a Q(s, a) - Q(s, a_data))``, the log-sum-exp estimated by importance sampling over
  ``num_actions`` uniform actions in the data's action box and ``num_actions`` around the actor's action; with
  ``lagrange`` the weight adapts so that the gap stays near ``target_action_gap``. The actor is deterministic (the
  policies here are): after ``bc_steps`` of behaviour cloning it maximises ``min(Q1, Q2)(s, pi(s))``; the
  "policy" proposal is its action plus Gaussian noise of ``proposal_noise``.

The policy stays an ordinary policy of its type: it is exported and served as after behaviour cloning.
"""
from __future__ import annotations

import math
from contextlib import contextmanager
from dataclasses import dataclass, field

import numpy as np
import torch
from torch import nn

from vla_trainer.algorithms import CriticAlgorithm, Transitions, frozen_copy, polyak, register_algorithm
from vla_trainer.config import AlgorithmConfig
from vla_trainer.policies.base import masked_mean

#: Policy types whose forward pass is a deterministic, differentiable map from observation to action chunk.
ACTOR_POLICIES = ("mlp", "act")


def _help(text: str, default):
    return field(default=default, metadata={"help": text})


@contextmanager
def frozen(*nets: nn.Module):
    """No parameter gradients for ``nets`` inside (the actor's loss goes through the critics, who keep theirs)."""
    params = [p for net in nets for p in net.parameters() if p.requires_grad]
    for p in params:
        p.requires_grad_(False)
    try:
        yield
    finally:
        for p in params:
            p.requires_grad_(True)


class ActorCritic(CriticAlgorithm):
    """The policy as a deterministic actor: its chunk in normalised units, the first step scored by the critics."""

    def build(self, policy_config, device: torch.device) -> None:
        if self.policy.type_name not in ACTOR_POLICIES:
            raise ValueError(f"algorithm {self.config.type} trains the policy as a deterministic actor: use "
                             f"policy.type {' or '.join(ACTOR_POLICIES)}, not '{self.policy.type_name}' (or "
                             "algorithm.type=iql, "
                             "which weights the policy's own loss)")
        self.updates = 0
        self.optimizer = torch.optim.Adam(self.twin_critics(), lr=self.config.critic_lr)
        # The data's action box in normalised units: uniform proposals (CQL) and smoothed target actions (TD3) stay
        # inside it, as the papers keep them inside the action space.
        with torch.no_grad():
            frames = self.sampler.samples
            data_actions = self.policy.normalize_action(torch.as_tensor(self.sampler.action[frames], device=device),
                                                        torch.as_tensor(self.sampler.state[frames], device=device))
        self.low, self.high = data_actions.min(dim=0).values, data_actions.max(dim=0).values
        self.high = torch.maximum(self.high, self.low + 1e-3)

    def actor_chunk(self, policy, images, raw_state: torch.Tensor, language: torch.Tensor) -> torch.Tensor:
        """(B, K, D) the policy's action chunk in normalised units (differentiable)."""
        return policy.normalize_action(policy(images, raw_state, language), raw_state)

    @staticmethod
    def bc_mse(chunk: torch.Tensor, policy, batch: dict) -> torch.Tensor:
        """Mean squared error to the recorded chunk (normalised units), padding excluded."""
        target = policy.normalize_action(batch["action"], batch["state"])
        return masked_mean((chunk - target).pow(2), batch["action_pad"])

    def extra_batch(self, size: int, to_tensor) -> tuple[dict, np.ndarray]:
        """A fresh batch for an extra critic update (TD3's delayed actor)."""
        frames = np.random.default_rng(self.updates).choice(self.sampler.samples, size=size)
        return to_tensor(self.sampler.gather(frames, paraphrase=False, rng=np.random.default_rng(0))), frames

    def td_target(self, t: Transitions, next_action: torch.Tensor) -> torch.Tensor:
        q_next = torch.min(self.q1_target(t.next_images, t.next_state, t.next_language, next_action),
                           self.q2_target(t.next_images, t.next_state, t.next_language, next_action))
        return t.reward + self.config.discount * (1.0 - t.done) * q_next

    def state_dict(self) -> dict[str, torch.Tensor]:
        return {**super().state_dict(), "updates": torch.tensor(self.updates)}

    def load_state_dict(self, state: dict[str, torch.Tensor]) -> None:
        super().load_state_dict(state)
        self.updates = int(state.get("updates", torch.tensor(0)))


@dataclass(frozen=True)
class ActorCriticConfig(AlgorithmConfig):
    """Options td3bc and cql share."""

    discount: float = _help("discount per step (10 Hz: 0.99 reaches about 10 s ahead)", 0.99)
    tau: float = _help("Polyak rate of the target networks", 0.005)
    critic_lr: float = _help("learning rate of the critics", 3e-4)

    def __post_init__(self):
        super().__post_init__()
        if not 0.0 < self.discount < 1.0 or not 0.0 < self.tau <= 1.0 or not self.critic_lr > 0:
            raise ValueError(f"algorithm.discount {self.discount} must be in (0, 1), algorithm.tau {self.tau} in "
                             f"(0, 1] and algorithm.critic_lr {self.critic_lr} positive")


@dataclass(frozen=True)
class TD3BCConfig(ActorCriticConfig):
    type: str = "td3bc"
    alpha: float = _help("weight of Q against behaviour cloning: lambda = alpha / mean|Q| (the paper's 2.5)", 2.5)
    policy_noise: float = _help("target policy smoothing: noise std on the target action, normalised units", 0.2)
    noise_clip: float = _help("target policy smoothing: the noise is clipped to +-this", 0.5)
    policy_delay: int = _help("critic updates per actor update (delayed actor updates)", 2)

    def __post_init__(self):
        super().__post_init__()
        if not self.alpha >= 0 or self.policy_noise < 0 or self.noise_clip < 0 or self.policy_delay < 1:
            raise ValueError(f"algorithm.alpha {self.alpha}, algorithm.policy_noise {self.policy_noise} and "
                             f"algorithm.noise_clip {self.noise_clip} must be >= 0, algorithm.policy_delay "
                             f"{self.policy_delay} >= 1")


@register_algorithm("td3bc")
class TD3BC(ActorCritic):
    config_class = TD3BCConfig
    networks = ("q1", "q2", "q1_target", "q2_target", "actor_target")

    def build(self, policy_config, device: torch.device) -> None:
        super().build(policy_config, device)
        self.actor_target = frozen_copy(self.policy)
        self.actor_target.eval()  # no dropout in the target actor's actions

    def critic_step(self, t: Transitions) -> float:
        cfg = self.config
        with torch.no_grad():
            a_next = self.actor_chunk(self.actor_target, t.next_images, t.next_raw_state, t.next_language)[:, 0]
            noise = (torch.randn_like(a_next) * cfg.policy_noise).clamp(-cfg.noise_clip, cfg.noise_clip)
            target = self.td_target(t, torch.maximum(torch.minimum(a_next + noise, self.high), self.low))
        loss = (self.q1(t.images, t.state, t.language, t.action) - target).pow(2).mean() + \
               (self.q2(t.images, t.state, t.language, t.action) - target).pow(2).mean()
        self.optimizer.zero_grad(set_to_none=True)
        loss.backward()
        self.optimizer.step()
        return float(loss.detach())

    def update(self, batch: dict, frames: np.ndarray, to_tensor) -> dict[str, float]:
        # TD3 updates the actor and every target once per policy_delay critic updates: the extra critic updates
        # come first, on fresh batches, then the one on the actor's batch.
        for _ in range(self.config.policy_delay - 1):
            extra, extra_frames = self.extra_batch(len(frames), to_tensor)
            self.critic_step(self.transitions(extra, extra_frames, to_tensor))
        t = self.transitions(batch, frames, to_tensor)
        q_loss = self.critic_step(t)
        self.update_critic_targets(self.config.tau)
        polyak(self.policy, self.actor_target, self.config.tau)
        self.updates += 1
        with torch.no_grad():  # lambda's normaliser: mean |Q| on the data (the paper's, detached)
            self.q_scale = self.q1(t.images, t.state, t.language, t.action).abs().mean().clamp(min=1e-6)
        return {"q_loss": q_loss, "q_mean_abs": float(self.q_scale)}

    def policy_loss(self, policy, batch: dict) -> dict[str, torch.Tensor]:
        chunk = self.actor_chunk(policy, batch["images"], batch["state"], batch["language"])
        bc = self.bc_mse(chunk, policy, batch)
        with frozen(self.q1):
            q = self.q1(batch["images"], policy.normalize_state(batch["state"]), batch["language"], chunk[:, 0])
        lam = self.config.alpha / self.q_scale
        loss = -lam * q.mean() + bc
        return {"loss": loss, "bc_mse": bc.detach(), "actor_q": q.mean().detach()}


@dataclass(frozen=True)
class CQLConfig(ActorCriticConfig):
    type: str = "cql"
    alpha: float = _help("weight of the conservative term, log-sum-exp of Q minus Q on the data (CQL(H))", 5.0)
    num_actions: int = _help("sampled actions per state for the log-sum-exp: this many uniform, this many "
                             "around the actor's", 10)
    proposal_noise: float = _help("std of the Gaussian around the actor's action for the sampled actions, "
                                  "normalised units", 0.3)
    lagrange: bool = _help("adapt the conservative weight so that its gap stays near target_action_gap", False)
    target_action_gap: float = _help("with lagrange: the gap (log-sum-exp of Q minus Q on the data) to keep", 5.0)
    bc_steps: int = _help("the actor imitates (MSE) for this many first steps, then maximises Q (CQL's "
                          "policy_eval_start)", 1000)
    bc_weight: float = _help("an MSE imitation term kept in the actor's loss after bc_steps (0: pure CQL)", 0.0)

    def __post_init__(self):
        super().__post_init__()
        if not self.alpha >= 0 or self.num_actions < 1 or not self.proposal_noise > 0 or self.bc_steps < 0 \
                or self.bc_weight < 0:
            raise ValueError(f"algorithm.alpha {self.alpha}, algorithm.bc_steps {self.bc_steps} and "
                             f"algorithm.bc_weight {self.bc_weight} must be >= 0, algorithm.num_actions "
                             f"{self.num_actions} >= 1 and algorithm.proposal_noise {self.proposal_noise} positive")


@register_algorithm("cql")
class CQL(ActorCritic):
    config_class = CQLConfig
    networks = ("q1", "q2", "q1_target", "q2_target")

    def build(self, policy_config, device: torch.device) -> None:
        super().build(policy_config, device)
        self.log_alpha_prime = torch.zeros((), device=device, requires_grad=True)
        self.alpha_optimizer = torch.optim.Adam([self.log_alpha_prime], lr=self.config.critic_lr)

    def sampled_actions(self, t: Transitions) -> tuple[torch.Tensor, torch.Tensor]:
        """(2N, B, D) actions and (2N, B) their proposal's log-density: N uniform in the data's box, N from a
        Gaussian around the actor's action at s."""
        n, b = self.config.num_actions, t.state.shape[0]
        width = self.high - self.low
        uniform = self.low + torch.rand(n, b, width.numel(), device=self.device) * width
        log_uniform = -torch.log(width).sum().expand(n, b)
        with torch.no_grad():
            mean = self.actor_chunk(self.policy, t.images, t.raw_state, t.language)[:, 0]
        sigma = self.config.proposal_noise
        eps = torch.randn(n, *mean.shape, device=self.device)
        around = mean + sigma * eps
        log_gauss = (-0.5 * eps.pow(2) - math.log(sigma) - 0.5 * math.log(2 * math.pi)).sum(dim=-1)
        return torch.cat([uniform, around]), torch.cat([log_uniform, log_gauss])

    def conservative_gap(self, critic: nn.Module, t: Transitions, actions: torch.Tensor,
                         log_density: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """(gap, Q on the data): mean over the batch of log E_a[exp Q(s, a)] (importance-sampled) - Q(s, a_data)."""
        feats = critic.features(t.images, t.state, t.language)
        q_data = critic.score(feats, t.action)
        q_sampled = critic.score(feats.unsqueeze(0), actions)  # (2N, B)
        log_mean_exp = torch.logsumexp(q_sampled - log_density, dim=0) - math.log(actions.shape[0])
        return (log_mean_exp - q_data).mean(), q_data

    def update(self, batch: dict, frames: np.ndarray, to_tensor) -> dict[str, float]:
        cfg = self.config
        t = self.transitions(batch, frames, to_tensor)
        with torch.no_grad():  # SAC-style backup: the current actor's action at s', no target actor
            target = self.td_target(t, self.actor_chunk(self.policy, t.next_images, t.next_raw_state,
                                                        t.next_language)[:, 0])
        actions, log_density = self.sampled_actions(t)
        gap1, q1 = self.conservative_gap(self.q1, t, actions, log_density)
        gap2, q2 = self.conservative_gap(self.q2, t, actions, log_density)
        td = (q1 - target).pow(2).mean() + (q2 - target).pow(2).mean()
        conservative = cfg.alpha * (gap1 + gap2)
        metrics = {}
        if cfg.lagrange:
            alpha_prime = self.log_alpha_prime.exp().clamp(0.0, 1e6)
            # Kumar et al.'s dual: alpha' * (alpha * gap_i - target gap) per critic; alpha' rises while the gap is wide
            conservative = alpha_prime.detach() * (conservative - 2 * cfg.target_action_gap)
            alpha_loss = -alpha_prime * (cfg.alpha * float((gap1 + gap2).detach()) - 2 * cfg.target_action_gap)
            self.alpha_optimizer.zero_grad(set_to_none=True)
            alpha_loss.backward()
            self.alpha_optimizer.step()
            metrics["alpha_prime"] = float(alpha_prime.detach())
        self.optimizer.zero_grad(set_to_none=True)
        (td + conservative).backward()
        self.optimizer.step()
        self.update_critic_targets(cfg.tau)
        self.updates += 1
        return {"q_loss": float(td.detach()), "cql_gap": float((gap1 + gap2).detach()) / 2,
                "q_data": float(q1.detach().mean()), **metrics}

    def policy_loss(self, policy, batch: dict) -> dict[str, torch.Tensor]:
        chunk = self.actor_chunk(policy, batch["images"], batch["state"], batch["language"])
        bc = self.bc_mse(chunk, policy, batch)
        if self.updates <= self.config.bc_steps:
            return {"loss": bc, "bc_mse": bc.detach()}
        state = policy.normalize_state(batch["state"])
        with frozen(self.q1, self.q2):
            q = torch.min(self.q1(batch["images"], state, batch["language"], chunk[:, 0]),
                          self.q2(batch["images"], state, batch["language"], chunk[:, 0]))
        loss = -q.mean() + self.config.bc_weight * bc
        return {"loss": loss, "bc_mse": bc.detach(), "actor_q": q.mean().detach()}
