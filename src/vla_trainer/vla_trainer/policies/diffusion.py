"""Diffusion policy (Chi et al. 2023) sized for a CPU: a 1-D temporal conv U-Net denoises the action chunk.

Observation conditioning: a FiLM CNN per camera (instruction-conditioned) -> spatial-softmax keypoints, plus the
normalised state and the instruction embedding, projected to ``cond_dim``. The denoiser is diffusion_policy's
ConditionalUnet1D in miniature: residual conv blocks over the (K, D) chunk (time along the conv axis), each
FiLM-conditioned on [observation embedding, sinusoidal timestep embedding].

Training adds noise to the normalised action chunk at a random timestep of a ``train_timesteps`` DDPM schedule
and regresses the noise (``prediction_type="epsilon"``) or the clean chunk (``"sample"``). Inference in
``forward`` is deterministic DDIM (eta = 0) over ``inference_steps`` steps, unrolled in Python so that the whole
sampler is part of the exported ONNX graph. It starts from ``init_noise``, a fixed (K, D) draw from a seeded
generator kept in the state_dict: the policy is then a deterministic function of the observation, and the ONNX
graph (which has no random-number op that would reproduce torch's) computes exactly what torch does. The price
is that a multi-modal policy always picks the same mode for the same observation, which also keeps consecutive
chunks consistent. Chi et al. execute the first 8 of 16 steps and replan: export with
``execution="receding_horizon", receding_steps=8``.
"""
from __future__ import annotations

import math
from dataclasses import dataclass

import torch
from torch import nn

from vla_trainer.policies.base import Policy, PolicyConfig, masked_mean, register_policy
from vla_trainer.policies.encoders import SpatialSoftmax, make_image_encoder

BETA_SCHEDULES = ("squaredcos_cap_v2", "linear")
PREDICTION_TYPES = ("epsilon", "sample")


@dataclass(frozen=True)
class DiffusionConfig(PolicyConfig):
    train_timesteps: int = 100
    inference_steps: int = 8  # DDIM steps; each one runs the U-Net once
    beta_schedule: str = "squaredcos_cap_v2"
    prediction_type: str = "epsilon"
    # The sample is clipped to [-clip_sample, clip_sample] in normalised (z-score) units at every step, as
    # diffusion_policy's clip_sample does on its [-1, 1] scale: a few bad early steps cannot run away.
    clip_sample: float = 5.0
    channels: int = 64  # image encoder output channels (keypoints per camera = 2 * channels)
    cond_dim: int = 256  # observation embedding width
    timestep_dim: int = 64  # sinusoidal timestep embedding width
    # U-Net widths, the chunk halved between levels: Chi et al.'s (256, 512, 1024) divided by 8, a 1.5 M-parameter
    # denoiser that keeps the whole policy (2 M) the size of the mlp and act ones and trainable on a CPU.
    down_dims: tuple[int, ...] = (32, 64, 128)
    kernel_size: int = 5
    groups: int = 8  # GroupNorm groups in the U-Net
    noise_seed: int = 0  # seed of the fixed initial noise of the sampler

    def __post_init__(self):
        super().__post_init__()
        object.__setattr__(self, "down_dims", tuple(self.down_dims))
        if self.beta_schedule not in BETA_SCHEDULES:
            raise ValueError(f"beta_schedule '{self.beta_schedule}' is not one of {', '.join(BETA_SCHEDULES)}")
        if self.prediction_type not in PREDICTION_TYPES:
            raise ValueError(f"prediction_type '{self.prediction_type}' is not one of {', '.join(PREDICTION_TYPES)}")
        if not 1 <= self.inference_steps <= self.train_timesteps:
            raise ValueError(f"inference_steps {self.inference_steps} must be in [1, train_timesteps "
                             f"{self.train_timesteps}]")
        if not self.clip_sample > 0:
            raise ValueError(f"clip_sample {self.clip_sample} must be positive")
        if not self.down_dims:
            raise ValueError("down_dims needs at least one width")
        stride = 2 ** (len(self.down_dims) - 1)
        if self.chunk_size % stride:
            raise ValueError(f"chunk_size {self.chunk_size} must be divisible by {stride} for {len(self.down_dims)} "
                             "U-Net levels; change chunk_size or use fewer down_dims")
        for width in (*self.down_dims, self.channels):
            if width % self.groups:
                raise ValueError(f"width {width} (down_dims, channels) must be divisible by groups {self.groups}")
        if self.kernel_size % 2 == 0:
            raise ValueError(f"kernel_size {self.kernel_size} must be odd so the chunk length is kept")
        if self.timestep_dim % 2 or self.timestep_dim < 4:
            raise ValueError(f"timestep_dim {self.timestep_dim} must be even and at least 4")


def alphas_cumprod(schedule: str, timesteps: int) -> torch.Tensor:
    """(timesteps,) float32 cumulative product of (1 - beta_t), decreasing from near 1 towards 0.

    ``squaredcos_cap_v2`` is the cosine schedule of Nichol & Dhariwal (iDDPM) with betas capped at 0.999, as in
    diffusers; ``linear`` is DDPM's 1e-4 .. 0.02. Computed in float64, then rounded once.
    """
    if schedule == "squaredcos_cap_v2":
        def alpha_bar(s: torch.Tensor) -> torch.Tensor:
            return torch.cos((s + 0.008) / 1.008 * math.pi / 2) ** 2
        steps = torch.arange(timesteps, dtype=torch.float64)
        betas = (1 - alpha_bar((steps + 1) / timesteps) / alpha_bar(steps / timesteps)).clamp(max=0.999)
    elif schedule == "linear":
        betas = torch.linspace(1e-4, 0.02, timesteps, dtype=torch.float64)
    else:
        raise ValueError(f"beta_schedule '{schedule}' is not one of {', '.join(BETA_SCHEDULES)}")
    return torch.cumprod(1 - betas, dim=0).float()


def ddim_timesteps(train_timesteps: int, inference_steps: int) -> list[int]:
    """Descending timesteps of the DDIM sampler, from ``train_timesteps - 1`` ("trailing" spacing).

    Trailing rather than diffusers' default "leading" spacing so the first step is at the noise level that
    pure noise actually has (Lin et al. 2024, "Common diffusion noise schedules and sample steps are flawed").
    """
    step = train_timesteps / inference_steps
    return [int(round(train_timesteps - i * step)) - 1 for i in range(inference_steps)]


def sinusoidal_embedding(t: torch.Tensor, dim: int) -> torch.Tensor:
    """(N,) timesteps -> (N, dim) sine-cosine embedding (transformer positional encoding)."""
    half = dim // 2
    freqs = torch.exp(torch.arange(half, dtype=torch.float32, device=t.device) * (-math.log(10000.0) / (half - 1)))
    args = t.to(torch.float32)[:, None] * freqs[None]
    return torch.cat([args.sin(), args.cos()], dim=-1)


class Conv1dBlock(nn.Module):
    """conv -> GroupNorm -> Mish over (B, C, K); padding keeps the chunk length."""

    def __init__(self, c_in: int, c_out: int, kernel: int, groups: int):
        super().__init__()
        self.block = nn.Sequential(nn.Conv1d(c_in, c_out, kernel, padding=kernel // 2), nn.GroupNorm(groups, c_out),
                                   nn.Mish())

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.block(x)


class ResBlock1d(nn.Module):
    """Two conv blocks with FiLM(cond) between them and a residual path (diffusion_policy's
    ConditionalResidualBlock1D). Unlike the image encoder's FiLM, the projection is not zero-initialised: FiLM
    is the denoiser's only path to the timestep and the observation, and a zero start would leave the image
    encoder without gradient until the projections have grown."""

    def __init__(self, c_in: int, c_out: int, cond_dim: int, kernel: int, groups: int):
        super().__init__()
        self.conv1 = Conv1dBlock(c_in, c_out, kernel, groups)
        self.conv2 = Conv1dBlock(c_out, c_out, kernel, groups)
        self.film = nn.Sequential(nn.Mish(), nn.Linear(cond_dim, 2 * c_out))
        self.residual = nn.Conv1d(c_in, c_out, 1) if c_in != c_out else nn.Identity()

    def forward(self, x: torch.Tensor, cond: torch.Tensor) -> torch.Tensor:
        scale, shift = self.film(cond)[:, :, None].chunk(2, dim=1)
        y = self.conv1(x) * (1.0 + scale) + shift
        return self.conv2(y) + self.residual(x)


class ConditionalUnet1d(nn.Module):
    """(B, K, D) noisy chunk + (B, cond) conditioning -> (B, K, D) prediction; halves K between levels."""

    def __init__(self, action_dim: int, cond_dim: int, down_dims: tuple[int, ...], kernel: int, groups: int):
        super().__init__()
        dims = [action_dim, *down_dims]
        levels = list(zip(dims[:-1], dims[1:]))

        def res(c_in: int, c_out: int) -> ResBlock1d:
            return ResBlock1d(c_in, c_out, cond_dim, kernel, groups)

        self.down = nn.ModuleList()
        for i, (c_in, c_out) in enumerate(levels):
            last = i == len(levels) - 1
            self.down.append(nn.ModuleList([res(c_in, c_out), res(c_out, c_out),
                                            nn.Identity() if last else nn.Conv1d(c_out, c_out, 3, 2, 1)]))
        self.mid = nn.ModuleList([res(down_dims[-1], down_dims[-1]), res(down_dims[-1], down_dims[-1])])
        # Up levels mirror the down levels but the top one: its skip feeds the final conv's input directly.
        self.up = nn.ModuleList()
        for c_in, c_out in reversed(levels[1:]):
            self.up.append(nn.ModuleList([res(2 * c_out, c_in), res(c_in, c_in),
                                          nn.ConvTranspose1d(c_in, c_in, 4, 2, 1)]))
        self.final = nn.Sequential(Conv1dBlock(down_dims[0], down_dims[0], kernel, groups),
                                   nn.Conv1d(down_dims[0], action_dim, 1))

    def forward(self, x: torch.Tensor, cond: torch.Tensor) -> torch.Tensor:
        x = x.transpose(1, 2)  # (B, D, K): convolve along time
        skips = []
        for res1, res2, downsample in self.down:
            x = res2(res1(x, cond), cond)
            skips.append(x)
            x = downsample(x)
        for block in self.mid:
            x = block(x, cond)
        for res1, res2, upsample in self.up:
            x = upsample(res2(res1(torch.cat([x, skips.pop()], dim=1), cond), cond))
        return self.final(x).transpose(1, 2)


@register_policy("diffusion")
class DiffusionPolicy(Policy):
    config_class = DiffusionConfig
    default_execution = "receding_horizon"

    def default_receding_steps(self) -> int | None:
        return max(1, self.config.chunk_size // 2)  # Chi et al.: execute 8 of 16, then replan

    def __init__(self, config: DiffusionConfig):
        super().__init__(config)
        self.encoders = nn.ModuleDict({cam: make_image_encoder(config.image_encoder, config.language_dim,
                                                               config.channels, config.image_downsample)
                                       for cam in config.cameras})
        self.keypoints = SpatialSoftmax()
        # policy.aux_env_state: the keypoints also predict where the instruction's objects are (training only).
        self.env_state_predictor = self.env_state_head(2 * config.channels * len(config.cameras))
        width = (2 * config.channels * len(config.cameras) + config.state_dim) * config.n_obs_steps \
            + config.language_dim  # each frame of the history adds its keypoints and its state
        self.env_state_input = config.env_state_input and self.aux  # policy.env_state_input: the estimate as input
        if self.env_state_input:
            width += config.env_state_dim
        self.obs_proj = nn.Sequential(nn.Linear(width, config.cond_dim), nn.Mish(),
                                      nn.Linear(config.cond_dim, config.cond_dim))
        self.time_mlp = nn.Sequential(nn.Linear(config.timestep_dim, 4 * config.timestep_dim), nn.Mish(),
                                      nn.Linear(4 * config.timestep_dim, config.timestep_dim))
        self.denoiser = ConditionalUnet1d(config.action_dim, config.cond_dim + config.timestep_dim, config.down_dims,
                                          config.kernel_size, config.groups)
        self.register_buffer("alphas_cumprod", alphas_cumprod(config.beta_schedule, config.train_timesteps))
        generator = torch.Generator().manual_seed(config.noise_seed)
        self.register_buffer("init_noise", torch.randn(config.chunk_size, config.action_dim, generator=generator))
        self.timesteps = ddim_timesteps(config.train_timesteps, config.inference_steps)

    def _observation(self, images, state: torch.Tensor, language: torch.Tensor,
                     keypoints: list | None = None) -> torch.Tensor:
        """(B, cond_dim) observation embedding; computed once per chunk, shared by every denoising step.
        ``keypoints``, a list, receives the image keypoints."""
        cond = self.per_frame(language)  # per frame: (B * T, F) with a history of T steps
        feats = [self.keypoints(enc(img, cond)) for enc, img in zip(self.encoders.values(), self.frames(images))]
        current = [self.latest(f) for f in feats]
        if keypoints is not None:
            keypoints.extend(current)
        inputs = [*(self.over_time(f) for f in feats), self.state_features(state), language]
        if self.env_state_input:  # the auxiliary loss trains the estimate (add_env_state_loss), not the denoiser
            inputs.append(self.env_state_predictor(torch.cat(current, dim=1)).detach())
        return self.obs_proj(torch.cat(inputs, dim=1))

    def _denoise(self, sample: torch.Tensor, t: torch.Tensor, obs: torch.Tensor) -> torch.Tensor:
        """U-Net prediction (B, K, D) for a normalised noisy chunk at timesteps ``t`` ((B,) or (1,) for all)."""
        t_emb = self.time_mlp(sinusoidal_embedding(t, self.config.timestep_dim)).expand(obs.shape[0], -1)
        return self.denoiser(sample, torch.cat([obs, t_emb], dim=1))

    def forward(self, images, state: torch.Tensor, language: torch.Tensor) -> torch.Tensor:
        """(B, K, D) action chunk in SI units by deterministic DDIM (eta = 0) from ``init_noise``."""
        c = self.config
        obs = self._observation(images, state, language)
        x = self.init_noise.expand(obs.shape[0], -1, -1)
        for i, t in enumerate(self.timesteps):
            a_t = self.alphas_cumprod[t]
            out = self._denoise(x, torch.full((1,), t, dtype=torch.float32, device=x.device), obs)
            if c.prediction_type == "epsilon":
                eps, x0 = out, (x - (1 - a_t).sqrt() * out) / a_t.sqrt()
            else:
                x0 = out
                eps = (x - a_t.sqrt() * x0) / (1 - a_t).sqrt()
            x0 = x0.clamp(-c.clip_sample, c.clip_sample)
            if i == len(self.timesteps) - 1:
                x = x0  # the step after the last timestep is t = -1, alpha_cumprod = 1: the clean sample
            else:
                a_prev = self.alphas_cumprod[self.timesteps[i + 1]]
                x = a_prev.sqrt() * x0 + (1 - a_prev).sqrt() * eps
        return self.unnormalize_action(x, self.current_state(state))

    def compute_loss(self, batch: dict) -> dict[str, torch.Tensor]:
        c = self.config
        points: list = []
        obs = self._observation(batch["images"], batch["state"], batch["language"], keypoints=points)
        pad = batch["action_pad"]
        # Padded steps take the last real action before them (the robot holds still) before noising: whatever the
        # loader put there (zeros at invalid frames) would otherwise reach the real steps' predictions through the
        # convolutions. Step 0 is the sample's own frame, which the loader only draws from valid frames.
        steps = torch.arange(pad.shape[1], device=pad.device).expand_as(pad)
        last_real = torch.cummax(torch.where(pad, torch.zeros_like(steps), steps), dim=1).values
        action = batch["action"].gather(1, last_real[..., None].expand_as(batch["action"]))
        x0 = self.normalize_action(action, self.current_state(batch["state"]))
        b = x0.shape[0]
        t = torch.randint(0, c.train_timesteps, (b,), device=x0.device)
        noise = torch.randn_like(x0)
        a_t = self.alphas_cumprod[t][:, None, None]
        noisy = a_t.sqrt() * x0 + (1 - a_t).sqrt() * noise
        pred = self._denoise(noisy, t, obs)
        target = noise if c.prediction_type == "epsilon" else x0
        mse = masked_mean(nn.functional.mse_loss(pred, target, reduction="none"), pad)
        return self.add_env_state_loss({"loss": mse, "mse": mse.detach()}, self.env_state_predictor, points, batch)
