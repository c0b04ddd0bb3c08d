"""The policy interface, its config and the registry (``--policy.type=act``).

Every policy maps model tensors (built by vla_core.observation: images (B, 3, H, W) float32 in [0, 1] per
camera, the state (B, S) in SI units, the instruction embedding (B, L)) to an action chunk (B, K, D) in SI
units. Normalisation statistics are buffers of the module, so the exported graph carries its own normaliser
(diffusion_policy keeps its normaliser in the state_dict the same way).

Training goes through ``compute_loss(batch)``, where ``batch`` holds ``images`` (dict camera -> (B, 3, H, W)),
``state`` (B, S), ``language`` (B, L), ``action`` (B, K, D) SI units and ``action_pad`` (B, K) bool, True for
steps past the end of the episode, which carry no loss.
"""
from __future__ import annotations

from dataclasses import dataclass, field, fields

import torch
from torch import nn

from vla_core.registry import Registry

POLICIES: Registry[type["Policy"]] = Registry("policy type", name_attr="type_name")
#: Class decorator: register a Policy subclass under a name (its ``config_class`` holds its options).
register_policy = POLICIES.register


def policy_class(name: str) -> type["Policy"]:
    """The Policy class of type ``name`` (UnknownName, a ValueError naming the types, if there is none)."""
    return POLICIES.get(name)


def make_policy(name: str, **kwargs) -> "Policy":
    """A fresh policy of type ``name``; ``kwargs`` are fields of its config (a typo raises, naming the fields)."""
    cls = policy_class(name)
    known = {f.name for f in fields(cls.config_class)}
    unknown = sorted(set(kwargs) - known)
    if unknown:
        raise ValueError(f"policy type '{name}' has no option(s) {', '.join(unknown)}; "
                         f"its options are {', '.join(sorted(known))}")
    return cls(cls.config_class(**kwargs))


@dataclass(frozen=True)
class PolicyConfig:
    """Options every policy has. Shapes come from the dataset; statistics from the data (``vla_trainer.data``)."""

    cameras: tuple[str, ...] = ("top",)
    image_size: tuple[int, int] = (96, 96)
    state_dim: int = 4
    language_dim: int = 384
    action_dim: int = 2
    chunk_size: int = 16
    # "cnn": a small CNN trained from scratch; "efficientnet-lite0": frozen ImageNet EfficientNet-Lite0.
    image_encoder: str = "cnn"
    image_downsample: int = 1  # average-pool the image by this factor before the CNN (cnn encoder only)
    # Action dimensions (by name) predicted as an offset from the measured position of the same joint (the state
    # feature "<name>.position"), as every step of the chunk: a joint-position arm's next targets are a few
    # hundredths of a radian from where it is, a precision the absolute targets' normaliser (the joint's whole
    # range) hides. The exported graph adds the position back: the artifact still outputs absolute targets.
    relative_actions: tuple[str, ...] = ()
    # Set from the data (never by hand): for each action dimension, the state index it is relative to, or -1.
    action_reference: tuple[int, ...] = ()
    # Weight of an auxiliary loss (training only): the image encoder's keypoints also predict where the things the
    # instruction names are (the dataset's observation.environment_state, recorded by a simulator), which teaches
    # the camera features to find them sooner (as Levine et al. 2016 pretrained their spatial-softmax encoder on
    # object poses). The exported policy neither takes nor outputs it. 0: off.
    aux_env_state: float = 0.0
    # The policy also takes that estimate as an input (mlp): perception is trained to find the objects by the
    # auxiliary loss alone (the estimate enters the action head detached), and the head acts on where they are, as
    # a policy on privileged state does. The estimate is computed in the exported graph from the cameras; the
    # artifact's inputs are unchanged. Needs aux_env_state > 0.
    env_state_input: bool = False
    env_state_dim: int = 0  # set from the data
    # Observation history: the policy sees the last n_obs_steps control periods' images and states (oldest first,
    # the current one last), as Chi et al.'s diffusion policy and LeRobot's n_obs_steps do: velocities and what a
    # moving arm hid a moment ago become visible. Image features are computed per frame by the same encoder and
    # stacked over time (mlp, diffusion) or given a time embedding as tokens (ACT). At an episode's start the
    # missing past is the first observation repeated, in training and in the policy runner alike. 1: the current
    # observation only (the inputs are then (B, 3, H, W) and (B, S), without a time axis).
    n_obs_steps: int = 1
    state_mean: list[float] = field(default_factory=list)
    state_std: list[float] = field(default_factory=list)
    action_mean: list[float] = field(default_factory=list)
    action_std: list[float] = field(default_factory=list)
    env_state_mean: list[float] = field(default_factory=list)
    env_state_std: list[float] = field(default_factory=list)

    def __post_init__(self):
        object.__setattr__(self, "cameras", tuple(self.cameras))
        object.__setattr__(self, "image_size", tuple(self.image_size))
        object.__setattr__(self, "relative_actions", tuple(self.relative_actions))
        object.__setattr__(self, "action_reference", tuple(int(i) for i in self.action_reference))
        if self.action_reference and (len(self.action_reference) != self.action_dim
                                      or any(not -1 <= i < self.state_dim for i in self.action_reference)):
            raise ValueError(f"action_reference {list(self.action_reference)} must give, for each of the "
                             f"{self.action_dim} action dimensions, a state index below {self.state_dim} or -1")
        for name, dim in (("state_mean", self.state_dim), ("state_std", self.state_dim),
                          ("action_mean", self.action_dim), ("action_std", self.action_dim),
                          ("env_state_mean", self.env_state_dim), ("env_state_std", self.env_state_dim)):
            value = getattr(self, name)
            if value and len(value) != dim:
                raise ValueError(f"{name} has {len(value)} values; the policy has dimension {dim}")
        if not self.aux_env_state >= 0:
            raise ValueError(f"aux_env_state {self.aux_env_state} must be >= 0 (0: off)")
        if self.env_state_input and not self.aux_env_state > 0:
            raise ValueError("env_state_input takes the estimate the auxiliary loss trains: set aux_env_state > 0 "
                             "(e.g. policy.aux_env_state=1.0) or env_state_input=false")
        for name in ("state_std", "action_std", "env_state_std"):
            if any(not v > 0 for v in getattr(self, name)):
                raise ValueError(f"{name} must be positive everywhere, got {getattr(self, name)}")
        if self.chunk_size < 1:
            raise ValueError(f"chunk_size {self.chunk_size} must be at least 1")
        if not 1 <= self.n_obs_steps <= MAX_OBS_STEPS:
            raise ValueError(f"n_obs_steps {self.n_obs_steps} must be in [1, {MAX_OBS_STEPS}] (1: no history)")
        if not self.cameras:
            raise ValueError("a policy needs at least one camera")
        if self.image_downsample < 1 or any(v % (8 * self.image_downsample) for v in self.image_size):
            raise ValueError(f"image_downsample {self.image_downsample}: the image size {self.image_size} must be "
                             f"divisible by 8 x image_downsample")
        if self.image_encoder not in IMAGE_ENCODERS:
            raise ValueError(f"image_encoder '{self.image_encoder}' is not one of {', '.join(IMAGE_ENCODERS)}")


IMAGE_ENCODERS = ("cnn", "efficientnet-lite0")
MAX_OBS_STEPS = 16  # each step runs the image encoders once more per inference


class Policy(nn.Module):
    """Base class: normaliser buffers and the two entry points (``forward`` for inference, ``compute_loss``)."""

    config_class = PolicyConfig
    type_name = "policy"
    # How the policy node executes chunks unless the training config says otherwise: ACT's temporal ensembling
    # by default; diffusion policies replan every few steps (receding horizon), as Chi et al. do.
    default_execution = "temporal_ensemble"

    def default_receding_steps(self) -> int | None:
        return None

    def __init__(self, config: PolicyConfig):
        super().__init__()
        self.config = config
        self.register_buffer("state_mean", _vec(config.state_mean, config.state_dim, 0.0))
        self.register_buffer("state_std", _vec(config.state_std, config.state_dim, 1.0))
        self.register_buffer("action_mean", _vec(config.action_mean, config.action_dim, 0.0))
        self.register_buffer("action_std", _vec(config.action_std, config.action_dim, 1.0))
        self.relative = any(i >= 0 for i in config.action_reference)
        if self.relative:  # not in the state_dict: the config carries them
            ref = torch.tensor(config.action_reference, dtype=torch.long)
            self.register_buffer("reference_index", ref.clamp(min=0), persistent=False)
            self.register_buffer("reference_mask", (ref >= 0).float(), persistent=False)
        # The auxiliary head's normaliser exists only where the loss is on, so other policies' weights are unchanged.
        self.aux = config.aux_env_state > 0 and config.env_state_dim > 0
        if self.aux:
            self.register_buffer("env_state_mean", _vec(config.env_state_mean, config.env_state_dim, 0.0))
            self.register_buffer("env_state_std", _vec(config.env_state_std, config.env_state_dim, 1.0))

    def action_offset(self, state: torch.Tensor | None) -> torch.Tensor | float:
        """(B, D): what the relative action dimensions are measured from (the state's joint positions; 0 for
        absolute dimensions), or 0.0 when every dimension is absolute."""
        if not self.relative:
            return 0.0
        if state is None:
            raise ValueError("this policy predicts relative actions (relative_actions); pass the state")
        return state[:, self.reference_index] * self.reference_mask

    def normalize_state(self, state: torch.Tensor) -> torch.Tensor:
        return (state - self.state_mean) / self.state_std

    def normalize_action(self, action: torch.Tensor, state: torch.Tensor | None = None) -> torch.Tensor:
        """(B, [K,] D) actions in SI units -> the model's targets; ``state`` (B, S) for relative actions."""
        offset = self.action_offset(state)
        if self.relative and action.dim() == 3:
            offset = offset[:, None]
        return (action - offset - self.action_mean) / self.action_std

    def unnormalize_action(self, action: torch.Tensor, state: torch.Tensor | None = None) -> torch.Tensor:
        """The model's (B, [K,] D) outputs -> actions in SI units; ``state`` (B, S) for relative actions."""
        offset = self.action_offset(state)
        if self.relative and action.dim() == 3:
            offset = offset[:, None]
        return action * self.action_std + self.action_mean + offset

    def env_state_head(self, width: int) -> nn.Module | None:
        """The auxiliary head (keypoint features of ``width`` -> environment state), or None where it is off."""
        if not self.aux:
            return None
        return nn.Sequential(nn.Linear(width, 256), nn.SiLU(), nn.Linear(256, self.config.env_state_dim))

    def add_env_state_loss(self, losses: dict, head: nn.Module | None, keypoints: list, batch: dict,
                           prediction: torch.Tensor | None = None) -> dict:
        """``losses`` with the auxiliary loss added to ``loss`` (times ``aux_env_state``) and reported as
        ``aux_env_state``: the L1 between the head's prediction from the ``keypoints`` (or ``prediction``, where
        the policy computed it already) and the batch's normalised environment state, rows with a NaN (where a
        recorder had none) left out. Unchanged where the loss is off or the batch has no environment state
        (validation)."""
        if head is None or "env_state" not in batch or (not keypoints and prediction is None):
            return losses
        target = (batch["env_state"] - self.env_state_mean) / self.env_state_std
        known = torch.isfinite(target).all(dim=-1)
        pred = head(torch.cat(keypoints, dim=1).float()) if prediction is None else prediction.float()
        error = nn.functional.l1_loss(pred, torch.nan_to_num(target), reduction="none").mean(-1)
        aux = (error * known).sum() / known.sum().clamp(min=1)
        return {**losses, "loss": losses["loss"] + self.config.aux_env_state * aux, "aux_env_state": aux.detach()}

    def image_list(self, images: dict[str, torch.Tensor] | torch.Tensor) -> list[torch.Tensor]:
        if isinstance(images, torch.Tensor):
            images = {self.config.cameras[0]: images}
        return [images[cam] for cam in self.config.cameras]

    # --- observation history (policy.n_obs_steps): images (B, T, 3, H, W) and states (B, T, S) when T > 1 ---
    def frames(self, images) -> list[torch.Tensor]:
        """Each camera's images as one batch of frames for the encoder: (B, 3, H, W), or (B * T, 3, H, W) (sample
        major, oldest first) from (B, T, 3, H, W) with a history of T steps."""
        if self.config.n_obs_steps == 1:
            return self.image_list(images)
        return [img.flatten(0, 1) for img in self.image_list(images)]

    def per_frame(self, cond: torch.Tensor) -> torch.Tensor:
        """A per-sample conditioning vector (B, C) repeated for each of the T frames of its history (B * T, C)."""
        steps = self.config.n_obs_steps
        return cond if steps == 1 else cond.repeat_interleave(steps, dim=0)

    def over_time(self, per_frame: torch.Tensor) -> torch.Tensor:
        """Per-frame features (B * T, F) -> per-sample (B, T * F), oldest first; (B, F) unchanged without history."""
        steps = self.config.n_obs_steps
        return per_frame if steps == 1 else per_frame.reshape(-1, steps * per_frame.shape[-1])

    def latest(self, per_frame: torch.Tensor) -> torch.Tensor:
        """The current frame's features (B, ...) of per-frame features (B * T, ...)."""
        steps = self.config.n_obs_steps
        return per_frame if steps == 1 else per_frame.reshape(-1, steps, *per_frame.shape[1:])[:, -1]

    def current_state(self, state: torch.Tensor) -> torch.Tensor:
        """The current state (B, S) of a state history (B, T, S): what relative actions are measured from."""
        return state[:, -1] if self.config.n_obs_steps > 1 else state

    def state_features(self, state: torch.Tensor) -> torch.Tensor:
        """The normalised state, (B, S), or its history flattened oldest first, (B, T * S)."""
        return self.normalize_state(state).flatten(1)

    def forward(self, images, state: torch.Tensor, language: torch.Tensor) -> torch.Tensor:
        """(B, K, D) action chunk in SI units."""
        raise NotImplementedError

    def compute_loss(self, batch: dict) -> dict[str, torch.Tensor]:
        """Scalar losses; ``loss`` is the one to minimise, the others are reported."""
        raise NotImplementedError


def masked_mean(per_step: torch.Tensor, pad: torch.Tensor, weight: torch.Tensor | None = None) -> torch.Tensor:
    """Mean of (B, K, ...) over the steps that are not padding ((B, K) bool, True = padding), optionally
    weighted per sample ((B,), e.g. IQL's advantage weights)."""
    while per_step.dim() > 2:
        per_step = per_step.mean(dim=-1)
    keep = (~pad).to(per_step.dtype)
    if weight is not None:
        keep = keep * weight.to(per_step.dtype)[:, None]
    return (per_step * keep).sum() / keep.sum().clamp(min=1e-6)


def _vec(values: list[float], dim: int, fill: float) -> torch.Tensor:
    return torch.tensor(values, dtype=torch.float32) if values else torch.full((dim,), fill)


def parameter_count(model: nn.Module, trainable_only: bool = False) -> int:
    return sum(p.numel() for p in model.parameters() if p.requires_grad or not trainable_only)
