"""The behaviour-cloned start of the RL learner (vla_trainer.rl.pretrain): scripted demonstrations recorded by the
workspace train the actor the learner node builds (vla_trainer.rl.online.learner_agent, the node's own code), its
held-out error falls, and the saved weights load into a fresh learner agent built from the same parameters and
act exactly as the trained one; bad arguments are refused naming the value."""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch

from vla_core.contract import RobotContract
from vla_trainer.rl.pretrain import learner_params, main

WS = Path(__file__).resolve().parents[3]
SIZES = ["--set", "hidden=32", "--set", "channels=8", "--set", "image_downsample=4", "--set", "seed=3"]


@pytest.fixture(autouse=True)
def _threads():
    torch.set_num_threads(1)


def test_pretrained_weights_load_into_the_learners_agent_and_act_as_trained(tmp_path, capsys):
    from vla_language.encoder import InstructionEncoder
    from vla_sim.demos import record_scripted_demos
    from vla_trainer.rl.online import learner_agent
    contract = RobotContract.from_yaml(WS / "params" / "robots" / "tabletop_sim.yaml")
    demos_dir = tmp_path / "demos"
    record_scripted_demos(demos_dir, contract, episodes=6, seed_start=0)
    out = tmp_path / "bc.safetensors"
    code = main(["--demos", str(demos_dir), "--out", str(out), "--steps", "150", "--batch-size", "32", "--lr", "3e-3",
                 "--params", str(WS / "params" / "rl_learner.yaml"), *SIZES])
    lines = capsys.readouterr().out.strip().splitlines()
    assert code == 0, lines
    report = json.loads(lines[-2])
    assert lines[-1].startswith(f"saved {out}") and "rl_learner.initial_weights=" in lines[-1]
    assert report["held_out_episodes"] == 1 and report["episodes"] == 6
    assert report["train_l1_last"] < 0.7 * report["train_l1_first"], report
    assert report["held_out_l1"] < 0.8 * report["held_out_l1_before"], report

    # What the learner node does at configure with initial_weights: its own agent, then the weights.
    p = learner_params(str(WS / "params" / "rl_learner.yaml"), [s for s in SIZES if s != "--set"])
    p["demos"] = [str(demos_dir)]
    encoder = InstructionEncoder()
    encode = lambda text: encoder.encode(text)[1]  # noqa: E731
    trained, demos = learner_agent(contract, p, encode)
    trained.load_weights(out)
    fresh, _ = learner_agent(contract, {**p, "seed": 11}, encode)
    frames = demos.gather(np.arange(0, len(demos), 7))
    before = fresh.act(frames["images"], frames["state"], frames["language"], deterministic=True)
    fresh.load_weights(out)
    after = fresh.act(frames["images"], frames["state"], frames["language"], deterministic=True)
    assert np.array_equal(after, trained.act(frames["images"], frames["state"], frames["language"],
                                             deterministic=True))
    err_before = np.abs(before - frames["action"]).mean()
    err_after = np.abs(after - frames["action"]).mean()
    assert err_after < err_before, (err_before, err_after)


def test_bad_arguments_are_refused_naming_the_value(tmp_path, capsys):
    assert main(["--demos", str(tmp_path), "--out", str(tmp_path / "w.pt")]) == 2
    assert "--out" in capsys.readouterr().err
    assert main(["--demos", str(tmp_path), "--out", str(tmp_path / "w.safetensors"), "--set", "hiden=3"]) == 2
    err = capsys.readouterr().err
    assert "unknown parameter 'hiden'" in err and "did you mean 'hidden'" in err
    assert main(["--demos", str(tmp_path), "--out", str(tmp_path / "w.safetensors"), "--set", "hidden=0"]) == 2
    assert "hidden" in capsys.readouterr().err
