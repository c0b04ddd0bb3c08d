"""The simulated evaluation runs the policy node's tick: the same runner, fed what the node's inputs would give.

A sim episode is driven twice from the same seed by a small real artifact whose actions depend on the image, the
state and the instruction: once by the evaluation's own loop, once through the policy node's input code (the
sim's JointState and Image messages, the node's conversions and checks, its input cache) and the command codec
(vector -> Twist -> vector, as the shield and the sim receive it). Any difference in the feeds, the chunk
execution or the conversions makes the trajectories part.
"""
import tempfile
from pathlib import Path

import numpy as np
import pytest
import torch

from vla_core.contract import RobotContract
from vla_core.features import ACTION, LANGUAGE, STATE, image_key
from vla_core.observation import model_image, to_chw_float
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


ARM = RobotContract.from_yaml(Path(__file__).resolve().parents[3] / "params" / "robots" / "sim_arm.yaml")
ARM_HOLD = (0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.04)  # joint targets (rad) and the gripper's opening (m)
WRIST_GAIN = 0.5  # rad of shoulder_pan per unit of the wrist image's mean brightness


class WristPolicy(torch.nn.Module):
    """Both cameras, the state and the instruction in; a 1-step chunk out whose shoulder_pan target is
    WRIST_GAIN x the wrist image's mean and every other joint ARM_HOLD: only the wrist image moves it."""

    def forward(self, state, language, scene, wrist):
        hold = torch.tensor(ARM_HOLD).view(1, 1, 7) + 0.0 * (state.sum() + language.sum() + scene.sum())
        pan = torch.zeros(1, 1, 7)
        pan[..., 0] = 1.0
        return hold + WRIST_GAIN * wrist.mean() * pan


def two_camera_artifact(models: Path):
    """A real 2-camera artifact for the arm's contract, written as the trainer writes one."""
    from vla_core.artifact import save_golden, write_artifact
    features = ARM.features()
    inputs = {STATE: "state", LANGUAGE: "language", image_key("scene"): "scene", image_key("wrist"): "wrist"}
    shapes = {"state": (1, 14), "language": (1, 384), "scene": (1, 3, 96, 96), "wrist": (1, 3, 96, 96)}
    feeds = {name: torch.rand(*shape, generator=torch.Generator().manual_seed(i))
             for i, (name, shape) in enumerate(shapes.items())}
    with tempfile.TemporaryDirectory() as tmp:
        onnx_path = Path(tmp) / "policy.onnx"
        torch.onnx.export(WristPolicy(), tuple(feeds.values()), str(onnx_path), input_names=list(feeds),
                          output_names=["action"], dynamo=False, opset_version=17)
        with torch.no_grad():
            golden = WristPolicy()(*feeds.values()).numpy()
        save_golden(Path(tmp) / "golden.npz", {k: v.numpy() for k, v in feeds.items()}, {"action": golden})
        manifest = {
            "name": "wrist", "version": "1", "policy_type": "mlp", "fps": ARM.fps,
            "features": {STATE: features[STATE], ACTION: features[ACTION],
                         LANGUAGE: {"dtype": "float32", "shape": [384], "encoder_id": "minilm"},
                         image_key("scene"): features[image_key("scene")],
                         image_key("wrist"): features[image_key("wrist")]},
            "action": {"chunk_size": 1, "execution": "receding_horizon", "receding_steps": 1,
                       "ensemble_coeff": 0.01},
            "onnx": {"file": "policy.onnx", "inputs": inputs, "outputs": {"action": "action"}},
            "golden": {"file": "golden.npz", "atol": 1e-5},
        }
        return write_artifact(models, manifest, {"policy.onnx": onnx_path, "golden.npz": Path(tmp) / "golden.npz"})


class RecordingBackend:
    """The arm backend as it is, keeping every command it was given and every frame it returned."""

    def __init__(self, backend):
        self.backend, self.commands, self.frames = backend, [], []

    def step(self, action):
        self.commands.append(np.array(action))
        self.frames.append(self.backend.step(action))
        return self.frames[-1]


def test_the_evaluation_feeds_both_cameras_of_the_arm(tmp_path):
    two_camera_artifact(tmp_path)
    policy = load_policy("wrist/1", tmp_path, ARM, "minilm", ["onnxruntime-cpu"])
    embedding = np.ones(384, np.float32)
    backend = make_backend({**PRESETS["arm"], "max_episode_steps": 6})
    try:
        first = backend.reset(3)
        recording = RecordingBackend(backend)
        _, steps = run_episode(PolicyRunner(policy), recording, first, ARM, embedding)
    finally:
        backend.close()
    assert steps == 6
    seen = [first, *recording.frames[:-1]]  # the frame each command was computed from
    for frame, command in zip(seen, recording.commands):
        wrist = model_image(frame.camera("wrist"), 96, 96)
        np.testing.assert_allclose(command[0], WRIST_GAIN * to_chw_float(wrist).mean(), atol=1e-5)
        np.testing.assert_allclose(command[1:], ARM_HOLD[1:], atol=1e-6)
    assert len({round(c[0], 6) for c in recording.commands}) > 1  # the wrist view changed as the arm moved

    obs = observation(first, ARM, embedding)
    assert obs.keys() == {image_key("scene"), image_key("wrist"), STATE, LANGUAGE}
    np.testing.assert_array_equal(obs[image_key("scene")], model_image(first.camera("scene"), 96, 96))
    assert not np.array_equal(obs[image_key("scene")], obs[image_key("wrist")])
    act = lambda o: PolicyRunner(policy).step(0, o)  # noqa: E731
    dark = np.zeros_like(obs[image_key("wrist")])
    np.testing.assert_array_equal(act({**obs, image_key("scene"): dark}), act(obs))  # the scene does not move it
    assert act({**obs, image_key("wrist"): dark})[0] != act(obs)[0]  # the wrist does: it is fed


def test_a_contract_camera_the_sim_lacks_is_named():
    backend = make_backend(PRESETS["arm"])
    try:
        frame = backend.reset(0)
    finally:
        backend.close()
    top = RobotContract.from_yaml(Path(__file__).resolve().parents[3] / "params" / "robots" / "tabletop_sim.yaml")
    with pytest.raises(ValueError, match="camera 'top' is not among this frame's cameras"):
        observation(frame, top, np.ones(384, np.float32))
