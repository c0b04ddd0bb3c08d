"""The evaluation matrix of `vla eval`: policy artifacts x tasks x domain-randomisation presets x phrasings,
each cell a run of seeded episodes in the simulator, driven exactly as vla_trainer.evaluate drives one (the
policy node's runner, the contract's observations, onnxruntime on CPU).

Every cell of every artifact runs the same seeds, so the artifacts face the same scenes. No rclpy here.
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable

import numpy as np

from vla_core.errors import ConfigError
from vla_tools.eval_metrics import (command_jerk, compare_success, first_half_uncertainty, path_length,
                                    summarise_cell)

#: Robot contract of each simulated task.
TASK_CONTRACTS = {"tabletop": "params/robots/tabletop_sim.yaml", "tabletop_hard": "params/robots/tabletop_sim.yaml",
                  "arm": "params/robots/sim_arm.yaml"}
BUILTIN_PHRASINGS = ("train", "heldout", "all")


def read_phrasings(path: Path) -> tuple[str, ...]:
    """A user's phrasing file: one template per line with {block} and {zone} (the tabletop's colour words), blank
    lines and lines starting with # ignored. Raises ConfigError naming the line and the fix."""
    from vla_sim.envs.instructions import format_instruction
    path = Path(path)
    if not path.is_file():
        raise ConfigError(f"phrasing file {str(path)!r} does not exist: give train, heldout, all or a file of "
                          "templates, one per line, with {block} and {zone}")
    found = []
    for number, line in enumerate(path.read_text().splitlines(), 1):
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        try:
            text = format_instruction(line, "red", "purple")
        except (KeyError, IndexError, ValueError) as exc:
            raise ConfigError(f"{path}:{number}: template {line!r} is not usable ({exc!r}); use only the "
                              "placeholders {block} and {zone}") from None
        if "red" not in text or "purple" not in text:
            raise ConfigError(f"{path}:{number}: template {line!r} must name both {{block}} and {{zone}}")
        found.append(line)
    if not found:
        raise ConfigError(f"phrasing file {path} holds no template; write one per line with {{block}} and {{zone}}")
    return tuple(found)


@dataclass(frozen=True)
class Cell:
    task: str
    randomization: str
    phrasing: str  # train, heldout, all, or a phrasing file's path

    @property
    def key(self) -> str:
        return f"{self.task}/{self.randomization}/{Path(self.phrasing).name if self.is_file else self.phrasing}"

    @property
    def is_file(self) -> bool:
        return self.phrasing not in BUILTIN_PHRASINGS


def plan_cells(tasks: list[str], randomizations: list[str], phrasings: list[str]) -> list[Cell]:
    """Every combination, validated before anything runs: unknown names raise ConfigError listing the choices."""
    from vla_sim.backends import PRESETS as TASKS
    from vla_sim.randomization import PERTURBATIONS as RANDOMIZATION
    problems = [f"task {t!r} is not one of {sorted(TASK_CONTRACTS)}" for t in tasks if t not in TASK_CONTRACTS
                or t not in TASKS]
    problems += [f"randomization {r!r} is not one of {sorted(RANDOMIZATION)}" for r in randomizations
                 if r not in RANDOMIZATION]
    for p in phrasings:
        if p not in BUILTIN_PHRASINGS:
            read_phrasings(Path(p))
            if any(not t.startswith("tabletop") for t in tasks):
                problems.append(f"phrasing file {p!r} holds tabletop templates; evaluate the arm with train, "
                                "heldout or all")
    if not tasks or not randomizations or not phrasings:
        problems.append("give at least one task, one randomization preset and one phrasing set")
    if problems:
        raise ConfigError("vla eval: " + "; ".join(dict.fromkeys(problems)))
    return [Cell(t, r, p) for t in tasks for r in randomizations for p in phrasings]


class _Recorder:
    """A backend as it is, keeping the commands given and the rewards and joint positions returned."""

    def __init__(self, backend, first):
        self.backend, self.commands, self.rewards = backend, [], []
        self.positions = [np.array(first.joint_positions)]

    def step(self, action):
        frame = self.backend.step(action)
        self.commands.append(np.array(action, np.float64))
        self.rewards.append(frame.reward)
        self.positions.append(np.array(frame.joint_positions))
        return frame


def phrasing_of(task: str, phrasings: tuple[str, ...] | str) -> Callable[[str], str]:
    """instruction -> the template it was said in: of the user's ``phrasings`` (a tuple of tabletop templates) or
    of the task's built-in set (a set name); the instruction itself when no template gives it."""
    if task == "arm":
        from vla_sim.envs.arm_instructions import SKILLS, arm_templates, format_arm_instruction, \
            parse_arm_instruction
        known = tuple(t for skill in SKILLS for t in arm_templates(skill, phrasings))
        parse, fill = parse_arm_instruction, lambda template, task: format_arm_instruction(template, task)
    else:
        from vla_sim.envs.instructions import format_instruction, parse_instruction, templates
        known = phrasings if isinstance(phrasings, tuple) else templates(phrasings)
        parse, fill = parse_instruction, lambda template, colours: format_instruction(template, *colours)

    def find(instruction: str) -> str:
        try:
            what = parse(instruction)
        except ValueError:
            return instruction
        for template in known:
            try:
                if fill(template, what) == instruction:
                    return template
            except (ValueError, KeyError):  # a template of the other arm skill
                continue
        return instruction
    return find


def run_cell(policy, robot, encoder, cell: Cell, seeds: range, max_steps: int | None = None) -> list[dict]:
    """The episodes of one cell: one dict per seed (see eval_metrics.summarise_cell for the fields)."""
    from vla_policy.runner import PolicyRunner
    from vla_sim.backends import PRESETS as TASKS, make_backend
    from vla_sim.envs.instructions import format_instruction, parse_instruction
    from vla_sim.randomization import PERTURBATIONS as RANDOMIZATION
    from vla_trainer.evaluate import run_episode
    config = dict(TASKS[cell.task])
    own = read_phrasings(Path(cell.phrasing)) if cell.is_file else None
    if config.get("instruction_option"):
        config["env_kwargs"] = {**config.get("env_kwargs", {}),
                                "instruction_set": "train" if cell.is_file else cell.phrasing}
    if max_steps:
        config["max_episode_steps"] = int(max_steps)
    backend = make_backend(config)
    phrasing = phrasing_of(cell.task, own or cell.phrasing)
    runner = PolicyRunner(policy)
    episodes = []
    try:
        backend.set_randomization(RANDOMIZATION[cell.randomization])
        for i, seed in enumerate(seeds):
            frame = backend.reset(seed)
            if own:  # the env's task for this seed, said in the user's phrasing (cycling through the file)
                template = own[i % len(own)]
                frame = backend.reset(seed, instruction=format_instruction(template, *parse_instruction(
                    backend.instruction)))
            _, embedding, _ = encoder.encode(backend.instruction)
            recorder, uncertainty = _Recorder(backend, frame), []
            frame, ticks = run_episode(runner, recorder, frame, robot, embedding, uncertainty)
            success = bool(frame.is_success)
            episodes.append({
                "seed": seed, "instruction": backend.instruction, "phrasing": phrasing(backend.instruction),
                "success": success, "steps": ticks, "return": float(np.sum(recorder.rewards)),
                "time_to_success_s": ticks / robot.fps if success else None,
                "path_length": path_length(np.stack(recorder.positions)),
                "jerk_rms": command_jerk(np.stack(recorder.commands), 1.0 / robot.fps, backend.position_controlled),
                "uncertainty_first_half": first_half_uncertainty(uncertainty)})
    finally:
        backend.close()
    return episodes


def run_matrix(artifacts: list[str], cells: list[Cell], episodes: int, seed_start: int = 100_000,
               models_dir: Path | None = None, max_steps: int | None = None, encoder=None,
               say: Callable[[str], None] = lambda _: None) -> dict[str, Any]:
    """Evaluate every artifact on every cell; returns {"artifacts", "cells": [{artifact, cell, task,
    randomization, phrasing, figures..., episodes: [...]}], "comparisons": [...] (each artifact after the
    first against the first, per cell), "seeds"}."""
    from vla_core.contract import RobotContract
    from vla_core.paths import workspace_path
    from vla_policy.runtime import load_policy
    if episodes < 1:
        raise ConfigError(f"--episodes {episodes}: give at least 1 episode per cell")
    if encoder is None:
        from vla_language.encoder import InstructionEncoder
        encoder = InstructionEncoder()
    models_dir = Path(models_dir) if models_dir else workspace_path("models")
    seeds = range(seed_start, seed_start + episodes)
    results, names = [], []
    for spec in artifacts:
        loaded: dict[str, Any] = {}
        for cell in cells:
            contract = TASK_CONTRACTS[cell.task]
            if contract not in loaded:
                robot = RobotContract.from_yaml(workspace_path(contract))
                loaded[contract] = (load_policy(str(spec), models_dir, robot, encoder.encoder_id,
                                                ["onnxruntime-cpu"]), robot)
            policy, robot = loaded[contract]
            name = f"{policy.artifact.name}/{policy.artifact.version}"
            if name in names:
                raise ConfigError(f"vla eval: {spec!r} is {name} again; give each artifact once")
            say(f"{name}: {cell.key} ({episodes} episodes)")
            rows = run_cell(policy, robot, encoder, cell, seeds, max_steps)
            results.append({"artifact": name, "cell": cell.key, "task": cell.task,
                            "randomization": cell.randomization, "phrasing": cell.phrasing,
                            **summarise_cell(rows), "episodes_detail": rows})
        names.append(name)
        for policy, _ in loaded.values():
            policy.engine.close()
    comparisons = []
    for other in names[1:]:
        for cell in cells:
            a = next(r for r in results if r["artifact"] == names[0] and r["cell"] == cell.key)
            b = next(r for r in results if r["artifact"] == other and r["cell"] == cell.key)
            comparisons.append({"cell": cell.key, "a": names[0], "b": other, "success_rate_a": a["success_rate"],
                                "success_rate_b": b["success_rate"],
                                **compare_success(a["successes"], a["episodes"], b["successes"], b["episodes"])})
    return {"artifacts": names, "seeds": [seed_start, seed_start + episodes - 1], "cells": results,
            "comparisons": comparisons}
