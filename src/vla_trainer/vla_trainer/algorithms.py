"""Training algorithms by name (``--algorithm.type``): which frames a policy learns from, and how much.

- ``bc``: behaviour cloning on every valid frame.
- ``hg_dagger``: HG-DAgger (Kelly et al. 2019): learn only from operator-labelled frames (the recorder's
  ``intervention`` flag: teleoperated demonstrations and takeovers while the policy drove), with corrections
  inside policy-driven episodes weighted up, since they are the states the policy itself gets into.
- ``iql``: implicit Q-learning (Kostrikov et al. 2022) from rewards (``next.reward``) or, failing that, success
  labels (reward 1 on the last frame of a successful episode). Critics learn V by expectile regression and Q by
  TD; the policy's imitation loss is weighted per sample by exp(beta * (Q - V)) (advantage-weighted regression).
- ``cql``, ``td3bc``: conservative Q-learning and TD3+BC, actor-critic offline RL on the same data and critics
  (``vla_trainer.offline_rl``; docs/offline_rl.md).

The offline RL algorithms share :class:`CriticAlgorithm`: transitions from the datasets' rewards or success labels
(failed and partial episodes stay in as data), next-frame batches, twin critics with Polyak-averaged targets.
"""
from __future__ import annotations

import copy
from dataclasses import dataclass

import numpy as np
import torch
from torch import nn

from vla_core.registry import Registry
from vla_trainer.config import AlgorithmConfig
from vla_trainer.data import BatchSampler, DataError, Episode, TrainingData
from vla_trainer.policies.encoders import FiLMCNN, SpatialSoftmax

ALGORITHMS: Registry[type["Algorithm"]] = Registry("algorithm", name_attr="name")
#: Class decorator: register an Algorithm under a name (its ``config_class`` holds its options).
register_algorithm = ALGORITHMS.register


def algorithm_class(name: str) -> type["Algorithm"]:
    """The Algorithm class of type ``name`` (UnknownName, a ValueError naming the types, if there is none)."""
    return ALGORITHMS.get(name)


class Algorithm:
    """Behaviour cloning; subclasses choose frames, weights, and may add per-sample weights each step."""

    config_class = AlgorithmConfig  # bc has no options of its own
    takes_history = True  # whether the policy may see an observation history (policy.n_obs_steps > 1)

    def __init__(self, config: AlgorithmConfig, data: TrainingData):
        self.config, self.data = config, data

    def frame_filter(self, episode: Episode) -> np.ndarray | None:
        return None

    def frame_weights(self, episode: Episode) -> np.ndarray | None:
        return None

    def attach(self, sampler: BatchSampler, policy, device: torch.device) -> None:
        """Called once the sampler and policy exist (critics are built here)."""

    def update(self, batch: dict, frames: np.ndarray, to_tensor) -> dict[str, float]:
        """Before the policy's loss on ``batch``: may set ``batch['weight']`` (B,); returns metrics."""
        return {}

    def policy_loss(self, policy, batch: dict) -> dict[str, torch.Tensor]:
        """The policy's losses on ``batch`` (``loss`` is minimised): its own imitation loss, unless the algorithm
        trains the policy as an actor (td3bc, cql)."""
        return policy.compute_loss(batch)

    def state_dict(self) -> dict[str, torch.Tensor]:
        return {}

    def load_state_dict(self, state: dict[str, torch.Tensor]) -> None:
        pass


register_algorithm("bc")(Algorithm)


@dataclass(frozen=True)
class HGDAggerConfig(AlgorithmConfig):
    type: str = "hg_dagger"
    correction_weight: float = 2.0   # sampling weight of corrections inside policy-driven episodes

    def __post_init__(self):
        super().__post_init__()
        if not self.correction_weight > 0:
            raise ValueError(f"algorithm.correction_weight {self.correction_weight} must be positive")


@register_algorithm("hg_dagger")
class HGDAgger(Algorithm):
    config_class = HGDAggerConfig

    def frame_filter(self, episode: Episode) -> np.ndarray:
        return episode.intervention

    def frame_weights(self, episode: Episode) -> np.ndarray:
        mixed = episode.intervention.any() and not episode.intervention.all()
        w = np.ones(len(episode), np.float64)
        if mixed:
            w[episode.intervention] = self.config.correction_weight
        return w


class Critic(nn.Module):
    """Small FiLM CNN + keypoints + state + instruction (+ action) -> scalar. ``downsample``: the image is
    average-pooled by this factor first, as the policy's ``image_downsample`` pools it (the critics look at what the
    policy looks at, at a quarter of the cost per halving)."""

    def __init__(self, cameras: tuple[str, ...], state_dim: int, language_dim: int, action_dim: int,
                 downsample: int = 1):
        super().__init__()
        self.cameras = cameras
        self.encoders = nn.ModuleDict({cam: FiLMCNN(language_dim, 32, downsample) for cam in cameras})
        self.keypoints = SpatialSoftmax()
        width = 64 * len(cameras) + state_dim + language_dim + action_dim
        self.net = nn.Sequential(nn.Linear(width, 256), nn.SiLU(), nn.Linear(256, 256), nn.SiLU(), nn.Linear(256, 1))

    def features(self, images: dict, state: torch.Tensor, language: torch.Tensor) -> torch.Tensor:
        """(B, F): the observation's part of the input, computed once for many actions (CQL's sampled ones)."""
        feats = [self.keypoints(self.encoders[cam](images[cam], language)) for cam in self.cameras]
        return torch.cat([*feats, state, language], dim=1)

    def score(self, features: torch.Tensor, action: torch.Tensor | None = None) -> torch.Tensor:
        """Q (or V without ``action``) of (..., F) features and (..., A) normalised actions -> (...)."""
        if action is not None:
            features = torch.cat([features.expand(*action.shape[:-1], -1), action], dim=-1)
        return self.net(features).squeeze(-1)

    def forward(self, images: dict, state: torch.Tensor, language: torch.Tensor,
                action: torch.Tensor | None = None) -> torch.Tensor:
        return self.score(self.features(images, state, language), action)


def frozen_copy(net: nn.Module) -> nn.Module:
    """A target network: a copy of ``net`` that no optimiser trains (it follows ``net`` by :func:`polyak`)."""
    target = copy.deepcopy(net)
    for p in target.parameters():
        p.requires_grad_(False)
    return target


@torch.no_grad()
def polyak(net: nn.Module, target: nn.Module, tau: float) -> None:
    """target <- (1 - tau) * target + tau * net, parameter by parameter (buffers are copied)."""
    for p, tp in zip(net.parameters(), target.parameters()):
        tp.mul_(1.0 - tau).add_(p, alpha=tau)
    for b, tb in zip(net.buffers(), target.buffers()):
        tb.copy_(b)


@dataclass
class Transitions:
    """One batch as (s, a, r, s', done): observation tensors, the normalised state and first action of the chunk
    (the action executed at s), reward (B,), done (B,) 1.0 on an episode's last frame, and the next frame's
    observation (``next_images``, ``next_state`` normalised, ``next_language``, ``next_raw_state`` in SI units)."""

    images: dict
    state: torch.Tensor
    raw_state: torch.Tensor
    language: torch.Tensor
    action: torch.Tensor
    reward: torch.Tensor
    done: torch.Tensor
    next_images: dict
    next_state: torch.Tensor
    next_raw_state: torch.Tensor
    next_language: torch.Tensor


class CriticAlgorithm(Algorithm):
    """Offline RL from the datasets' rewards (``next.reward``) or, failing that, success labels (reward 1 on the last
    frame of a successful episode, 0 elsewhere: failed and partial episodes are kept as data). Subclasses build
    their critics in ``build`` and list the networks a checkpoint holds in ``networks``."""

    networks: tuple[str, ...] = ()
    takes_history = False  # the critics score single observations

    def __init__(self, config: AlgorithmConfig, data: TrainingData):
        super().__init__(config, data)
        labelled = [e for e in data.episodes if e.reward is not None or e.success is not None]
        if not labelled:
            raise DataError(f"algorithm {config.type} needs rewards (next.reward) or success labels in the episodes' "
                            "metadata; none of the datasets has them (mark episodes with the recorder's "
                            "~/mark_episode)")

    def attach(self, sampler: BatchSampler, policy, device: torch.device) -> None:
        self.policy, self.device, self.sampler = policy, device, sampler
        rewards, done = [], []
        for i in sampler.episode_ids:
            e = self.data.episodes[i]
            r = e.reward.astype(np.float32) if e.reward is not None else np.zeros(len(e), np.float32)
            if e.reward is None and e.success:
                r[-1] = 1.0
            d = np.zeros(len(e), bool)
            d[-1] = True
            rewards.append(r)
            done.append(d)
        self.reward, self.done = np.concatenate(rewards), np.concatenate(done)
        self.build(policy.config, device)

    def build(self, policy_config, device: torch.device) -> None:
        """Create the critics (and their optimiser) for a policy with this config."""
        raise NotImplementedError

    def critic(self, action_dim: int) -> Critic:
        cfg = self.policy.config
        downsample = cfg.image_downsample if cfg.image_encoder == "cnn" else 1
        return Critic(cfg.cameras, cfg.state_dim, cfg.language_dim, action_dim, downsample).to(self.device)

    def twin_critics(self) -> list[nn.Parameter]:
        """Q1, Q2 and their targets (``q1_target``, ``q2_target``); returns the online critics' parameters."""
        action_dim = self.policy.config.action_dim
        self.q1, self.q2 = self.critic(action_dim), self.critic(action_dim)
        self.q1_target, self.q2_target = frozen_copy(self.q1), frozen_copy(self.q2)
        return [*self.q1.parameters(), *self.q2.parameters()]

    def update_critic_targets(self, tau: float) -> None:
        polyak(self.q1, self.q1_target, tau)
        polyak(self.q2, self.q2_target, tau)

    def transitions(self, batch: dict, frames: np.ndarray, to_tensor) -> Transitions:
        """``batch`` (the policy's batch of ``frames``) with rewards, done flags and the next frames."""
        pol = self.policy
        nxt_frames = np.minimum(frames + 1, self.sampler.end[frames] - 1)
        nxt = to_tensor(self.sampler.gather(nxt_frames, paraphrase=False, rng=np.random.default_rng(0)))
        return Transitions(
            images=batch["images"], state=pol.normalize_state(batch["state"]), raw_state=batch["state"],
            language=batch["language"], action=pol.normalize_action(batch["action"][:, 0], batch["state"]),
            reward=torch.as_tensor(self.reward[frames], device=self.device),
            done=torch.as_tensor(self.done[frames], device=self.device, dtype=torch.float32),
            next_images=nxt["images"], next_state=pol.normalize_state(nxt["state"]), next_raw_state=nxt["state"],
            next_language=nxt["language"])

    def state_dict(self) -> dict[str, torch.Tensor]:
        out = {}
        for name in self.networks:
            out.update({f"{name}.{k}": v for k, v in getattr(self, name).state_dict().items()})
        return out

    def load_state_dict(self, state: dict[str, torch.Tensor]) -> None:
        for name in self.networks:
            prefix = f"{name}."
            getattr(self, name).load_state_dict({k[len(prefix):]: v for k, v in state.items() if k.startswith(prefix)})


@dataclass(frozen=True)
class IQLConfig(AlgorithmConfig):
    type: str = "iql"
    expectile: float = 0.7           # V's expectile of Q
    beta: float = 3.0                # advantage temperature
    discount: float = 0.95
    max_weight: float = 100.0        # cap on exp(beta * advantage)

    def __post_init__(self):
        super().__post_init__()
        if not 0.5 <= self.expectile < 1.0 or not 0.0 < self.discount < 1.0:
            raise ValueError("algorithm.expectile must be in [0.5, 1) and algorithm.discount in (0, 1)")
        if not self.beta >= 0 or not self.max_weight > 0:
            raise ValueError("algorithm.beta must be >= 0 and algorithm.max_weight positive")


@register_algorithm("iql")
class IQL(CriticAlgorithm):
    config_class = IQLConfig
    networks = ("q1", "q2", "v", "q1_target", "q2_target")

    def build(self, policy_config, device: torch.device) -> None:
        self.v = self.critic(0)
        self.optimizer = torch.optim.AdamW([*self.twin_critics(), *self.v.parameters()], lr=3e-4)

    def update(self, batch: dict, frames: np.ndarray, to_tensor) -> dict[str, float]:
        cfg, t = self.config, self.transitions(batch, frames, to_tensor)
        with torch.no_grad():
            q_target = torch.min(self.q1_target(t.images, t.state, t.language, t.action),
                                 self.q2_target(t.images, t.state, t.language, t.action))
            v_next = self.v(t.next_images, t.next_state, t.next_language)
            td_target = t.reward + cfg.discount * (1.0 - t.done) * v_next
        v = self.v(t.images, t.state, t.language)
        diff = q_target - v
        weight = torch.abs(cfg.expectile - (diff < 0).float())
        v_loss = (weight * diff.pow(2)).mean()
        q_loss = (self.q1(t.images, t.state, t.language, t.action) - td_target).pow(2).mean() + \
                 (self.q2(t.images, t.state, t.language, t.action) - td_target).pow(2).mean()
        self.optimizer.zero_grad(set_to_none=True)
        (v_loss + q_loss).backward()
        self.optimizer.step()
        self.update_critic_targets(0.005)
        with torch.no_grad():
            advantage = q_target - v.detach()
            batch["weight"] = torch.clamp(torch.exp(cfg.beta * advantage), max=cfg.max_weight)
        return {"v_loss": float(v_loss.detach()), "q_loss": float(q_loss.detach()),
                "advantage": float(advantage.mean())}


def make_algorithm(config: AlgorithmConfig, data: TrainingData) -> Algorithm:
    """The algorithm ``config.type`` with its options (``config`` must be its ``config_class``)."""
    cls = algorithm_class(config.type)
    if type(config) is not cls.config_class:
        raise ValueError(f"algorithm '{config.type}' takes a {cls.config_class.__name__}, got a "
                         f"{type(config).__name__}")
    return cls(config, data)


# cql and td3bc register themselves; imported last, since they build on the classes above.
from vla_trainer import offline_rl  # noqa: E402,F401
