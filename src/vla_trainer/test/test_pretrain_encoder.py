"""Contrastive vision-language pretraining of the image encoder (vla_trainer.pretrain_encoder): on a toy set where
each instruction names a colour in the frame, InfoNCE falls and held-out retrieval rises well above chance; the
gradient-reversal layer flips the gradient; the domain-adversarial term runs; the weights load into an ACT policy's
camera encoders (same outputs as the pretrained encoder) and a mismatched width is refused naming the fix."""
from __future__ import annotations

import numpy as np
import pytest
import torch

from vla_core.observation import to_chw_float
from vla_trainer.policies import make_policy
from vla_trainer.pretrain_encoder import (EncoderPretrainConfig, ImageTextModel, load_encoder_into, pretrain,
                                          retrieval_accuracy, reverse_gradient, save_encoder)

COLOURS = np.array([[230, 40, 40], [40, 200, 60], [50, 80, 230], [240, 220, 40]], np.uint8)


@pytest.fixture(autouse=True)
def _threads():
    torch.set_num_threads(1)


def toy(n: int, seed: int):
    """32x32 frames on grey with one coloured square at a random place; the instruction names its colour."""
    rng = np.random.default_rng(seed)
    ids = rng.integers(0, len(COLOURS), n)
    images = np.full((n, 32, 32, 3), 128, np.uint8)
    for i, c in enumerate(ids):
        r, q = rng.integers(0, 24, 2)
        images[i, r:r + 8, q:q + 8] = COLOURS[c]
    return images, ids.astype(np.int64)


def test_infonce_learns_to_match_frames_to_their_instructions():
    texts = np.random.default_rng(0).standard_normal((len(COLOURS), 16)).astype(np.float32)
    model = ImageTextModel(EncoderPretrainConfig(channels=16, image_downsample=1, language_dim=16, embed_dim=16))
    images, ids = toy(512, 1)
    held, held_ids = toy(200, 2)
    before = retrieval_accuracy(model, held, held_ids, texts)
    report = pretrain(model, images, ids, texts, steps=150, batch_size=32, lr=3e-3, log=lambda *a, **k: None)
    after = retrieval_accuracy(model, held, held_ids, texts)
    assert report["nce_last"] < 0.6 * report["nce_first"], report
    assert after >= 0.9 and after > before + 0.3, (before, after)


def test_gradient_reversal_and_the_domain_term():
    x = torch.ones(3, requires_grad=True)
    (reverse_gradient(x, 0.5) * torch.tensor([1.0, 2.0, 3.0])).sum().backward()
    assert torch.allclose(x.grad, torch.tensor([-0.5, -1.0, -1.5]))
    texts = np.random.default_rng(0).standard_normal((len(COLOURS), 16)).astype(np.float32)
    model = ImageTextModel(EncoderPretrainConfig(channels=16, image_downsample=1, language_dim=16, embed_dim=16,
                                                 adversarial_weight=0.5))
    images, ids = toy(64, 3)
    shifted = np.clip(toy(64, 4)[0].astype(int) + 60, 0, 255).astype(np.uint8)  # a brighter scene
    lines = []
    report = pretrain(model, images, ids, texts, target_images=shifted, steps=4, batch_size=8, log_every=2,
                      log=lambda text, **k: lines.append(text))
    assert np.isfinite(report["nce_last"]) and all("domain" in line for line in lines)


def test_the_encoder_loads_into_a_policy_and_a_mismatch_is_refused(tmp_path):
    config = EncoderPretrainConfig(channels=16, image_downsample=2, language_dim=384)
    model = ImageTextModel(config)
    path = tmp_path / "encoder.safetensors"
    save_encoder(model, path, {"retrieval_after": 1.0})
    policy = make_policy("act", cameras=("top", "wrist"), image_size=(96, 96), state_dim=4, action_dim=2,
                         language_dim=384, dim=16, image_downsample=2)
    assert load_encoder_into(policy, path) == ["top", "wrist"]
    image = torch.from_numpy(to_chw_float(np.random.default_rng(0).integers(0, 256, (2, 96, 96, 3), dtype=np.uint8)))
    language = torch.zeros(2, 384)
    with torch.no_grad():
        assert torch.equal(policy.encoders["wrist"](image, language), model.encoder(image, language))
    wide = make_policy("act", cameras=("top",), image_size=(96, 96), state_dim=4, action_dim=2, language_dim=384,
                       dim=32, image_downsample=2)
    with pytest.raises(ValueError, match="pretrain with the policy's width"):
        load_encoder_into(wide, path)
    pooled = make_policy("act", cameras=("top",), image_size=(96, 96), state_dim=4, action_dim=2, language_dim=384,
                         dim=16, image_downsample=1)
    with pytest.raises(ValueError, match="image_downsample"):
        load_encoder_into(pooled, path)


def test_pretraining_on_recorded_demos_then_a_policy_trains_from_it(tmp_path, capsys):
    """The command on scripted demonstrations recorded by the workspace, then vla-train's train.init_encoder: the
    trainer says it started each camera's encoder from the file, and its first weights are those."""
    import json
    from pathlib import Path

    from vla_core.contract import RobotContract
    from vla_sim.demos import record_scripted_demos
    from vla_trainer.config import build_config
    from vla_trainer.pretrain_encoder import main
    from vla_trainer.train import Trainer
    ws = Path(__file__).resolve().parents[3]
    contract = RobotContract.from_yaml(ws / "params" / "robots" / "tabletop_sim.yaml")
    demos = tmp_path / "demos"
    record_scripted_demos(demos, contract, episodes=4, seed_start=0)
    out = tmp_path / "encoder.safetensors"
    assert main(["--data", str(demos), "--out", str(out), "--channels", "16", "--steps", "3", "--batch-size", "8",
                 "--threads", "1"]) == 0
    lines = capsys.readouterr().out.strip().splitlines()
    report = json.loads(lines[-2])
    assert report["steps"] == 3 and 0.0 <= report["retrieval_after"] <= 1.0 and report["instructions"] >= 1
    assert "--train.init_encoder=" in lines[-1]
    said = []
    cfg = build_config({"policy": {"type": "act", "dim": 16, "heads": 2, "ff_dim": 32, "encoder_layers": 1,
                                   "decoder_layers": 1, "chunk_size": 4, "image_downsample": 2},
                        "data": {"paths": [str(demos)], "cache_dir": str(tmp_path / "cache")},
                        "train": {"max_steps": 1, "batch_size": 8, "bf16": "off", "init_encoder": str(out)},
                        "output": {"models_dir": str(tmp_path / "models"), "run_dir": str(tmp_path / "run"),
                                   "version": "1", "export": False}})
    trainer = Trainer(cfg, progress=said.append)
    trainer._setup()  # what train() runs first: data, language, the policy and its starting weights
    assert any("image encoders of top start from" in str(s) for s in said), said
    from safetensors.torch import load_file
    weights = load_file(str(out))
    assert all(torch.equal(v, trainer.policy.encoders["top"].state_dict()[k].cpu()) for k, v in weights.items())
    assert main(["--data", str(demos), "--out", str(tmp_path / "x.pt")]) == 2
    assert ".safetensors" in capsys.readouterr().err
