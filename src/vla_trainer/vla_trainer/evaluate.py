"""Evaluation in simulation: the deployed artifact (onnxruntime, golden-checked, as the policy node loads it)
drives a vla_sim backend directly, faster than real time, over seeds and instruction phrasings it never saw.

Observations are built exactly as on the robot: the backend's camera image at the contract's size through
vla_core.image.camera_frame, the contract's joint-major state, and the instruction's embedding from the bundled
encoder. Actions go through ACT's temporal ensembling or a receding horizon, as the artifact says.
"""
from __future__ import annotations

import time
from pathlib import Path
from typing import Any, Callable, Iterable

import numpy as np

from vla_core.contract import RobotContract
from vla_core.observation import model_image, to_chw_float


def evaluate_artifact(artifact: str | Path, preset: str = "tabletop", episodes: int = 50, seed_start: int = 100_000,
                      instruction_set: str = "heldout", contract: str | Path = "params/robots/tabletop_sim.yaml",
                      models_dir: Path | None = None, encoder=None,
                      progress: Callable[[Iterable], Iterable] = lambda it: it) -> dict[str, Any]:
    """Success rate of ``artifact`` over ``episodes`` seeded episodes; returns figures and per-episode rows."""
    from vla_core.paths import workspace_path
    from vla_policy.chunking import ChunkExecutor
    from vla_policy.runtime import load_policy
    from vla_sim.backends import PRESETS, make_backend
    contract_path = Path(contract)
    if not contract_path.is_absolute():
        contract_path = workspace_path(str(contract_path))
    robot = RobotContract.from_yaml(contract_path)
    if encoder is None:
        from vla_language.encoder import InstructionEncoder
        encoder = InstructionEncoder()
    policy = load_policy(str(artifact), models_dir or workspace_path("models"), robot, encoder.encoder_id,
                         ["onnxruntime-cpu"])
    action = policy.artifact.manifest["action"]
    if preset not in PRESETS:
        raise ValueError(f"eval.env '{preset}' is not one of {', '.join(sorted(PRESETS))}")
    config = dict(PRESETS[preset])
    if config.get("instruction_option"):  # instruction-conditioned: phrasings from the chosen set
        config["env_kwargs"] = {**config.get("env_kwargs", {}), "instruction_set": instruction_set}
    backend = make_backend(config)
    names = policy.input_names
    cam = robot.cameras[0]
    rows = []
    t0 = time.perf_counter()
    steps_total = 0
    try:
        for seed in progress(range(seed_start, seed_start + episodes)):
            frame = backend.reset(seed)
            instruction = backend.instruction
            _, embedding, _ = encoder.encode(instruction)
            executor = ChunkExecutor(policy.chunk_size, policy.action_dim, action["execution"],
                                     action.get("ensemble_coeff", 0.01), action.get("receding_steps"))
            tick, success = 0, False
            while True:
                feeds = {}
                image = model_image(frame.image, cam.height, cam.width)
                feeds[names[f"observation.images.{cam.name}"]] = to_chw_float(image)[None]
                feeds[names["observation.state"]] = robot.state.vector(frame.joint_positions,
                                                                       frame.joint_velocities)[None]
                feeds[names["observation.language"]] = np.asarray(embedding, np.float32)[None]
                if executor.needs_inference(tick):
                    executor.push(tick, policy.infer(feeds))
                command = executor.action(tick)
                frame = backend.step(np.asarray(command, np.float64))
                tick += 1
                if frame.is_success or frame.terminated or frame.truncated:
                    success = bool(frame.is_success)
                    break
            steps_total += tick
            rows.append({"seed": seed, "instruction": instruction, "success": success, "steps": tick})
    finally:
        backend.close()
    seconds = time.perf_counter() - t0
    sim_seconds = steps_total / robot.fps
    successes = sum(r["success"] for r in rows)
    return {"artifact": str(policy.artifact.path), "env": preset, "instruction_set": instruction_set,
            "episodes": len(rows), "successes": successes, "success_rate": successes / max(1, len(rows)),
            "seeds": [seed_start, seed_start + episodes - 1], "wall_s": round(seconds, 2),
            "real_time_factor": round(sim_seconds / max(seconds, 1e-9), 1), "rows": rows}

