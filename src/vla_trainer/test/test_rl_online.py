"""The online learner's core (no ROS): control-tick steps become transitions, a bad transition is refused and
counted, operator takeovers become demonstrations, updates start after the warm-up and exports fall due."""
import numpy as np
import pytest
import torch

from vla_trainer.rl.networks import SACNetConfig
from vla_trainer.rl.online import OnlineConfig, OnlineLearner, Step, TransitionAssembler
from vla_trainer.rl.sac import SACAgent, SACConfig

NET = SACNetConfig(cameras=("top",), image_size=(16, 16), state_dim=4, language_dim=8, action_dim=2,
                   action_low=(-0.25, -0.25), action_high=(0.25, 0.25), hidden=16, channels=8)


def step(i: int, intervention: bool = False, state=None) -> Step:
    return Step({"top": np.full((16, 16, 3), i, np.uint8)}, np.full(4, float(i)) if state is None else state,
                np.zeros(8, np.float32), np.array([0.01 * i, -0.01 * i]), intervention)


def test_steps_pair_up_and_success_ends_with_reward_and_done():
    asm = TransitionAssembler(success_reward=1.0)
    assert asm.step(step(0)) is None  # the first step of a chain has no successor yet
    t = asm.step(step(1))
    assert t["state"][0, 0] == 0 and t["next_state"][0, 0] == 1 and t["images"]["top"][0, 0, 0, 0] == 0
    assert t["action"][0].tolist() == [0.0, -0.0] and t["reward"][0] == 0 and not t["done"][0]
    end = asm.end(True, {"top": np.full((16, 16, 3), 9, np.uint8)}, np.full(4, 9.0))
    assert end["state"][0, 0] == 1 and end["next_state"][0, 0] == 9 and end["reward"][0] == 1 and end["done"][0]
    assert asm.step(step(2)) is None  # a new chain


def test_a_cut_episode_makes_no_terminal_transition_and_no_transition_spans_a_gap():
    asm = TransitionAssembler()
    asm.step(step(0))
    assert asm.end(False) is None
    asm.step(step(1))
    asm.reset()
    assert asm.step(step(2)) is None


def learner(**kw) -> OnlineLearner:
    return OnlineLearner(SACAgent(NET, SACConfig(batch_size=4, image_shift=0)), OnlineConfig(**kw))


def test_a_bad_transition_is_refused_counted_by_field_and_nothing_is_stored():
    ol, asm = learner(warmup=2), TransitionAssembler()
    asm.step(step(0, state=np.array([np.nan, 0, 0, 0])))
    assert not ol.add(asm.step(step(1)))
    bad = asm.step(step(2))
    bad["reward"] = np.array([np.inf])
    assert not ol.add(bad)
    assert dict(ol.refused) == {"state": 1, "reward": 1} and "not finite" in ol.last_refusal
    assert len(ol.online) == 0 and ol.counts["transitions"] == 0 and ol.pending_updates == 0


def test_takeovers_become_demonstrations_and_updates_start_after_warmup_then_exports_fall_due():
    ol, asm = learner(warmup=3, export_every=2, updates_per_step=1.0), TransitionAssembler()
    asm.step(step(0))
    for i in range(1, 3):
        assert ol.add(asm.step(step(i, intervention=i == 1)))
    assert len(ol.online) == 2 and len(ol.demos) == 1 and ol.counts["interventions"] == 1
    assert ol.update() is None  # still in the warm-up
    ol.add(asm.step(step(3)))
    before = [p.detach().clone() for p in ol.agent.critic.parameters()]
    assert ol.update() is not None and not ol.export_due()
    assert any(not torch.equal(a, b) for a, b in zip(before, ol.agent.critic.parameters()))
    assert ol.update() is None  # one update owed per transition
    ol.add(asm.step(step(4)))
    batch = ol.sample()
    assert batch["from_demo"].sum() == 2  # RLPD: half of the batch from the takeovers
    ol.update()
    assert ol.counts["updates"] == 2 and ol.export_due()
    ol.exported()
    assert not ol.export_due() and ol.counts["exports"] == 1


def test_a_diverged_update_is_counted_and_leaves_the_weights():
    ol, asm = learner(warmup=1), TransitionAssembler()
    asm.step(step(0, state=np.full(4, 3e38)))
    ol.add(asm.step(step(1, state=np.full(4, 3e38))))
    before = {k: v.clone() for k, v in ol.agent.state_dict().items()}
    assert ol.update() is None and ol.counts["diverged"] == 1 and "not applied" in ol.last_refusal
    assert all(torch.equal(v, ol.agent.state_dict()[k]) for k, v in before.items())


def test_online_config_refuses_nonsense():
    with pytest.raises(ValueError, match="export_every 0"):
        OnlineConfig(export_every=0)


def test_recorded_demonstrations_fill_the_demonstration_share(tmp_path):
    import hashlib
    from pathlib import Path

    from vla_core.contract import RobotContract
    from vla_sim.demos import record_scripted_demos
    from vla_trainer.rl.online import demonstrations
    from vla_trainer.rl.replay import TransitionSpec

    def embed(text):
        return np.random.default_rng(int(hashlib.sha256(text.encode()).hexdigest()[:8], 16)).standard_normal(384)

    contract = RobotContract.from_yaml(Path(__file__).resolve().parents[3] / "params" / "robots" / "tabletop_sim.yaml")
    record_scripted_demos(tmp_path / "demos", contract, episodes=1, seed_start=0)
    spec = TransitionSpec(("top",), (96, 96), 4, 384, 2)
    demos, stats = demonstrations([str(tmp_path / "demos")], spec, embed, cache_dir=str(tmp_path / "cache"))
    assert len(demos) > 5 and demos.done[: len(demos)].sum() == 1 and len(stats["state_std"]) == 4
    with pytest.raises(ValueError, match="same robot contract"):
        demonstrations([str(tmp_path / "demos")], TransitionSpec(("top",), (64, 64), 4, 384, 2), embed,
                       cache_dir=str(tmp_path / "cache"))


def test_owed_updates_are_capped_and_the_rest_forgiven():
    ol, asm = learner(warmup=1, updates_per_step=3.0), TransitionAssembler()
    asm.step(step(0))
    for i in range(1, 4):
        ol.add(asm.step(step(i)))
    assert ol.pending_updates == 9 and ol.forgive(4) == 5 and ol.pending_updates == 4 and ol.forgive(4) == 0
