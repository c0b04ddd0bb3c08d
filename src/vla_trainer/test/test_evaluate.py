"""The simulated evaluation runs the policy node's tick: the same runner, fed what the node's inputs would give.

A sim episode is driven twice from the same seed by a small real artifact whose actions depend on the image, the
state and the instruction: once by the evaluation's own loop, once through the policy node's input code (the
sim's JointState and Image messages, the node's conversions and checks, its input cache) and the command codec
(vector -> Twist -> vector, as the shield and the sim receive it). Any difference in the feeds, the chunk
execution or the conversions makes the trajectories part.
"""
from pathlib import Path

import numpy as np
import pytest

from vla_core.contract import RobotContract
from vla_core.features import LANGUAGE, STATE, image_key
from vla_policy.fixtures import make_artifact
from vla_policy.inputs import InputCache, embedding_input, image_input, state_vector
from vla_policy.runner import PolicyRunner
from vla_policy.runtime import load_policy
from vla_ros.convert import command_to_vector, joint_state_msg, rgb_to_image, seconds_to_time, vector_to_command
from vla_sim.backends import PRESETS, make_backend
from vla_trainer.evaluate import observation, run_episode

CONTRACT = RobotContract.from_yaml(Path(__file__).resolve().parents[3] / "params" / "robots" / "tabletop_sim.yaml")
STEPS = 25


def node_episode(runner: PolicyRunner, backend, frame, embedding: np.ndarray):
    """The policy node's path: its callbacks' conversions into its input cache, the runner, the command codec."""
    cache = InputCache()
    cache.expect(runner.policy.input_specs)
    cache.offer(LANGUAGE, embedding_input(embedding, "minilm", "minilm"), None)
    action_type, fields = CONTRACT.action.type, CONTRACT.action.fields
    tick = 0
    while True:
        stamp = seconds_to_time(tick / CONTRACT.fps)
        image = rgb_to_image(frame.image, stamp, "camera_top_optical_frame")
        cache.offer(image_key("top"), image_input(image.data, image.height, image.width, image.encoding, image.step),
                    tick / CONTRACT.fps)
        joints = joint_state_msg(backend.joint_names, frame.joint_positions, frame.joint_velocities, stamp=stamp)
        cache.offer(STATE, state_vector(joints.name, joints.position, joints.velocity, joints.effort,
                                        CONTRACT.state.joints, CONTRACT.state.fields), tick / CONTRACT.fps)
        action = runner.step(tick, cache.observation(runner.features))
        frame = backend.step(command_to_vector(vector_to_command(action, action_type, fields), action_type, fields))
        tick += 1
        if frame.is_success or frame.terminated or frame.truncated:
            return frame, tick


@pytest.mark.parametrize("execution", ["temporal_ensemble", "receding_horizon"])
def test_the_evaluation_acts_as_the_policy_node_does(tmp_path, execution):
    make_artifact(tmp_path, "a", bias=0.05, chunk=4, camera=True, seed=7, execution=execution)
    policy = load_policy("tiny/a", tmp_path, CONTRACT, "minilm", ["onnxruntime-cpu"])
    embedding = np.random.default_rng(0).standard_normal(384).astype(np.float32)  # an instruction's embedding
    ends = []
    evaluation = lambda runner, backend, frame: run_episode(runner, backend, frame, CONTRACT, embedding)  # noqa: E731
    node = lambda runner, backend, frame: node_episode(runner, backend, frame, embedding)  # noqa: E731
    for drive in (evaluation, node):
        backend = make_backend({**PRESETS["tabletop"], "max_episode_steps": STEPS})
        try:
            first = backend.reset(123)
            ends.append((first, *drive(PolicyRunner(policy), backend, first)))
        finally:
            backend.close()
    (first, evaluated, steps), (_, served, node_steps) = ends
    assert steps == node_steps == STEPS
    assert not np.array_equal(evaluated.joint_positions, first.joint_positions)  # the policy moved the robot
    np.testing.assert_array_equal(evaluated.joint_positions, served.joint_positions)
    np.testing.assert_array_equal(evaluated.joint_velocities, served.joint_velocities)
    np.testing.assert_array_equal(evaluated.image, served.image)


def test_the_evaluation_observes_what_the_node_receives():
    backend = make_backend(PRESETS["tabletop"])
    try:
        frame = backend.reset(5)
    finally:
        backend.close()
    embedding = np.ones(384, np.float32)
    got = observation(frame, CONTRACT, embedding)
    joints = joint_state_msg(backend.joint_names, frame.joint_positions, frame.joint_velocities)
    np.testing.assert_array_equal(got[STATE], state_vector(joints.name, joints.position, joints.velocity, [],
                                                           CONTRACT.state.joints, CONTRACT.state.fields))
    image = rgb_to_image(frame.image, seconds_to_time(0.0), "")
    np.testing.assert_array_equal(got[image_key("top")],
                                  image_input(image.data, image.height, image.width, image.encoding, image.step))
    assert got[LANGUAGE].dtype == np.float32 and got.keys() == {image_key("top"), STATE, LANGUAGE}
