"""Behaviour-cloning baseline: FiLM CNN per camera -> spatial-softmax keypoints + state + instruction -> MLP."""
from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn

from vla_trainer.policies.base import Policy, PolicyConfig, masked_mean, register_policy
from vla_trainer.policies.encoders import SpatialSoftmax, make_image_encoder


@dataclass(frozen=True)
class MLPConfig(PolicyConfig):
    hidden: int = 1024
    channels: int = 128
    early_keypoints: bool = True  # also keypoints of the stride-4 feature map (cnn encoder)


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
        width = per_camera * len(config.cameras) + config.state_dim + config.language_dim
        self.head = nn.Sequential(nn.Linear(width, config.hidden), nn.SiLU(), nn.Linear(config.hidden, config.hidden),
                                  nn.SiLU(), nn.Linear(config.hidden, config.chunk_size * config.action_dim))

    def _normalized(self, images, state, language) -> torch.Tensor:
        feats = []
        for enc, img in zip(self.encoders.values(), self.image_list(images)):
            if self.early:
                early, final = enc.forward_multiscale(img, language)
                feats += [self.keypoints(early), self.keypoints(final)]
            else:
                feats.append(self.keypoints(enc(img, language)))
        x = torch.cat([*feats, self.normalize_state(state), language], dim=1)
        return self.head(x).view(-1, self.config.chunk_size, self.config.action_dim)

    def forward(self, images, state: torch.Tensor, language: torch.Tensor) -> torch.Tensor:
        return self.unnormalize_action(self._normalized(images, state, language), state)

    def compute_loss(self, batch: dict) -> dict[str, torch.Tensor]:
        pred = self._normalized(batch["images"], batch["state"], batch["language"])
        err = nn.functional.l1_loss(pred, self.normalize_action(batch["action"], batch["state"]),
                                    reduction="none")
        loss = masked_mean(err, batch["action_pad"], batch.get("weight"))
        return {"loss": loss, "l1": loss.detach()}
