"""Evaluation in simulation: the deployed artifact (onnxruntime, golden-checked, as the policy node loads it)
drives a vla_sim backend directly, faster than real time, over seeds and instruction phrasings it never saw.

Observations are built exactly as on the robot: each of the contract's cameras (the backend's image of that
camera: the arm's scene and wrist) at the contract's size, the contract's joint-major state, and the
instruction's embedding from the bundled encoder. The policy runs through vla_policy.runner.PolicyRunner, the policy node's own tick: the same feeds and
ACT's temporal ensembling or a receding horizon, as the artifact says. An artifact with an uncertainty output
(``ensemble_heads``) also gets its uncertainty summarised, and a help threshold calibrated from the successful
episodes (vla_policy.uncertainty.calibrate_threshold: the 99th percentile of their ticks' uncertainty), to set as
the policy node's help_threshold.
"""
from __future__ import annotations

import time
from pathlib import Path
from typing import Any, Callable, Iterable

import numpy as np

from vla_core.contract import RobotContract
from vla_core.features import LANGUAGE, STATE, image_key
from vla_core.observation import model_image


def evaluate_artifact(artifact: str | Path, preset: str = "tabletop", episodes: int = 50, seed_start: int = 100_000,
                      instruction_set: str = "heldout", contract: str | Path = "params/robots/tabletop_sim.yaml",
                      models_dir: Path | None = None, encoder=None,
                      progress: Callable[[Iterable], Iterable] = lambda it: it) -> dict[str, Any]:
    """Success rate of ``artifact`` over ``episodes`` seeded episodes; returns figures and per-episode rows."""
    from vla_core.paths import workspace_path
    from vla_policy.runner import PolicyRunner
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
    if preset not in PRESETS:
        raise ValueError(f"eval.env '{preset}' is not one of {', '.join(sorted(PRESETS))}")
    config = dict(PRESETS[preset])
    if config.get("instruction_option"):  # instruction-conditioned: phrasings from the chosen set
        config["env_kwargs"] = {**config.get("env_kwargs", {}), "instruction_set": instruction_set}
    backend = make_backend(config)
    runner = PolicyRunner(policy)
    rows = []
    t0 = time.perf_counter()
    steps_total = 0
    uncertain: dict[int, list[float]] = {}  # seed -> the uncertainty of each tick
    try:
        for seed in progress(range(seed_start, seed_start + episodes)):
            frame = backend.reset(seed)
            instruction = backend.instruction
            _, embedding, _ = encoder.encode(instruction)
            frame, tick = run_episode(runner, backend, frame, robot, embedding, uncertain.setdefault(seed, []))
            success = bool(frame.is_success)
            steps_total += tick
            rows.append({"seed": seed, "instruction": instruction, "success": success, "steps": tick})
            if uncertain[seed]:
                rows[-1]["uncertainty_max"] = round(max(uncertain[seed]), 5)
    finally:
        backend.close()
    seconds = time.perf_counter() - t0
    sim_seconds = steps_total / robot.fps
    successes = sum(r["success"] for r in rows)
    return {"artifact": str(policy.artifact.path), "env": preset, "instruction_set": instruction_set,
            "episodes": len(rows), "successes": successes, "success_rate": successes / max(1, len(rows)),
            "seeds": [seed_start, seed_start + episodes - 1], "wall_s": round(seconds, 2),
            "real_time_factor": round(sim_seconds / max(seconds, 1e-9), 1), "rows": rows,
            **uncertainty_summary(rows, uncertain)}


def uncertainty_summary(rows: list[dict], uncertain: dict[int, list[float]]) -> dict[str, Any]:
    """{"uncertainty": percentiles over every tick, by outcome, and the help threshold calibrated from the
    successful episodes' ticks}, or {} when the policy gives no uncertainty."""
    from vla_policy.uncertainty import calibrate_threshold
    ticks = [u for values in uncertain.values() for u in values]
    if not ticks:
        return {}
    by_outcome = {outcome: [u for r in rows if r["success"] == outcome for u in uncertain.get(r["seed"], [])]
                  for outcome in (True, False)}
    summary = {"p50": round(float(np.percentile(ticks, 50)), 5), "p99": round(float(np.percentile(ticks, 99)), 5)}
    for outcome, name in ((True, "successful"), (False, "failed")):
        if by_outcome[outcome]:
            summary[f"{name}_p50"] = round(float(np.percentile(by_outcome[outcome], 50)), 5)
    if by_outcome[True]:
        summary["help_threshold"] = round(calibrate_threshold(by_outcome[True], 0.99), 5)
    return {"uncertainty": summary}



def observation(frame, robot: RobotContract, embedding: np.ndarray) -> dict[str, np.ndarray]:
    """A sim frame as the policy node receives it: every camera of the contract at its size (uint8 RGB; the
    backend's image of the camera of that name, or a one-camera env's only image), the contract's joint-major
    state, the instruction's embedding (float32). A contract camera the backend lacks raises ValueError naming
    both."""
    return {**{image_key(cam.name): model_image(frame.camera(cam.name), cam.height, cam.width)
               for cam in robot.cameras},
            STATE: robot.state.vector(frame.joint_positions, frame.joint_velocities),
            LANGUAGE: np.asarray(embedding, np.float32)}


def run_episode(runner, backend, frame, robot: RobotContract, embedding: np.ndarray,
                uncertainties: list[float] | None = None):
    """Drive ``backend`` from its first ``frame`` (after reset) with ``runner`` (a vla_policy PolicyRunner) until
    the episode ends (success, termination or time limit); returns (the last frame, control steps). The policy's
    uncertainty of each tick is appended to ``uncertainties`` when given (none when the artifact has none)."""
    runner.reset()
    tick = 0
    while True:
        command, uncertainty = runner.step_with_uncertainty(tick, observation(frame, robot, embedding))
        if uncertainties is not None and uncertainty is not None:
            uncertainties.append(uncertainty)
        frame = backend.step(np.asarray(command, np.float64))
        tick += 1
        if frame.is_success or frame.terminated or frame.truncated:
            return frame, tick
