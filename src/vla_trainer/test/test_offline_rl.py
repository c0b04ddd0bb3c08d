"""Offline RL beside IQL: TD3+BC and CQL train the policy as an actor from rewards or success labels.

The algorithm-level tests run on a small in-memory dataset (random 16x16 images, a few episodes, some failed) so
that they take seconds; the end-to-end tests train through ``vla-train``'s loop on scripted demonstrations
recorded in the simulator, export, load as the policy node does, and act.
"""
from pathlib import Path

import numpy as np
import pytest
import torch

from vla_core.artifact import verify_artifact
from vla_core.contract import RobotContract
from vla_sim.demos import record_scripted_demos
from vla_trainer.algorithms import make_algorithm
from vla_trainer.config import build_config, parse_overrides
from vla_trainer.data import BatchSampler, DataError, Episode, LanguageTable, TrainingData
from vla_trainer.offline_rl import CQLConfig, TD3BCConfig
from vla_trainer.policies import make_policy
from vla_trainer.train import batch_tensors, train

WS = Path(__file__).resolve().parents[3]
CONTRACT = RobotContract.from_yaml(WS / "params" / "robots" / "tabletop_sim.yaml")
CPU = torch.device("cpu")


@pytest.fixture(autouse=True)
def one_thread():
    """One torch thread, as training runs here (the machine is shared); the old count is restored."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


def tiny_data(episodes: int = 4, length: int = 10) -> TrainingData:
    """Random observations; actions a smooth function of the state; even episodes succeed, odd ones fail."""
    rng = np.random.default_rng(0)
    eps = []
    for i in range(episodes):
        state = rng.normal(size=(length, 4)).astype(np.float32)
        eps.append(Episode(dataset="memory", index=i, instruction="push the red block to the goal",
                           images={"top": rng.integers(0, 256, (length, 16, 16, 3), dtype=np.uint8)}, state=state,
                           action=np.tanh(state[:, :2] + 0.1 * rng.normal(size=(length, 2))).astype(np.float32),
                           valid=np.ones(length, bool), intervention=np.zeros(length, bool), success=i % 2 == 0))
    return TrainingData(episodes=eps, train_episodes=list(range(episodes)), val_episodes=[], cameras=("top",),
                        image_size=(16, 16), state_names=[f"s{i}" for i in range(4)], action_names=["vx", "vy"],
                        fps=10.0, fingerprint="memory", instructions=["push the red block to the goal"])


def attached(config, data=None, seed=0, downsample=1):
    """(algorithm, policy, sampler) for a tiny MLP policy, wired as the trainer wires them."""
    torch.manual_seed(seed)
    data = data or tiny_data()
    table = LanguageTable(data.instructions, "none", lambda text: np.full(8, 0.1, np.float32))
    policy = make_policy("mlp", cameras=("top",), image_size=(16, 16), state_dim=4, action_dim=2, language_dim=8,
                         chunk_size=2, hidden=32, channels=8, image_downsample=downsample, **data.stats())
    algo = make_algorithm(config, data)
    sampler = BatchSampler(data, data.train_episodes, 2, table, algo.frame_filter)
    algo.attach(sampler, policy, CPU)
    return algo, policy, sampler


def to_tensor(arrays):
    return batch_tensors(arrays, CPU)


def batch_of(sampler, frames):
    return to_tensor(sampler.gather(np.asarray(frames), False, np.random.default_rng(0)))


def params(net):
    return [p.detach().clone() for p in net.parameters()]


@pytest.mark.parametrize("config", [TD3BCConfig(), CQLConfig(bc_steps=1)], ids=["td3bc", "cql"])
def test_steps_change_the_weights_with_finite_losses_and_keep_failed_episodes(config):
    algo, policy, sampler = attached(config)
    # Failed episodes are transitions too: reward 1 only on the last frame of a successful episode.
    assert algo.reward.sum() == 2 and algo.reward[9] == 1 and algo.reward[19] == 0 and algo.done.sum() == 4
    optimizer = torch.optim.Adam(policy.parameters(), lr=1e-3)
    before_policy, before_q = params(policy), params(algo.q1)
    rng = np.random.default_rng(1)
    for _ in range(3):
        frames = rng.choice(sampler.samples, 8)
        batch = batch_of(sampler, frames)
        metrics = algo.update(batch, frames, to_tensor)
        losses = algo.policy_loss(policy, batch)
        optimizer.zero_grad()
        losses["loss"].backward()
        optimizer.step()
        assert all(np.isfinite(v) for v in metrics.values()) and torch.isfinite(losses["loss"])
    assert "actor_q" in losses  # the actor's loss went through the critic (cql: after its bc_steps)
    assert all(not torch.equal(a, b) for a, b in zip(before_policy, params(policy)))
    assert not all(torch.equal(a, b) for a, b in zip(before_q, params(algo.q1)))


@pytest.mark.parametrize("config", [TD3BCConfig(tau=0.05), CQLConfig(tau=0.05)], ids=["td3bc", "cql"])
def test_targets_lag_the_online_networks_by_polyak_averaging(config):
    algo, policy, sampler = attached(config)
    pairs = [(algo.q1, algo.q1_target), (algo.q2, algo.q2_target)]
    if hasattr(algo, "actor_target"):
        pairs.append((policy, algo.actor_target))
    old_targets = [params(target) for _, target in pairs]
    frames = sampler.samples[:8]
    algo.update(batch_of(sampler, frames), frames, to_tensor)
    for (net, target), old in zip(pairs, old_targets):
        online, new = params(net), params(target)
        assert not all(torch.equal(a, b) for a, b in zip(online, new)), "the target is the online network"
        for o, n, p in zip(old, new, online):
            torch.testing.assert_close(n, 0.95 * o + 0.05 * p)


def q_gap(algo, sampler) -> float:
    """Mean over the data of Q1(s, a_data) - Q1(s, a) for actions a drawn uniformly in the data's action box."""
    t = algo.transitions(batch_of(sampler, sampler.samples), sampler.samples, to_tensor)
    with torch.no_grad():
        feats = algo.q1.features(t.images, t.state, t.language)
        random = algo.low + torch.rand(16, *t.action.shape, generator=torch.Generator().manual_seed(5)) * \
            (algo.high - algo.low)
        return float(algo.q1.score(feats, t.action).mean() - algo.q1.score(feats.unsqueeze(0), random).mean())


def test_cql_conservative_term_lowers_q_off_the_data_relative_to_the_data():
    gaps = {}
    for alpha in (0.0, 5.0):
        algo, _, sampler = attached(CQLConfig(alpha=alpha, num_actions=4, critic_lr=3e-3), seed=3)
        rng = np.random.default_rng(2)
        for _ in range(25):
            frames = rng.choice(sampler.samples, 16)
            algo.update(batch_of(sampler, frames), frames, to_tensor)
        gaps[alpha] = q_gap(algo, sampler)
    assert gaps[5.0] > 0.2 and gaps[5.0] > gaps[0.0] + 0.2, gaps


def test_cql_lagrange_weight_follows_the_gap_to_its_target():
    """The dual step: the conservative weight falls while alpha * gap is under the target, rises while over."""
    for target, falls in ((1e3, True), (-1e3, False)):
        algo, _, sampler = attached(CQLConfig(lagrange=True, target_action_gap=target, num_actions=4))
        frames = sampler.samples[:8]
        weights = [algo.update(batch_of(sampler, frames), frames, to_tensor)["alpha_prime"] for _ in range(3)]
        assert weights[0] == 1.0 and (weights[-1] < 1.0 if falls else weights[-1] > 1.0), (target, weights)


def train_actor(algo, policy, sampler, frames, steps, lr=3e-3):
    optimizer = torch.optim.Adam(policy.parameters(), lr=lr)
    batch = batch_of(sampler, frames)
    for _ in range(steps):
        optimizer.zero_grad()
        algo.policy_loss(policy, batch)["loss"].backward()
        optimizer.step()
    return batch


def test_td3bc_behaviour_cloning_term_pulls_the_actor_to_the_data_actions():
    algo, policy, sampler = attached(TD3BCConfig(alpha=1e-4))  # the Q term all but off
    frames = sampler.samples[:8]
    algo.update(batch_of(sampler, frames), frames, to_tensor)
    batch = batch_of(sampler, frames)

    def error():
        with torch.no_grad():
            return float((policy(batch["images"], batch["state"], batch["language"]) - batch["action"]).abs().mean())
    start = error()
    train_actor(algo, policy, sampler, frames, 150)
    assert error() < 0.1 * start and error() < 0.05, (start, error())


@pytest.mark.parametrize("config", [TD3BCConfig(alpha=1e3), CQLConfig(bc_steps=0)], ids=["td3bc", "cql"])
def test_actor_term_raises_the_critics_value_of_the_actors_action(config):
    algo, policy, sampler = attached(config)
    frames = sampler.samples[:8]
    algo.update(batch_of(sampler, frames), frames, to_tensor)  # critics and lambda's scale from one update

    def value():
        t = algo.transitions(batch_of(sampler, frames), frames, to_tensor)
        with torch.no_grad():
            return float(algo.q1(t.images, t.state, t.language, algo.actor_chunk(policy, t.images, t.raw_state,
                                                                                   t.language)[:, 0]).mean())
    start = value()
    train_actor(algo, policy, sampler, frames, 20, lr=1e-3)  # the critics stay as they are
    assert value() > start + 1e-3, (start, value())


def test_configs_errors_and_actor_policies():
    assert build_config(parse_overrides(["--algorithm.type=td3bc", "--algorithm.alpha=1"])).algorithm == \
        TD3BCConfig(alpha=1.0)
    assert build_config(parse_overrides(["--algorithm.type=cql", "--algorithm.lagrange=true"])).algorithm == \
        CQLConfig(lagrange=True)
    with pytest.raises(ValueError, match="algorithm.policy_delay 0 >= 1"):
        TD3BCConfig(policy_delay=0)
    with pytest.raises(ValueError, match="algorithm.discount 1.0 must be in \\(0, 1\\)"):
        CQLConfig(discount=1.0)
    with pytest.raises(ValueError, match="algorithm.expectile for algorithm 'cql'"):
        build_config({"algorithm": {"type": "cql", "expectile": 0.7}})
    algo, _, _ = attached(CQLConfig(), downsample=2)  # the critics pool the image as the policy does
    assert [enc.downsample for enc in algo.q1.encoders.values()] == [2]
    data = tiny_data()
    for e in data.episodes:
        e.success = None
    with pytest.raises(DataError, match="td3bc needs rewards .* or success labels"):
        make_algorithm(TD3BCConfig(), data)
    algo = make_algorithm(CQLConfig(), tiny_data())
    policy = make_policy("diffusion", cameras=("top",), image_size=(16, 16), state_dim=4, action_dim=2,
                         language_dim=8, chunk_size=4)
    table = LanguageTable(["push the red block to the goal"], "none", lambda text: np.zeros(8, np.float32))
    with pytest.raises(ValueError, match="use policy.type mlp or act, not 'diffusion'"):
        algo.attach(BatchSampler(tiny_data(), [0, 1], 2, table), policy, CPU)


@pytest.fixture(scope="module")
def demos(tmp_path_factory):
    root = tmp_path_factory.mktemp("data") / "demos"
    record_scripted_demos(root, CONTRACT, episodes=4, seed_start=0)
    return root


@pytest.mark.parametrize("algorithm", ["td3bc", "cql"])
def test_trains_exports_and_acts_as_deployed(demos, tmp_path, algorithm, act_as_deployed):
    events = []
    config = build_config({
        "policy": {"type": "mlp", "hidden": 32, "channels": 16, "chunk_size": 4},
        "data": {"paths": [str(demos)], "cache_dir": str(tmp_path / "cache"), "val_fraction": 0.25},
        "train": {"epochs": 1, "max_steps": 3, "batch_size": 8, "bf16": "off", "warmup_steps": 1},
        "algorithm": {"type": algorithm, **({"bc_steps": 1} if algorithm == "cql" else {})},
        "output": {"models_dir": str(tmp_path / "models"), "run_dir": str(tmp_path / "run"), "version": "1"}})
    result = train(config, events.append)
    metrics = next(e for e in events if e["event"] == "epoch")["metrics"]
    assert np.isfinite(metrics["train/loss"]) and np.isfinite(metrics["train/q_loss"])
    assert "train/actor_q" in metrics and "train/bc_mse" in metrics
    artifact = verify_artifact(Path(result["artifact"]))
    assert artifact.manifest["training"]["config"]["algorithm"]["type"] == algorithm
    chunk = act_as_deployed(result["artifact"], tmp_path / "models")
    assert chunk.shape == (4, 2) and np.all(np.isfinite(chunk))
    # The critics are checkpointed with the run (resume continues them).
    assert (tmp_path / "run" / "checkpoint" / "algorithm.safetensors").is_file()
