"""Every registered policy type: trains, respects padding, exports to ONNX that matches torch; diffusion specifics.

Configs are tiny (48x48 images, narrow layers) so the file runs in seconds on two cores.
"""
import numpy as np
import onnxruntime as ort
import pytest
import torch

from vla_core.artifact import verify_artifact
from vla_trainer.export import example_inputs, export_artifact
from vla_trainer.policies import POLICIES, make_policy
from vla_trainer.policies.diffusion import alphas_cumprod, ddim_timesteps

STATE = ["gantry_x.position", "gantry_x.velocity", "gantry_y.position", "gantry_y.velocity"]
COMMON = dict(image_size=(48, 48), state_dim=4, language_dim=32, action_dim=2, chunk_size=8,
              state_mean=[0.1, 0.0, -0.1, 0.0], state_std=[0.2, 0.5, 0.2, 0.5],
              action_mean=[0.05, -0.05], action_std=[0.3, 0.3])
# Per-type sizes; a newly registered type runs with its defaults until it gets an entry here.
SMALL = {
    "mlp": dict(hidden=32, channels=16),
    "act": dict(dim=32, heads=4, ff_dim=64, encoder_layers=1, decoder_layers=1, dropout=0.0),
    "diffusion": dict(channels=16, cond_dim=32, timestep_dim=16, down_dims=(16, 32), inference_steps=4),
}
TYPES = sorted(POLICIES)


def small_policy(name: str, **overrides):
    torch.manual_seed(0)
    return make_policy(name, **{**COMMON, **SMALL.get(name, {}), **overrides})


def random_batch(config, b: int = 4, seed: int = 0) -> dict:
    g = torch.Generator().manual_seed(seed)
    h, w = config.image_size
    k, d = config.chunk_size, config.action_dim
    pad = torch.zeros(b, k, dtype=torch.bool)
    pad[0, k - 3:] = True  # an episode that ends three steps before the chunk does
    pad[1, 2] = True  # an invalid frame inside the chunk
    return {"images": {cam: torch.rand(b, 3, h, w, generator=g) for cam in config.cameras},
            "state": torch.randn(b, config.state_dim, generator=g),
            "language": torch.nn.functional.normalize(torch.randn(b, config.language_dim, generator=g), dim=1),
            "action": 0.05 + 0.3 * torch.randn(b, k, d, generator=g), "action_pad": pad}


def loss_at(policy, batch, seed: int = 123) -> torch.Tensor:
    """The loss with a fixed random draw (diffusion's timesteps and noise), so two calls are comparable."""
    torch.manual_seed(seed)
    return policy.compute_loss(batch)["loss"]


@pytest.mark.parametrize("name", TYPES)
def test_a_few_steps_reduce_the_loss(name):
    policy = small_policy(name).train()
    batch = random_batch(policy.config)
    optimizer = torch.optim.Adam(policy.parameters(), lr=1e-3)
    before = loss_at(policy, batch).item()
    for _ in range(5):
        optimizer.zero_grad()
        loss_at(policy, batch).backward()  # the same draw every step: a fixed objective, so it must go down
        optimizer.step()
    after = loss_at(policy, batch).item()
    assert np.isfinite(before) and after < before


@pytest.mark.parametrize("name", TYPES)
def test_forward_shape_and_padded_steps_carry_no_loss(name):
    policy = small_policy(name).eval()
    batch = random_batch(policy.config)
    c = policy.config
    with torch.no_grad():
        out = policy(batch["images"], batch["state"], batch["language"])
        assert out.shape == (4, c.chunk_size, c.action_dim)
        assert torch.isfinite(out).all()
        base = loss_at(policy, batch)
        padded = {**batch, "action": batch["action"].clone()}
        padded["action"][batch["action_pad"]] += 100.0
        assert torch.allclose(loss_at(policy, padded), base, rtol=0, atol=1e-6)
        real = {**batch, "action": batch["action"].clone()}
        real["action"][0, 0] += 1.0  # a real step does count, or the check above proves nothing
        assert not torch.allclose(loss_at(policy, real), base, rtol=0, atol=1e-6)


@pytest.mark.parametrize("name", TYPES)
def test_export_matches_torch_on_golden_and_new_inputs(name, tmp_path):
    policy = small_policy(name)
    artifact, diff = export_artifact(policy, tmp_path / "models", name, "1", fps=10.0, state_names=STATE,
                                     action_names=["vx", "vy"], encoder_id="sentence-transformers/all-MiniLM-L6-v2")
    assert diff < 1e-4
    loaded = verify_artifact(artifact.path)
    assert loaded.manifest["policy_type"] == name
    session = ort.InferenceSession(str(loaded.file("onnx")), providers=["CPUExecutionProvider"])
    inputs, outputs, atol = loaded.golden()
    np.testing.assert_allclose(session.run(["action"], inputs)[0], outputs["action"], rtol=0, atol=atol)

    def torch_action(feeds):
        with torch.no_grad():
            return policy({cam: torch.from_numpy(feeds[f"image_{cam}"]) for cam in policy.config.cameras},
                          torch.from_numpy(feeds["state"]), torch.from_numpy(feeds["language"])).numpy()

    np.testing.assert_allclose(torch_action(inputs), outputs["action"], rtol=0, atol=1e-6)
    fresh = example_inputs(policy.config, seed=7)
    assert not np.allclose(fresh["state"], inputs["state"])
    np.testing.assert_allclose(session.run(["action"], fresh)[0], torch_action(fresh), rtol=0, atol=1e-4)


def test_diffusion_inference_is_deterministic_and_noise_is_saved():
    policy = small_policy("diffusion").eval()
    batch = random_batch(policy.config)
    with torch.no_grad():
        first = policy(batch["images"], batch["state"], batch["language"])
        torch.manual_seed(99)  # the global RNG must not matter
        second = policy(batch["images"], batch["state"], batch["language"])
    assert torch.equal(first, second)
    assert "init_noise" in policy.state_dict()
    torch.manual_seed(5)
    other = make_policy("diffusion", **{**COMMON, **SMALL["diffusion"]})
    assert torch.equal(other.init_noise, policy.init_noise)  # from the config's seed, not the global RNG


@pytest.mark.parametrize("schedule", ["squaredcos_cap_v2", "linear"])
def test_diffusion_schedule_is_monotone_in_unit_interval(schedule):
    ac = alphas_cumprod(schedule, 100).double()
    assert (ac > 0).all() and (ac <= 1).all()
    assert (ac[1:] < ac[:-1]).all()
    if schedule == "squaredcos_cap_v2":
        # The cosine schedule telescopes to alpha_bar(t) / alpha_bar(0) wherever beta is not capped at 0.999.
        s = (torch.arange(1, 101, dtype=torch.float64) / 100 + 0.008) / 1.008
        closed = torch.cos(s * torch.pi / 2) ** 2 / np.cos(0.008 / 1.008 * np.pi / 2) ** 2
        torch.testing.assert_close(ac[:95], closed[:95], rtol=1e-5, atol=1e-7)


def test_ddim_timesteps_start_at_pure_noise_and_descend():
    assert ddim_timesteps(100, 8) == [99, 87, 74, 61, 49, 37, 24, 11]
    assert ddim_timesteps(10, 10) == list(range(9, -1, -1))


def test_unknown_options_raise_naming_the_option():
    with pytest.raises(ValueError, match="bogus"):
        make_policy("act", bogus=1)
    with pytest.raises(ValueError, match="bogus"):
        make_policy("diffusion", bogus=1)
    with pytest.raises(ValueError, match="chunk_size 10 must be divisible by 4"):
        make_policy("diffusion", chunk_size=10)


def test_frozen_efficientnet_backbone_does_not_train():
    pytest.importorskip("efficientnet_lite_pytorch", reason="efficientnet-lite0-pytorch is not installed")
    # 96x96: EfficientNet's stride is 32, and a 1x1 map (48x48) would give constant keypoints and no gradient.
    policy = small_policy("diffusion", image_encoder="efficientnet-lite0", image_size=(96, 96)).train()
    encoder = policy.encoders["top"]
    backbone = {k: v.clone() for k, v in encoder.net.state_dict().items()}  # weights and batch-norm statistics
    head = {k: v.detach().clone() for k, v in encoder.project.named_parameters()}
    assert not any(p.requires_grad for p in encoder.net.parameters())
    optimizer = torch.optim.AdamW(policy.parameters(), lr=1e-3, weight_decay=0.1)  # as a trainer would build it
    optimizer.zero_grad()
    loss_at(policy, random_batch(policy.config)).backward()
    optimizer.step()
    for k, v in encoder.net.state_dict().items():
        assert torch.equal(v, backbone[k]), f"frozen backbone tensor {k} changed"
    changed = [k for k, p in encoder.project.named_parameters() if not torch.equal(p, head[k])]
    assert "film.weight" in changed  # zero-initialised: only a gradient moves it (weight decay cannot)
