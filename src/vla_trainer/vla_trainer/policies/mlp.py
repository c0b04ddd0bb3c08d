"""Behaviour-cloning baseline: FiLM CNN per camera -> spatial-softmax keypoints + state + instruction -> MLP."""
from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn

from vla_trainer.policies.base import Policy, PolicyConfig, masked_mean, register_policy
from vla_trainer.policies.encoders import SpatialSoftmax, make_image_encoder
from vla_trainer.policies.ensemble import EnsembleHeads, check_ensemble_heads, disagreement, mean_of_heads, small_head


@dataclass(frozen=True)
class MLPConfig(PolicyConfig):
    hidden: int = 1024
    channels: int = 128
    early_keypoints: bool = True  # also keypoints of the stride-4 feature map (cnn encoder)
    # K >= 2: the MLP's last layer becomes K small heads on its hidden features, served as their mean, with their
    # disagreement as the artifact's uncertainty output (vla_trainer.policies.ensemble); 0: one head.
    ensemble_heads: int = 0

    def __post_init__(self):
        super().__post_init__()
        check_ensemble_heads(self.ensemble_heads)


@register_policy("mlp")
class BCPolicy(Policy):
    config_class = MLPConfig

    def __init__(self, config: MLPConfig):
        super().__init__(config)
        self.encoders = nn.ModuleDict({cam: make_image_encoder(config.image_encoder, config.language_dim,
                                                               config.channels, config.image_downsample)
                                       for cam in config.cameras})
        self.keypoints = SpatialSoftmax()
        self.early = config.early_keypoints and config.image_encoder == "cnn"
        per_camera = 2 * config.channels + (2 * 64 if self.early else 0)
        steps = config.n_obs_steps  # each frame of the history adds its features and its state
        width = (per_camera * len(config.cameras) + config.state_dim) * steps + config.language_dim
        self.env_state_input = config.env_state_input and self.aux
        if self.env_state_input:
            width += config.env_state_dim
        out = config.chunk_size * config.action_dim
        # policy.aux_env_state: the keypoints also predict where the instruction's objects are (training only).
        self.env_state_predictor = self.env_state_head(per_camera * len(config.cameras))
        if config.ensemble_heads:
            self.head = nn.Sequential(nn.Linear(width, config.hidden), nn.SiLU(),
                                      nn.Linear(config.hidden, config.hidden), nn.SiLU())
            self.heads = EnsembleHeads(config.ensemble_heads, lambda: small_head(config.hidden, 256, out))
        else:
            self.head = nn.Sequential(nn.Linear(width, config.hidden), nn.SiLU(),
                                      nn.Linear(config.hidden, config.hidden), nn.SiLU(), nn.Linear(config.hidden, out))

    def _normalized(self, images, state, language, all_heads: bool = False,
                    keypoints: list | None = None, estimate: list | None = None) -> torch.Tensor:
        """Normalised chunk (B, K, D); with ``all_heads`` (ensemble_heads) every head's, (H, B, K, D).
        ``keypoints``, a list, receives the image keypoints; ``estimate`` the environment-state estimate
        (policy.env_state_input)."""
        feats = []  # per frame: (B * T, F) with a history of T steps
        cond = self.per_frame(language)
        for enc, img in zip(self.encoders.values(), self.frames(images)):
            if self.early:
                early, final = enc.forward_multiscale(img, cond)
                feats += [self.keypoints(early), self.keypoints(final)]
            else:
                feats.append(self.keypoints(enc(img, cond)))
        current = [self.latest(f) for f in feats]
        if keypoints is not None:
            keypoints.extend(current)
        inputs = [*(self.over_time(f) for f in feats), self.state_features(state), language]
        if self.env_state_input:  # where the objects are, as the auxiliary loss trains the estimate (normalised)
            est = self.env_state_predictor(torch.cat(current, dim=1))
            if estimate is not None:
                estimate.append(est)
            inputs.append(est.detach())
        x = torch.cat(inputs, dim=1)
        shape = (-1, self.config.chunk_size, self.config.action_dim)
        if not self.config.ensemble_heads:
            return self.head(x).view(shape)
        preds = self.heads(self.head(x))
        preds = preds.view(preds.shape[0], *shape)
        return preds if all_heads else preds.mean(dim=0)

    def forward(self, images, state: torch.Tensor, language: torch.Tensor) -> torch.Tensor:
        return self.unnormalize_action(self._normalized(images, state, language), self.current_state(state))

    def forward_with_uncertainty(self, images, state: torch.Tensor,
                                 language: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """(B, K, D) the heads' mean action chunk in SI units, and (B,) their disagreement (ensemble_heads)."""
        preds = self._normalized(images, state, language, all_heads=True)
        return self.unnormalize_action(preds.mean(dim=0), self.current_state(state)), disagreement(preds)

    def compute_loss(self, batch: dict) -> dict[str, torch.Tensor]:
        points: list = []
        estimate: list = []
        pred = self._normalized(batch["images"], batch["state"], batch["language"], all_heads=True, keypoints=points,
                                estimate=estimate)
        target = self.normalize_action(batch["action"], self.current_state(batch["state"]))

        def l1_of(p: torch.Tensor) -> torch.Tensor:
            return masked_mean(nn.functional.l1_loss(p, target, reduction="none"), batch["action_pad"],
                               batch.get("weight"))
        loss = mean_of_heads(l1_of, pred) if self.config.ensemble_heads else l1_of(pred)
        return self.add_env_state_loss({"loss": loss, "l1": loss.detach()}, self.env_state_predictor, points, batch,
                                       prediction=estimate[0] if estimate else None)
