"""vla-train's memory and schedule options, through the trainer's own loop on scripted demonstrations recorded by
the workspace: gradient accumulation (the gradient of one step over two copies of a batch is that batch's),
activation checkpointing (the same loss and gradients, and the artifact still exports), a frozen-then-unfrozen
image encoder, and early stopping that exports the best validation's weights."""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
from safetensors.torch import load_file

from vla_core.contract import RobotContract
from vla_sim.demos import record_scripted_demos
from vla_trainer.config import build_config
from vla_trainer.policies import make_policy
from vla_trainer.train import Trainer, disable_activation_checkpointing, enable_activation_checkpointing, train

WS = Path(__file__).resolve().parents[3]
CONTRACT = RobotContract.from_yaml(WS / "params" / "robots" / "tabletop_sim.yaml")
ACT = {"type": "act", "dim": 16, "heads": 2, "ff_dim": 32, "encoder_layers": 1, "decoder_layers": 1, "chunk_size": 4,
       "dropout": 0.0, "image_downsample": 2}


@pytest.fixture(autouse=True)
def _threads():
    torch.set_num_threads(1)


@pytest.fixture(scope="module")
def demos(tmp_path_factory):
    root = tmp_path_factory.mktemp("data") / "demos"
    record_scripted_demos(root, CONTRACT, episodes=6, seed_start=0)
    return root


def config(demos, tmp_path, policy=None, **sections):
    raw = {"policy": dict(policy or ACT),
           "data": {"paths": [str(demos)], "cache_dir": str(tmp_path / "cache"), "val_fraction": 0.34},
           "train": {"epochs": 1, "max_steps": 3, "batch_size": 8, "bf16": "off", "warmup_steps": 1, "threads": 1},
           "output": {"models_dir": str(tmp_path / "models"), "run_dir": str(tmp_path / "run"), "version": "1",
                      "export": False}}
    for section, values in sections.items():
        raw.setdefault(section, {}).update(values)
    return build_config(raw)


def first_step_gradient(trainer: Trainer, frames) -> dict[str, torch.Tensor]:
    """Run the trainer's loop for one optimizer step on ``frames`` (every micro-batch of it the same frames) and
    return the gradients the optimizer was given."""
    trainer._setup()
    seen = {}
    trainer.sampler.epoch = lambda *a, **k: [frames] * trainer.config.train.grad_accum_steps * 4

    def step(*a, **k):
        seen.update({n: p.grad.detach().clone() for n, p in trainer.policy.named_parameters() if p.grad is not None})
        raise StopIteration  # one step is all this needs
    trainer.optimizer.step = step
    trainer._setup = lambda: None
    with pytest.raises(StopIteration):
        trainer.run()
    return seen


def test_accumulated_gradient_of_two_copies_is_the_batch_gradient(demos, tmp_path):
    no_aug = {"image_shift": 0, "colour_jitter": 0.0, "paraphrase": "none"}  # the two copies stay identical
    one = Trainer(config(demos, tmp_path / "a", data=no_aug, train={"grad_clip": 0.0}))
    one._setup()
    frames = one.sampler.epoch(8, np.random.default_rng(0))[0]
    g1 = first_step_gradient(Trainer(config(demos, tmp_path / "a", data=no_aug, train={"grad_clip": 0.0})), frames)
    g2 = first_step_gradient(Trainer(config(demos, tmp_path / "b", data=no_aug,
                                            train={"grad_clip": 0.0, "grad_accum_steps": 2})), frames)
    assert g1.keys() == g2.keys() and len(g1) > 10
    for name, grad in g1.items():  # without the division by the accumulation count this is twice as large
        assert torch.allclose(grad, g2[name], atol=1e-6, rtol=1e-4), name
    result = train(config(demos, tmp_path / "c", train={"grad_accum_steps": 2, "max_steps": 2}))
    assert result["steps"] == 2 and result["stopped_by"] == "max_steps"


def test_activation_checkpointing_gives_the_same_gradients_and_exports(demos, tmp_path):
    torch.manual_seed(0)
    kwargs = dict(cameras=("top",), image_size=(96, 96), state_dim=4, action_dim=2, language_dim=384,
                  **{k: v for k, v in ACT.items() if k != "type"})
    plain = make_policy("act", **kwargs)
    checked = make_policy("act", **kwargs)
    checked.load_state_dict(plain.state_dict())
    assert enable_activation_checkpointing(checked) == 1
    rng = np.random.default_rng(0)
    batch = {"images": {"top": torch.rand(4, 3, 96, 96)}, "state": torch.randn(4, 4), "language": torch.randn(4, 384),
             "action": torch.randn(4, 4, 2), "action_pad": torch.zeros(4, 4, dtype=torch.bool)}
    for policy in (plain, checked):
        policy.train()
        policy.zero_grad()
        policy.compute_loss(batch)["loss"].backward()
    for (name, a), (_, b) in zip(plain.named_parameters(), checked.named_parameters()):
        assert (a.grad is None) == (b.grad is None), name
        if a.grad is not None:
            assert torch.allclose(a.grad, b.grad, atol=1e-6), name
    disable_activation_checkpointing(checked)
    assert "forward_multiscale" not in checked.encoders["top"].__dict__
    del rng
    result = train(config(demos, tmp_path, train={"activation_checkpointing": True, "max_steps": 2},
                          output={"export": True}))
    assert result["steps"] == 2 and result["onnx_max_abs_diff"] < 1e-4


def test_image_encoders_stay_frozen_for_the_first_steps_then_train(demos, tmp_path):
    trainer = Trainer(config(demos, tmp_path, train={"freeze_encoder_steps": 2, "max_steps": 4}))
    trainer._setup()
    encoder = trainer.policy.encoders["top"]
    snapshots = [{k: v.clone() for k, v in encoder.state_dict().items()}]
    head_before = [p.detach().clone() for p in trainer.policy.parameters() if p.requires_grad][-1]
    step = trainer.optimizer.step

    def recorded(*a, **k):
        out = step(*a, **k)
        snapshots.append({k: v.clone() for k, v in encoder.state_dict().items()})
        return out
    trainer.optimizer.step = recorded
    trainer._setup = lambda: None
    said = []
    trainer.progress = said.append
    trainer.run()
    same = [all(torch.equal(s[k], snapshots[0][k]) for k in s) for s in snapshots]
    assert same == [True, True, True, False, False], same  # steps 1-2 frozen, 3-4 train
    assert not torch.equal([p for p in trainer.policy.parameters() if p.requires_grad][-1], head_before)
    assert any("the image encoders train from here on" in str(e) for e in said)


def test_early_stopping_exports_the_best_validations_weights(demos, tmp_path):
    """The validation losses are scripted here (the validation itself is tested in test_train.py): best at epoch 2,
    then two worse ones with a patience of 2 stop the run at epoch 4."""
    cfg = config(demos, tmp_path, train={"epochs": 20, "max_steps": 0, "early_stop_patience": 2},
                 output={"export": True, "checkpoint_every": 0})
    trainer = Trainer(cfg)
    losses = iter([0.50, 0.40, 0.45, 0.46, 0.30, 0.20])
    trainer.validate = lambda: {"val/loss": next(losses)}
    snapshots = {}
    end_epoch = trainer._end_epoch

    def remember(epoch, metrics, elapsed):
        snapshots[epoch] = {k: v.detach().clone() for k, v in trainer.policy.state_dict().items()}
        end_epoch(epoch, metrics, elapsed)
    trainer._end_epoch = remember
    result = trainer.run()
    assert result["stopped_by"] == "early_stopping" and result["epochs"] == 4
    assert (result["best_epoch"], result["best_val_loss"]) == (2, 0.40)
    best = load_file(str(tmp_path / "run" / "best.safetensors"))
    exported = load_file(str(Path(result["artifact"]) / "model.safetensors"))
    assert all(torch.equal(best[k], snapshots[2][k]) for k in best)
    assert all(torch.equal(exported[k], best[k]) for k in exported if k in best)
    assert not all(torch.equal(snapshots[4][k], best[k]) for k in best)  # the last weights were not exported
