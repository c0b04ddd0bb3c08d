"""The training pipeline on real datasets on disk: train a few steps, export, load as the policy node does, resume,
DDP with two CPU processes, and every bad-input case rejected before training starts."""
import dataclasses
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

from vla_core.artifact import verify_artifact
from vla_core.contract import RobotContract
from vla_core.dataset import DatasetWriter
from vla_sim.demos import record_scripted_demos
from vla_trainer.config import build_config, parse_overrides
from vla_trainer.data import BatchSampler, DataConfig, DataError, LanguageTable, load_training_data, open_datasets
from vla_trainer.train import train

WS = Path(__file__).resolve().parents[3]
CONTRACT = RobotContract.from_yaml(WS / "params" / "robots" / "tabletop_sim.yaml")
TINY = {"mlp": {"hidden": 32, "channels": 16, "chunk_size": 4},
        "act": {"dim": 32, "heads": 2, "ff_dim": 64, "encoder_layers": 1, "decoder_layers": 1, "chunk_size": 4},
        "diffusion": {"chunk_size": 4, "inference_steps": 2, "train_timesteps": 10}}


@pytest.fixture(scope="module")
def demos(tmp_path_factory):
    root = tmp_path_factory.mktemp("data") / "demos"
    summary = record_scripted_demos(root, CONTRACT, episodes=6, seed_start=0)
    assert summary["episodes"] == 6
    return root


def config(demos, tmp_path, policy="mlp", **sections):
    raw = {"policy": {"type": policy, **TINY[policy]},
           "data": {"paths": [str(demos)], "cache_dir": str(tmp_path / "cache"), "val_fraction": 0.34},
           "train": {"epochs": 1, "max_steps": 3, "batch_size": 8, "bf16": "off", "warmup_steps": 1},
           "output": {"models_dir": str(tmp_path / "models"), "run_dir": str(tmp_path / "run"), "version": "1"}}
    for section, values in sections.items():
        raw.setdefault(section, {}).update(values)
    return build_config(raw)


@pytest.mark.parametrize("policy", sorted(TINY))
def test_each_policy_trains_exports_and_runs_as_deployed(demos, tmp_path, policy, act_as_deployed):
    events = []
    result = train(config(demos, tmp_path, policy), events.append)
    assert result["steps"] == 3 and result["stopped_by"] == "max_steps"
    assert result["onnx_max_abs_diff"] < 1e-4
    artifact = verify_artifact(Path(result["artifact"]))
    assert artifact.manifest["policy_type"] == policy
    assert artifact.manifest["features"]["observation.language"]["encoder_id"].endswith("all-MiniLM-L6-v2")
    assert artifact.manifest["features"]["observation.state"]["names"] == CONTRACT.state.names
    # Loaded exactly as the policy node loads it (checksums, contract, golden pair) and run once on new input.
    chunk = act_as_deployed(result["artifact"], tmp_path / "models")
    assert chunk.shape == (4, 2) and np.all(np.isfinite(chunk))
    run = tmp_path / "run"
    assert (run / "loss.png").stat().st_size > 1000
    assert list((run / "tensorboard").glob("events.out.tfevents.*"))
    rows = (run / "metrics.csv").read_text().splitlines()
    assert rows[0].startswith("epoch,step") and len(rows) == 2
    assert "val/action_mae/vx" in rows[0]
    assert [e["event"] for e in events if e["event"] in ("epoch", "done")] == ["epoch", "done"]


def test_resume_continues_from_the_checkpoint(demos, tmp_path):
    first = train(config(demos, tmp_path, train={"epochs": 2, "max_steps": 0}, output={"export": False}))
    assert first["epochs"] == 2
    state = json.loads((tmp_path / "run" / "checkpoint" / "state.json").read_text())
    assert state["epoch"] == 2 and state["step"] == first["steps"]
    resumed = train(build_config({**config(demos, tmp_path, train={"epochs": 3, "max_steps": 0},
                                           output={"export": False}).to_dict(), "resume": str(tmp_path / "run")}))
    assert resumed["epochs"] == 3
    steps_per_epoch = first["steps"] // 2
    assert resumed["steps"] == first["steps"] + steps_per_epoch
    history = json.loads((tmp_path / "run" / "checkpoint" / "state.json").read_text())["history"]
    assert [row["epoch"] for row in history] == [1, 2, 3]


def test_ddp_with_two_cpu_processes(demos, tmp_path):
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc-per-node=2", "-m",
           "vla_trainer.cli", f"--data.paths={demos}", "--policy.type=mlp", "--policy.hidden=32",
           "--policy.channels=16", "--policy.chunk_size=4", "--train.epochs=2", "--train.batch_size=8",
           "--train.bf16=off", "--data.val_fraction=0.34", f"--data.cache_dir={tmp_path / 'cache'}",
           f"--output.models_dir={tmp_path / 'models'}", f"--output.run_dir={tmp_path / 'run'}",
           "--output.version=ddp", "--progress=json"]
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=240, env=env)
    assert proc.returncode == 0, proc.stdout[-2000:] + proc.stderr[-3000:]
    result = json.loads(proc.stdout.strip().splitlines()[-1])
    assert result["event"] == "result" and result["world_size"] == 2
    assert result["ranks_in_sync"] is True  # DDP averaged gradients: both ranks ended with the same weights
    single = train(config(demos, tmp_path / "one", train={"epochs": 2, "max_steps": 0}, output={"export": False}))
    assert result["steps"] * 2 == pytest.approx(single["steps"], abs=2)  # each rank took half of every epoch
    verify_artifact(Path(result["artifact"]))


def test_cli_rejects_unknown_options_with_the_accepted_ones():
    with pytest.raises(ValueError, match="policy.bogus.*accepts"):
        build_config(parse_overrides(["--policy.type=act", "--policy.bogus=1"]))
    with pytest.raises(ValueError, match="unknown key.*train.epoch\\b.*accepts"):
        build_config(parse_overrides(["--train.epoch=3"]))
    with pytest.raises(ValueError, match="train.batch_size='many' is not an int"):
        build_config(parse_overrides(["--train.batch_size=many"]))
    proc = subprocess.run([sys.executable, "-m", "vla_trainer.cli", "--policy.type=transformer"],
                          capture_output=True, text=True, timeout=120)
    assert proc.returncode == 2 and "unknown policy type 'transformer'" in proc.stderr


def test_a_flag_that_changes_the_recipes_policy_type_leaves_out_the_options_the_new_type_lacks(tmp_path):
    """`vla demo --policy mlp` trains from the ACT recipe: the recipe's ACT-only options are left out (and listed),
    the ones mlp has are kept; the same option given as a flag still fails."""
    from vla_trainer.config import LEFT_OUT
    recipe = tmp_path / "recipe.yaml"
    recipe.write_text("policy:\n  type: act\n  chunk_size: 5\n  dropout: 0.0\nalgorithm:\n  type: iql\n"
                      "  expectile: 0.8\n")
    raw = parse_overrides([f"--config={recipe}", "--policy.type=mlp", "--algorithm.type=bc"])
    assert raw[LEFT_OUT] == [
        "policy.dropout (set by the config file for policy.type=act; mlp has no such option)",
        "algorithm.expectile (set by the config file for algorithm.type=iql; bc has no such option)"]
    cfg = build_config(raw)
    assert cfg.policy == {"type": "mlp", "chunk_size": 5}
    assert build_config(parse_overrides([f"--config={recipe}"])).policy["dropout"] == 0.0  # the file's own type
    with pytest.raises(ValueError, match="policy.dropout for policy type 'mlp'"):
        build_config(parse_overrides([f"--config={recipe}", "--policy.type=mlp", "--policy.dropout=0.1"]))


def test_each_algorithm_has_its_own_options_and_help_lists_every_one(capsys):
    from vla_trainer.algorithms import ALGORITHMS, HGDAggerConfig, IQLConfig, make_algorithm
    from vla_trainer.cli import _print_options
    from vla_trainer.config import AlgorithmConfig
    cfg = build_config(parse_overrides(["--algorithm.type=iql", "--algorithm.expectile=0.8"]))
    assert cfg.algorithm == IQLConfig(expectile=0.8)
    assert build_config({}).algorithm == AlgorithmConfig(type="bc")
    assert build_config({"algorithm": {"type": "hg_dagger"}}).algorithm == HGDAggerConfig()
    with pytest.raises(ValueError, match="algorithm.expectile for algorithm 'hg_dagger'; it accepts correction_weight, "
                                         "type"):
        build_config({"algorithm": {"type": "hg_dagger", "expectile": 0.8}})
    with pytest.raises(ValueError, match="algorithm.correction_weight for algorithm 'bc'; it accepts type"):
        build_config({"algorithm": {"correction_weight": 3}})
    with pytest.raises(ValueError, match="unknown algorithm 'hg-dagger'; did you mean 'hg_dagger'\\? accepted: bc, "
                                         "cql, hg_dagger, iql, td3bc"):
        build_config({"algorithm": {"type": "hg-dagger"}})
    with pytest.raises(ValueError, match="algorithm.discount in \\(0, 1\\)"):
        build_config({"algorithm": {"type": "iql", "discount": 1.5}})
    with pytest.raises(ValueError, match="takes a IQLConfig, got a AlgorithmConfig"):
        make_algorithm(AlgorithmConfig(type="iql"), None)
    _print_options()
    printed = capsys.readouterr().out
    for name, cls in ALGORITHMS.items():
        line = next(line for line in printed.splitlines() if line.strip().startswith(f"--algorithm.type={name}"))
        for f in dataclasses.fields(cls.config_class):
            assert f.name == "type" or f"--algorithm.{f.name}=" in line
    assert "--train.epochs=" in printed and "--policy.type=act --policy.chunk_size=" in printed


def _write(root: Path, episodes: list[np.ndarray], contract=CONTRACT, valid=None):
    writer = DatasetWriter(root, contract.fps, contract.features(), robot_type=contract.robot)
    cam = contract.cameras[0]
    for actions in episodes:
        ep = writer.begin_episode("push the red block into the purple zone")
        for i, action in enumerate(actions):
            ep.add_frame({f"observation.images.{cam.name}": np.zeros((cam.height, cam.width, 3), np.uint8),
                          "observation.state": np.zeros(len(contract.state.names), np.float32),
                          "action": np.asarray(action, np.float32), "timestamp": i / contract.fps,
                          "intervention": True, "late": False, "valid": True if valid is None else valid[i]})
        ep.save(success=True)
    return root


def test_bad_datasets_are_named_before_training(demos, tmp_path):
    empty = tmp_path / "empty"
    DatasetWriter(empty, CONTRACT.fps, CONTRACT.features(), robot_type=CONTRACT.robot)
    with pytest.raises(DataError, match=f"dataset {empty} has no episodes"):
        open_datasets([str(empty)])

    nan = _write(tmp_path / "nan", [np.zeros((3, 2)), np.array([[0, 0], [np.nan, 0], [0, 0]])])
    with pytest.raises(DataError, match=f"dataset {nan}, episode 1: non-finite action or state at frame 1"):
        load_training_data(DataConfig(paths=(str(nan),), cache_dir=str(tmp_path / "c")))
    # The same NaN in a frame the recorder marked invalid is not trained on, and is allowed.
    ok = _write(tmp_path / "nan_invalid", [np.array([[0, 0], [np.nan, 0], [0, 0]])], valid=[True, False, True])
    data = load_training_data(DataConfig(paths=(str(ok),), cache_dir=str(tmp_path / "c"), val_fraction=0.0))
    assert np.all(np.isfinite(data.stats()["action_mean"]))

    small = RobotContract.from_dict({**_contract_dict(), "cameras": {"top": {
        "topic": "camera/top/image_raw", "height": 64, "width": 64, "encoding": "rgb8"}}})
    other = _write(tmp_path / "other", [np.zeros((3, 2))], contract=small)
    with pytest.raises(DataError, match=f"dataset {other} differs from {demos}.*observation.images.top"):
        open_datasets([str(demos), str(other)])

    broken = tmp_path / "broken"
    shutil.copytree(demos, broken)
    video = sorted(broken.glob("videos/**/*.mp4"))[2]
    video.unlink()
    with pytest.raises(DataError, match=f"dataset {broken}, episode 2: video file .* is missing"):
        open_datasets([str(broken)])

    proc = subprocess.run([sys.executable, "-m", "vla_trainer.cli", f"--data.paths={nan}", "--policy.type=mlp"],
                          capture_output=True, text=True, timeout=120)
    assert proc.returncode == 2 and "episode 1: non-finite action" in proc.stderr


def _contract_dict():
    import yaml
    return yaml.safe_load((WS / "params" / "robots" / "tabletop_sim.yaml").read_text())


def test_chunks_are_padded_at_episode_ends_and_paraphrases_keep_colours(demos, tmp_path):
    data = load_training_data(DataConfig(paths=(str(demos),), cache_dir=str(tmp_path / "c"), val_fraction=0.0))
    table = LanguageTable(data.instructions, "tabletop", lambda text: np.full(3, len(text), np.float32))
    for instruction in data.instructions:
        variants = [table.texts[i] for i in table.variants[instruction]]
        assert len(variants) > 5 and instruction in variants
        from vla_sim.envs.instructions import parse_instruction
        assert {parse_instruction(v) for v in variants} == {parse_instruction(instruction)}
    sampler = BatchSampler(data, data.train_episodes, 8, table)
    last = int(sampler.end[0]) - 1  # the last frame of the first episode
    batch = sampler.gather(np.array([last, 0]), False, np.random.default_rng(0))
    assert batch["action_pad"][0].tolist() == [False] + [True] * 7
    assert not batch["action_pad"][1].any() or int(sampler.end[0]) < 8
    np.testing.assert_array_equal(batch["action"][1, 1], data.episodes[0].action[1])
    # Decoded once: the second load reads the frame cache, and gives the same pixels.
    again = load_training_data(DataConfig(paths=(str(demos),), cache_dir=str(tmp_path / "c"), val_fraction=0.0))
    np.testing.assert_array_equal(again.episodes[3].images["top"], data.episodes[3].images["top"])
    assert len(list((tmp_path / "c").glob("*.npy"))) == 6


def test_hg_dagger_learns_only_from_operator_frames_and_iql_needs_labels(demos, tmp_path):
    from vla_trainer.algorithms import HGDAggerConfig, IQLConfig, make_algorithm
    data = load_training_data(DataConfig(paths=(str(demos),), cache_dir=str(tmp_path / "c"), val_fraction=0.0))
    ep = data.episodes[0]
    ep.intervention[:] = False
    ep.intervention[2:5] = True  # the policy drove, the operator took over for three frames
    algo = make_algorithm(HGDAggerConfig(correction_weight=3.0), data)
    table = LanguageTable(data.instructions, "none", lambda text: np.zeros(4, np.float32))
    weights = np.concatenate([algo.frame_weights(e) for e in data.episodes])
    sampler = BatchSampler(data, data.train_episodes, 4, table, algo.frame_filter, weights)
    assert len(sampler) == data.num_frames - (len(ep) - 3)
    assert set(sampler.samples[sampler.samples < len(ep)].tolist()) == {2, 3, 4}
    assert sampler.weights[:3].tolist() == [3.0, 3.0, 3.0]
    # A correction's action chunk ends where the operator handed back: the policy's own actions are no target.
    pad = sampler.gather(np.array([2, 4]), False, np.random.default_rng(0))["action_pad"]
    assert pad.tolist() == [[False, False, False, True], [False, True, True, True]]
    for e in data.episodes:
        e.success = None
    with pytest.raises(DataError, match="iql needs rewards .* or success labels"):
        make_algorithm(IQLConfig(), data)


def test_iql_trains_with_advantage_weights(demos, tmp_path):
    events = []
    result = train(config(demos, tmp_path, "mlp", algorithm={"type": "iql"}, train={"max_steps": 4}), events.append)
    metrics = next(e for e in events if e["event"] == "epoch")["metrics"]
    assert {"train/v_loss", "train/q_loss", "train/advantage"} <= set(metrics)
    assert all(np.isfinite(metrics[k]) for k in ("train/v_loss", "train/q_loss"))
    assert result["artifact"]


def test_eta_counts_down_to_max_steps_when_they_end_training_first(demos, tmp_path):
    events = []
    train(config(demos, tmp_path, "mlp", train={"max_steps": 3, "epochs": 100_000}, output={"export": False}),
          events.append)
    epochs = [e for e in events if e["event"] == "epoch"]
    assert epochs[-1]["step"] == 3 and epochs[-1]["eta_s"] == 0.0


def test_bf16_autocast_choice_is_measured(demos, tmp_path):
    events = []
    train(config(demos, tmp_path, train={"bf16": "auto", "max_steps": 1}, output={"export": False}), events.append)
    line = next(e["message"] for e in events if e["event"] == "log" and "bf16" in e["message"])
    assert "ms with it" in line and "ms without" in line


def test_the_embedded_tasks_recipe_trains_from_noisy_demonstrations_and_replans_every_tick(tmp_path):
    """params/train/tabletop_act.yaml as `vla demo` uses it, on demonstrations recorded with DART noise."""
    root = tmp_path / "noisy"
    summary = record_scripted_demos(root, CONTRACT, episodes=3, seed_start=0, noise_std=0.08, environment_state=True)
    assert summary["episodes"] == 3
    record_scripted_demos(tmp_path / "clean", CONTRACT, episodes=1, seed_start=0)
    # Same seed, same scene: the noise shows in the recorded commands (and the expert steers back).
    noisy = open_datasets([root])[0].episode_frames(0)["action"]
    clean = open_datasets([tmp_path / "clean"])[0].episode_frames(0)["action"]
    n = min(len(noisy), len(clean))
    assert np.abs(noisy[:n] - clean[:n]).mean() > 0.02
    raw = parse_overrides([f"--config={WS / 'params/train/tabletop_act.yaml'}", f"--data.paths={root}",
                           f"--data.cache_dir={tmp_path / 'cache'}", "--data.val_fraction=0.34",
                           "--train.max_steps=2", "--train.batch_size=8", "--train.bf16=off",
                           "--policy.dim=32", "--policy.heads=2", "--policy.ff_dim=64",
                           f"--output.models_dir={tmp_path / 'models'}", f"--output.run_dir={tmp_path / 'run'}",
                           "--output.version=1"])
    result = train(build_config(raw))
    manifest = verify_artifact(Path(result["artifact"])).manifest
    assert result["steps"] == 2 and manifest["policy_type"] == "act" and manifest["action"]["chunk_size"] == 5
    assert manifest["action"]["execution"] == "receding_horizon" and manifest["action"]["receding_steps"] == 1


def test_with_a_step_count_a_time_cap_only_cuts_short_and_says_so(demos, tmp_path):
    events = []
    result = train(config(demos, tmp_path, train={"max_steps": 1000, "epochs": 100_000, "time_budget_s": 1e-6},
                          output={"export": False}), events.append)
    assert result["stopped_by"] == "time_budget" and result["steps"] < result["planned_steps"] == 1000
    warning = [e["message"] for e in events if e["event"] == "log" and "cut training short" in e["message"]]
    assert warning and f"at step {result['steps']} of 1000" in warning[0]
    done = train(config(demos, tmp_path / "b", train={"max_steps": 2, "time_budget_s": 600}, output={"export": False}))
    assert done["stopped_by"] == "max_steps" and done["steps"] == 2 and done["steps_per_s"] > 0


def test_the_learning_rate_follows_the_steps_when_there_are_some_not_the_clock(tmp_path):
    import time
    from vla_trainer.train import Trainer

    def lr_at(step: int, **train_section) -> float:
        cfg = build_config({"data": {"paths": [str(tmp_path)]},
                            "train": {"lr": 1.0, "warmup_steps": 0, "epochs": 1000, **train_section}})
        trainer = Trainer(cfg)
        trainer.step, trainer.total_steps = step, 100
        trainer._train_start = time.monotonic() - 1000.0  # the time budget is long spent
        return trainer._lr()
    # A loaded machine (the clock past the budget) gives the same schedule as an idle one when steps decide...
    assert lr_at(50, max_steps=100, time_budget_s=10) == pytest.approx(lr_at(50, max_steps=100)) \
        == pytest.approx(0.1 + 0.9 * 0.5)
    # ...and without a step count the budget ends the run, so it drives the schedule to its floor.
    assert lr_at(50, time_budget_s=10) == pytest.approx(0.1)


def test_the_recipe_trains_by_steps_not_by_the_clock():
    cfg = build_config(parse_overrides([f"--config={WS / 'params/train/tabletop_act.yaml'}", "--data.paths=x"]))
    assert cfg.train.max_steps > 0 and cfg.train.time_budget_s == 0


def test_bench_variants_parse_and_bad_ones_are_named():
    from vla_core.stats import wilson_interval
    from vla_trainer.bench import parse_variants
    assert parse_variants(["recipe:", "small:policy.dim=64, policy.ff_dim=256"]) == {
        "recipe": (), "small": ("policy.dim=64", "policy.ff_dim=256")}
    for bad in ("nocolon", "x:policy.dim", ":a=1"):
        with pytest.raises(ValueError, match="NAME:KEY=VALUE"):
            parse_variants([bad])
    with pytest.raises(ValueError, match="twice"):
        parse_variants(["a:", "a:train.lr=1"])
    low, high = wilson_interval(96, 100)
    assert 0.90 < low < 0.91 and 0.98 < high < 0.99


def test_the_thread_count_can_be_measured_at_the_start(demos, tmp_path):
    with pytest.raises(ValueError, match="train.threads -2"):
        config(demos, tmp_path, train={"threads": -2})
    events = []
    before = torch.get_num_threads()
    try:
        train(config(demos, tmp_path, train={"threads": -1, "max_steps": 1}, output={"export": False}), events.append)
        if (os.cpu_count() or 1) >= 2:  # one core: nothing to choose
            line = next(e["message"] for e in events if e["event"] == "log" and "torch thread" in e["message"])
            assert "ms on 1," in line and torch.get_num_threads() in (1, os.cpu_count())
    finally:
        torch.set_num_threads(before)
