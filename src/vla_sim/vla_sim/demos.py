"""Scripted demonstrations straight from a sim backend into a dataset (no ROS), faster than real time.

The same writer, features and image path as the recorder (vla_core.dataset, the contract's features, the
backend's camera images, every camera of the contract, resized as vla_core.image does), so a dataset made here and one recorded through the
ROS graph train alike. Use it for benchmarks and tests; record through ROS (``vla record``, ``vla demo``) to
exercise the robot's path.
"""
from __future__ import annotations

from pathlib import Path
from typing import Callable, Iterable

import numpy as np

from vla_core.contract import RobotContract
from vla_core.dataset import DatasetWriter
from vla_core.features import ACTION, ENV_STATE, STATE, image_key
from vla_core.observation import model_image

#: Noise (m/s per axis) on the scripted expert's demonstration commands by default (DART, see vla_sim.expert):
#: behaviour cloned from 50 demonstrations on TabletopPush-v0 with the exact block and zone offsets as input
#: succeeded in 28/50 held-out episodes without noise and 49/50 with it.
DEMO_NOISE = 0.08


def record_scripted_demos(root: str | Path, contract: RobotContract, preset: str = "tabletop", episodes: int = 50,
                          seed_start: int = 0, instruction_set: str = "train", only_successes: bool = True,
                          noise_std: float = 0.0, labels: str = "executed", expert_kwargs: dict | None = None,
                          progress: Callable[[Iterable], Iterable] = lambda it: it, randomization=None,
                          environment_state: bool = False) -> dict:
    """Append ``episodes`` expert episodes (seeds from ``seed_start``) to the dataset at ``root``.

    ``noise_std`` (the expert's units: m/s for the tabletop, rad per joint for the arm) perturbs every expert command (DART; ``vla_sim.expert``): the dataset holds the commands
    the robot executed, noise included, and the expert's recoveries from it. Episodes the expert fails are
    skipped (and counted) when ``only_successes``; returns counts.

    ``labels`` "clean" records, as each frame's action, the expert's command without its noise
    (``expert.clean_action``: DART's label, the noise only choosing the states visited) while the robot executes
    the noisy one; "executed" (the default) records what was executed. ``expert_kwargs`` go to the expert
    (the arm's ``gripper_delay``, ...). ``randomization`` (``vla_sim.randomization.RandomizationRanges``, a mapping
    of its fields or a preset name; None: off) randomises every episode (tabletop presets; docs/randomization.md).
    ``environment_state`` also records, as ``observation.environment_state`` (LeRobot's key for privileged state),
    where the things the instruction names are (the env's ``task_state()``): a training target for the image
    encoder (``policy.aux_env_state``), never a policy input.
    """
    if labels not in ("executed", "clean"):
        raise ValueError(f"labels {labels!r}: choose 'executed' (the command sent) or 'clean' (the expert's "
                         "command without its noise)")
    from vla_sim.backends import PRESETS, make_backend
    config = dict(PRESETS[preset])
    if config.get("instruction_option"):
        config["env_kwargs"] = {**config.get("env_kwargs", {}), "instruction_set": instruction_set}
    backend = make_backend(config)
    if randomization is not None:
        from vla_sim.randomization import RandomizationRanges
        try:
            backend.set_randomization(RandomizationRanges.coerce(randomization))
        except ValueError:
            backend.close()
            raise
    if not backend.has_expert:
        raise ValueError(f"sim preset '{preset}' has no scripted expert")
    features = contract.features()
    if environment_state:
        names = list(backend.task_state_names)
        if not names:
            backend.close()
            raise ValueError(f"sim preset '{preset}' says nothing of where its task's objects are (task_state); "
                             "record without environment_state")
        features[ENV_STATE] = {"dtype": "float32", "shape": [len(names)], "names": names}
    writer = DatasetWriter(root, contract.fps, features, robot_type=contract.robot)
    saved = failed = frames = 0
    seed = seed_start
    try:
        for _ in progress(range(episodes)):
            while True:
                frame = backend.reset(seed)
                seed += 1
                extra = dict(expert_kwargs or {})
                if noise_std > 0 or extra:
                    extra.update(noise_std=noise_std, seed=seed)
                expert = backend.make_expert(**extra)
                episode = writer.begin_episode(backend.instruction, contract=contract.robot)
                t = 0
                while True:
                    action = np.asarray(expert.act(backend.privileged_state()), np.float64)
                    label = action
                    if labels == "clean":
                        clean = getattr(expert, "clean_action", None)
                        if clean is None:
                            raise ValueError(f"labels 'clean': the expert of sim preset '{preset}' does not say "
                                             "its command without noise (clean_action); use labels 'executed'")
                        label = np.asarray(clean, np.float64)
                    episode.add_frame({
                        **{image_key(cam.name): model_image(frame.camera(cam.name), cam.height, cam.width)
                           for cam in contract.cameras},
                        STATE: contract.state.vector(frame.joint_positions, frame.joint_velocities),
                        ACTION: label.astype(np.float32), "timestamp": t / contract.fps,
                        "intervention": True, "late": False, "valid": True,
                        **({ENV_STATE: backend.task_state().astype(np.float32)} if environment_state else {})})
                    frame = backend.step(action)
                    t += 1
                    if frame.is_success or frame.terminated or frame.truncated:
                        break
                if frame.is_success or not only_successes:
                    episode.save(success=bool(frame.is_success))
                    saved += 1
                    frames += t
                    break
                episode.discard()
                failed += 1
    finally:
        backend.close()
    return {"root": str(root), "episodes": saved, "frames": frames, "expert_failures": failed, "next_seed": seed}


def reworded_instruction(preset: str, seed: int, phrasings: str, rng) -> str:
    """The task of the scene of ``seed`` (its block and zone colours) in a random phrasing from ``phrasings``; the
    sim accepts it on a reset with the same seed, since the same env and seed give the same scene."""
    import gymnasium as gym

    import vla_sim.envs  # noqa: F401 - registers the envs
    from vla_sim.backends import PRESETS
    from vla_sim.envs.instructions import format_instruction, parse_instruction, templates
    env = gym.make(PRESETS[preset]["env_id"], **PRESETS[preset].get("env_kwargs", {}))
    try:
        _, info = env.reset(seed=seed)
    finally:
        env.close()
    block, zone = parse_instruction(info["instruction"])
    return format_instruction(rng.choice(templates(phrasings)), block, zone)
