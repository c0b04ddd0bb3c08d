"""Relative actions (policy.relative_actions): the offset from the measured joint position is what the model
learns, and what it outputs is an absolute target again; the tabletop's absolute policies are unchanged."""
import numpy as np
import pytest
import torch

from vla_trainer.data import DataError, TrainingData, action_reference
from vla_trainer.policies import make_policy

STATE = ["a.position", "a.velocity", "b.position", "b.velocity", "g.position", "g.velocity"]
ACTIONS = ["a", "b", "g"]


def test_reference_indices_name_each_joints_position_or_minus_one():
    assert action_reference(["a", "b"], ACTIONS, STATE) == (0, 2, -1)
    assert action_reference([], ACTIONS, STATE) == ()


@pytest.mark.parametrize("relative, actions, message", [
    (["c"], ACTIONS, r"relative_actions \['c'\]: the data's actions are"),
    (["x"], ["x"], "action 'x' has no measured position"),
])
def test_reference_names_what_is_missing(relative, actions, message):
    with pytest.raises(DataError, match=message):
        action_reference(relative, actions, STATE)


def _policy(reference, **stats):
    return make_policy("mlp", cameras=("top",), image_size=(16, 16), state_dim=6, action_dim=3, language_dim=4,
                       chunk_size=2, hidden=8, channels=8, relative_actions=("a", "b"), action_reference=reference,
                       **stats).eval()


def test_relative_targets_are_offsets_and_outputs_absolute():
    stats = dict(action_mean=[0.0, 0.1, 0.5], action_std=[0.1, 0.2, 0.3])
    policy = _policy((0, 2, -1), **stats)
    state = torch.randn(3, 6)
    action = torch.randn(3, 2, 3)
    target = policy.normalize_action(action, state)
    expected = (action - torch.stack([state[:, 0], state[:, 2], torch.zeros(3)], 1)[:, None]
                - torch.tensor(stats["action_mean"])) / torch.tensor(stats["action_std"])
    torch.testing.assert_close(target, expected)
    torch.testing.assert_close(policy.unnormalize_action(target, state), action)
    # forward = the model's normalised chunk, unnormalised and put back on the measured positions
    images, language = torch.rand(3, 3, 16, 16), torch.randn(3, 4)
    with torch.no_grad():
        out = policy(images, state, language)
        moved = state.clone()
        moved[:, [0, 2]] += 1.0
        out_moved = policy(images, moved, language)
    assert not torch.allclose(out, out_moved)
    with pytest.raises(ValueError, match="pass the state"):
        policy.normalize_action(action)
    # the references are config, not weights: an absolute policy's state_dict has the same keys
    assert set(policy.state_dict()) == set(_policy(()).state_dict())


def test_absolute_policy_ignores_the_state_in_its_normaliser():
    policy = _policy((), action_mean=[1.0, 2.0, 3.0], action_std=[2.0, 2.0, 2.0])
    action = torch.randn(3, 2, 3)
    torch.testing.assert_close(policy.normalize_action(action, torch.randn(3, 6)), policy.normalize_action(action))


def test_statistics_of_offsets():
    n = 50
    rng = np.random.default_rng(0)
    state = rng.normal(size=(n, 6)).astype(np.float32)
    action = np.stack([state[:, 0] + 0.01, state[:, 2] - 0.02, rng.normal(size=n)], 1).astype(np.float32)

    class Ep:
        pass
    ep = Ep()
    ep.state, ep.action, ep.valid = state, action, np.ones(n, bool)
    data = TrainingData.__new__(TrainingData)
    data.episodes, data.train_episodes = [ep], [0]
    stats = data.stats((0, 2, -1))
    np.testing.assert_allclose(stats["action_mean"][:2], [0.01, -0.02], atol=1e-6)
    assert stats["action_std"][:2] == [1e-3, 1e-3]  # floored: the offsets are constant
    assert stats["action_std"][2] == pytest.approx(float(action[:, 2].std()), rel=1e-5)
    assert data.stats()["action_std"][0] == pytest.approx(float(action[:, 0].std()), rel=1e-5)
