"""SAC with RLPD sampling (vla_trainer.rl): each term of the update moves the right way on a tiny batch, the target
critics follow by Polyak averaging, RLPD batches hold the exact share of demonstrations, bad transitions and
diverging updates are refused with nothing applied, and demonstrations recorded by the workspace become transitions
whose trained actor exports and loads as the policy node loads it."""
import copy
import hashlib
from pathlib import Path

import numpy as np
import pytest
import torch

from vla_trainer.rl.networks import SACNetConfig
from vla_trainer.rl.replay import ReplayBuffer, RLPDSampler, TransitionSpec, buffer_from_episodes
from vla_trainer.rl.sac import DivergedUpdate, SACAgent, SACConfig

NET = SACNetConfig(image_size=(16, 16), state_dim=4, language_dim=8, action_dim=2, action_low=(-0.25, -0.25),
                   action_high=(0.25, 0.25), hidden=32, channels=8)
SPEC = TransitionSpec.from_config(NET)


@pytest.fixture(autouse=True)
def _threads():
    torch.set_num_threads(1)


def tiny_batch(n=16, seed=0, reward=None, done=None):
    rng = np.random.default_rng(seed)
    img = lambda: {"top": rng.integers(0, 256, (n, 16, 16, 3), dtype=np.uint8)}  # noqa: E731
    return {"images": img(), "next_images": img(), "state": rng.normal(size=(n, 4)).astype(np.float32),
            "next_state": rng.normal(size=(n, 4)).astype(np.float32),
            "language": rng.normal(size=(n, 8)).astype(np.float32),
            "action": rng.uniform(-0.25, 0.25, (n, 2)).astype(np.float32),
            "reward": (np.where(np.arange(n) % 2, 1.0, -1.0) if reward is None else reward).astype(np.float32),
            "done": np.zeros(n, bool) if done is None else done, "intervention": np.zeros(n, bool)}


def agent(**cfg):
    return SACAgent(NET, SACConfig(image_shift=0, **cfg))


def noises(n=16, seed=1):
    g = torch.Generator().manual_seed(seed)
    return torch.randn((n, 2), generator=g), torch.randn((n, 2), generator=g)


def q_values(ag, t):
    with torch.no_grad():
        state = ag.actor.normalize_state(t["state"])
        return ag.critic(t["images"], state, t["language"], ag.actor.to_unit(t["action"]))


def test_critic_update_moves_q_toward_the_td_target():
    ag = agent(critic_lr=3e-3, discount=0.5)
    batch = tiny_batch()
    t = ag.tensors(batch, augment_images=False)
    noise, next_noise = noises()
    y = ag.td_target(t, next_noise)
    q_before = q_values(ag, t)
    for _ in range(5):
        ag.update(batch, noise, next_noise)
    q_after = q_values(ag, t)
    for before, after in zip(q_before, q_after):
        assert (after - y).abs().mean() < 0.8 * (before - y).abs().mean()
        # each Q moved toward its own target: rewards +1 and -1 pull in opposite directions
        toward = torch.sign(after - before) == torch.sign(y - before)
        assert toward.float().mean() >= 0.8, (before, after, y)


def test_td_target_is_the_soft_bellman_backup_with_done_masking():
    ag = agent(discount=0.9, init_temperature=0.5)
    done = np.array([True, False] * 4)
    t = ag.tensors(tiny_batch(8, done=done), augment_images=False)
    _, next_noise = noises(8)
    y = ag.td_target(t, next_noise)
    with torch.no_grad():
        a2, logp2 = ag.actor.sample(t["next_images"], t["next_state"], t["language"], next_noise)
        q1, q2 = ag.critic_target(t["next_images"], ag.actor.normalize_state(t["next_state"]), t["language"],
                                  ag.actor.to_unit(a2))
    expected = t["reward"] + 0.9 * (1 - t["done"]) * (torch.min(q1, q2) - 0.5 * logp2)
    assert torch.allclose(y, expected, atol=1e-5)
    assert torch.equal(y[torch.from_numpy(done)], t["reward"][torch.from_numpy(done)])  # no bootstrap past the end
    assert not torch.allclose(q1, q2)  # the min is a real choice between two critics


@pytest.mark.parametrize("temperature", [1e-4, 10.0])
def test_actor_update_increases_q_minus_alpha_logp(temperature):
    # A small temperature makes the objective mostly Q, a large one mostly entropy: a sign error in either term of
    # the actor's loss fails one of them
    ag = agent(actor_lr=3e-3, critic_lr=1e-12, init_temperature=temperature)
    batch = tiny_batch()
    t = ag.tensors(batch, augment_images=False)
    noise, next_noise = noises()
    critic = copy.deepcopy(ag.critic)

    def objective():
        with torch.no_grad():
            a, logp = ag.actor.sample(t["images"], t["state"], t["language"], noise)
            q1, q2 = critic(t["images"], ag.actor.normalize_state(t["state"]), t["language"], ag.actor.to_unit(a))
            return float((torch.min(q1, q2) - ag.alpha * logp).mean())

    before = objective()
    alpha = ag.alpha
    for _ in range(3):
        ag.update(batch, noise, next_noise)
        ag.log_alpha.data.fill_(np.log(alpha))  # the objective's alpha held fixed
    assert objective() > before + 1e-4


@pytest.mark.parametrize("target_entropy, direction", [(10.0, 1), (-100.0, -1)])
def test_temperature_moves_toward_the_target_entropy(target_entropy, direction):
    """Entropy below the target raises alpha (more exploration); above it lowers alpha."""
    ag = agent(target_entropy=target_entropy, temperature_lr=1e-2)
    before = ag.alpha
    metrics = ag.update(tiny_batch())
    assert (metrics["entropy"] < target_entropy) == (direction > 0)
    assert np.sign(ag.alpha - before) == direction


def test_target_critics_follow_by_polyak_averaging():
    ag = agent(tau=0.1)
    target_before = [p.clone() for p in ag.critic_target.parameters()]
    ag.update(tiny_batch())
    for tb, p, tp in zip(target_before, ag.critic.parameters(), ag.critic_target.parameters()):
        assert torch.allclose(tp, 0.9 * tb + 0.1 * p, atol=1e-6)
    assert any(not torch.equal(tb, tp) for tb, tp in zip(target_before, ag.critic_target.parameters()))


@pytest.mark.parametrize("fraction, batch_size, n_demo", [(0.5, 64, 32), (0.25, 10, 3), (0.0, 8, 0), (1.0, 8, 8),
                                                          (0.5, 7, 4)])
def test_rlpd_batches_hold_the_exact_share_of_demonstrations(fraction, batch_size, n_demo):
    demos, online = ReplayBuffer(SPEC, 100), ReplayBuffer(SPEC, 100)
    demos.add(tiny_batch(40, reward=np.full(40, 7.0)))       # demonstrations carry reward 7, online data 3
    online.add(tiny_batch(30, seed=1, reward=np.full(30, 3.0)))
    sampler = RLPDSampler(demos, online, fraction)
    rng = np.random.default_rng(0)
    for _ in range(20):
        batch = sampler.sample(batch_size, rng)
        assert len(batch["reward"]) == batch_size and int(batch["from_demo"].sum()) == n_demo
        assert np.all(batch["reward"][batch["from_demo"]] == 7.0) and np.all(batch["reward"][~batch["from_demo"]] == 3)
    with pytest.raises(ValueError, match="no online transitions yet"):
        RLPDSampler(demos, ReplayBuffer(SPEC, 10), 0.5).sample(8, rng)


def test_replay_buffer_is_a_ring_that_keeps_the_newest():
    buf = ReplayBuffer(SPEC, 10)
    for i in range(3):
        buf.add(tiny_batch(4, seed=i, reward=np.full(4, float(i))))
    assert len(buf) == 10 and buf.added == 12
    assert sorted(buf.reward.tolist()) == [0.0, 0.0] + [1.0] * 4 + [2.0] * 4


@pytest.mark.parametrize("edit, message", [
    (lambda b: b["reward"].__setitem__(3, np.nan), r"'reward' is not finite in 1 transition\(s\) \(first at index 3"),
    (lambda b: b["reward"].__setitem__(0, np.inf), "'reward' is not finite.*rewards must be finite"),
    (lambda b: b.pop("done"), "has no 'done'"),
    (lambda b: b.__setitem__("state", b["state"][:, :3]), r"'state' has shape \(16, 3\); expected \(N, 4\)"),
    (lambda b: b.__setitem__("action", b["action"][:8]), "'action' has 8 rows; the other fields have 16"),
    (lambda b: b["images"].__setitem__("top", b["images"]["top"] / 255.0), "images.top' is float64; images are uint8"),
    (lambda b: b["next_images"].pop("top"), "'next_images' must map each camera"),
    (lambda b: b["next_state"].__setitem__((2, 1), np.nan), "'next_state' is not finite"),
])
def test_bad_transitions_are_refused_naming_the_field(edit, message):
    buf = ReplayBuffer(SPEC, 100)
    batch = tiny_batch()
    edit(batch)
    with pytest.raises(ValueError, match=message):
        buf.add(batch)
    assert len(buf) == 0
    with pytest.raises(ValueError, match=message):
        agent().update(batch)


def test_nested_transitions_are_accepted_and_a_missing_next_obs_field_named():
    flat = tiny_batch(4)
    nested = {"obs": {"images": flat["images"], "state": flat["state"], "language": flat["language"]},
              "next_obs": {"images": flat["next_images"], "state": flat["next_state"]},
              **{k: flat[k] for k in ("action", "reward", "done", "intervention")}}
    buf = ReplayBuffer(SPEC, 10)
    assert buf.add(nested) == 4
    del nested["next_obs"]["state"]
    with pytest.raises(ValueError, match=r"transitions\['next_obs'\] has no 'state'"):
        buf.add(nested)


def test_a_diverging_update_is_refused_and_leaves_every_weight_unchanged():
    ag = agent()
    ag.update(tiny_batch())  # optimizer moments exist
    before = {k: v.clone() for k, v in ag.state_dict().items()}
    opt_before = copy.deepcopy(ag.critic_opt.state_dict())
    batch = tiny_batch(seed=5)
    batch["state"][0] = 3e38  # finite, but overflows the networks: the losses become inf/NaN
    with pytest.raises(DivergedUpdate, match="update 2 refused: critic loss is (nan|inf).*Nothing was applied"):
        ag.update(batch)
    after = ag.state_dict()
    assert all(torch.equal(before[k], after[k]) for k in before)
    assert ag.updates == 1
    step = lambda sd: [s["step"] for s in sd["state"].values()]  # noqa: E731
    assert step(ag.critic_opt.state_dict()) == step(opt_before)
    ag.update(tiny_batch(seed=6))  # the agent goes on with good data
    assert ag.updates == 2


def test_config_rejects_bad_values_naming_them():
    with pytest.raises(ValueError, match=r"discount 1.0 must be in \(0, 1\); tau 0 must be in"):
        SACConfig(discount=1.0, tau=0)
    with pytest.raises(ValueError, match="action_low has 1 values for action_dim 2; pass the robot contract"):
        SACNetConfig(action_dim=2, action_low=(-1,), action_high=(1, 1))
    with pytest.raises(ValueError, match="must be finite with low < high"):
        SACNetConfig(action_dim=1, action_low=(1,), action_high=(-1,))


def test_actions_stay_inside_the_contract_bounds_and_log_probs_are_finite():
    ag = agent()
    t = ag.tensors(tiny_batch(), augment_images=False)
    big = torch.full((16, 2), 30.0)  # far in the tail: tanh saturates, the log-prob must stay finite
    a, logp = ag.actor.sample(t["images"], t["state"], t["language"], big)
    assert torch.all(a.abs() <= 0.25) and torch.all(torch.isfinite(logp))
    det = ag.act(tiny_batch()["images"], tiny_batch()["state"], tiny_batch()["language"], deterministic=True)
    assert det.shape == (16, 2) and np.all(np.abs(det) <= 0.25)


def _embed(text: str) -> np.ndarray:
    """A fixed embedding per text (the tests' stand-in for MiniLM, which the policy tests exercise)."""
    v = np.random.default_rng(int(hashlib.sha256(text.encode()).hexdigest()[:8], 16)).standard_normal(384)
    return (v / np.linalg.norm(v)).astype(np.float32)


def test_recorded_demonstrations_train_an_actor_that_exports_and_loads_as_deployed(tmp_path):
    from vla_core.artifact import verify_artifact
    from vla_core.contract import RobotContract
    from vla_policy.runtime import load_policy
    from vla_sim.demos import record_scripted_demos
    from vla_trainer.data import DataConfig, LanguageTable, load_training_data
    from vla_trainer.rl.sac import net_config_for
    ws = Path(__file__).resolve().parents[3]
    contract = RobotContract.from_yaml(ws / "params" / "robots" / "tabletop_sim.yaml")
    record_scripted_demos(tmp_path / "demos", contract, episodes=2, seed_start=0)
    data = load_training_data(DataConfig(paths=(str(tmp_path / "demos"),), cache_dir=str(tmp_path / "cache"),
                                         val_fraction=0.0))
    language = LanguageTable(data.instructions, "none", _embed)
    net = net_config_for(data, 384, contract.action.low, contract.action.high, hidden=32, channels=8)
    demos = buffer_from_episodes(data.episodes, language, TransitionSpec.from_config(net))
    assert len(demos) == data.num_frames
    assert demos.reward.sum() == 2.0 and demos.done.sum() == 2  # success reward and done on each last frame
    assert np.all(demos.reward[demos.done] == 1.0) and np.all(demos.intervention)
    ag = SACAgent(net, SACConfig(batch_size=8, image_shift=4))
    online = ReplayBuffer(demos.spec, 50)
    online.add(demos.gather(np.arange(10)))
    sampler = RLPDSampler(demos, online, 0.5)
    rng = np.random.default_rng(0)
    for _ in range(2):
        metrics = ag.update(sampler.sample(8, rng))
    assert all(np.isfinite(v) for v in metrics.values())
    ag.save(tmp_path / "agent.safetensors")
    again = SACAgent(net, SACConfig(seed=1))
    again.load_weights(tmp_path / "agent.safetensors")
    assert all(torch.equal(v, again.state_dict()[k]) for k, v in ag.state_dict().items())
    artifact, diff = ag.export_actor(tmp_path / "models", "sac", "1", fps=contract.fps,
                                     state_names=contract.state.names, action_names=contract.action.names,
                                     encoder_id="all-MiniLM-L6-v2")
    assert diff < 1e-4
    manifest = verify_artifact(artifact.path).manifest
    assert manifest["action"]["chunk_size"] == 1 and manifest["action"]["execution"] == "receding_horizon"
    loaded = load_policy(str(artifact.path), tmp_path / "models", contract, "all-MiniLM-L6-v2", ["onnxruntime-cpu"])
    frame = demos.gather(np.array([5]))
    feeds = {"image_top": frame["images"]["top"].transpose(0, 3, 1, 2).astype(np.float32) / 255.0,
             "state": frame["state"], "language": frame["language"]}
    chunk = loaded.infer(feeds)
    expected = ag.act(frame["images"], frame["state"], frame["language"], deterministic=True)
    assert chunk.shape == (1, 2) and np.allclose(chunk, expected, atol=1e-4)


def test_the_actor_pretrains_by_behaviour_cloning_on_the_trainers_batches():
    """compute_loss takes vla_trainer's batch format (action chunks with padding) and fits the first action."""
    from vla_trainer.rl.networks import SACActor
    torch.manual_seed(0)
    actor = SACActor(NET)
    b = tiny_batch(16)
    t = {"images": {"top": torch.from_numpy(b["images"]["top"]).permute(0, 3, 1, 2).float() / 255},
         "state": torch.from_numpy(b["state"]), "language": torch.from_numpy(b["language"]),
         "action": torch.from_numpy(b["action"])[:, None].repeat(1, 3, 1), "action_pad": torch.zeros(16, 3, dtype=bool)}
    t["action_pad"][:4, 0] = True  # padded first steps carry no loss
    opt = torch.optim.Adam(actor.parameters(), lr=3e-3)
    first = float(actor.compute_loss(t)["loss"])
    for _ in range(30):
        loss = actor.compute_loss(t)["loss"]
        opt.zero_grad()
        loss.backward()
        opt.step()
    assert float(loss) < 0.5 * first
    with torch.no_grad():
        before = float(actor.compute_loss(t)["loss"])
        t["action"][:4, 0] = -0.2  # only padded steps changed: the loss must not see them
        assert float(actor.compute_loss(t)["loss"]) == before
        t["action"][4, 0] = -0.2   # a step that is not padding does count
        assert float(actor.compute_loss(t)["loss"]) != before
