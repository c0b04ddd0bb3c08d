"""A behaviour-cloned start for the on-graph RL learner: the SAC actor the learner node would build is trained by
imitation on recorded demonstrations, and its weights are saved for ``rl_learner.initial_weights``.

    python -m vla_trainer.rl.pretrain --demos data/recordings/demo --out models/sac_bc.safetensors
    vla up rl --set rl_learner.initial_weights=models/sac_bc.safetensors --set 'rl_learner.demos=[data/recordings/demo]'

The agent is built by the learner's own code (:func:`vla_trainer.rl.online.learner_agent`) from the learner's
parameter file (``--params``, default params/rl_learner.yaml, with ``--set key=value`` on top) and the same
demonstrations, so the weights load into the node's agent (same shapes; the normaliser is in the weights). Only the
actor's mean is trained (L1 to the demonstrated action in [-1, 1] units, the actor's ``compute_loss``); the critics
and the temperature start fresh, as in HIL-SERL and RLPD, where the critics learn from the demonstrations in the
replay. A tenth of the demonstration episodes (at least one) are held out: their L1 is printed with the training
L1, and the last line says where the weights went and how to start the learner from them.
"""
from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import numpy as np
import yaml

from vla_core.errors import ConfigError
from vla_core.params import defaults, validate

NODE = "rl_learner"


def learner_params(params_file: str | None, overrides: list[str]) -> dict:
    """The learner node's parameters: its declared defaults, the file's ``rl_learner.ros__parameters``, then
    ``key=value`` overrides (YAML values), each checked against its declaration."""
    from vla_trainer.rl_params import RL_LEARNER_PARAMS
    given: dict = {}
    if params_file:
        doc = yaml.safe_load(Path(params_file).read_text()) or {}
        given.update(((doc.get(NODE) or {}).get("ros__parameters")) or {})
    for pair in overrides:
        key, sep, value = pair.partition("=")
        if not sep:
            raise ConfigError(f"--set {pair!r}: expected KEY=VALUE, e.g. --set hidden=128")
        given[key.strip()] = yaml.safe_load(value)
    given.pop("use_sim_time", None)
    problems = validate(RL_LEARNER_PARAMS, given, f"{params_file or 'the defaults'}: {NODE}")
    if problems:
        raise ConfigError("; ".join(problems))
    specs = {s.name: s for s in RL_LEARNER_PARAMS}
    return {**defaults(RL_LEARNER_PARAMS), **{k: specs[k].coerce(v) for k, v in given.items() if k in specs}}


def pretrain(agent, demos, steps: int, batch_size: int, lr: float, seed: int = 0, held_out: float = 0.1,
             log=print, log_every: int = 100) -> dict:
    """Behaviour cloning of ``agent``'s actor on the transitions of ``demos`` (a ReplayBuffer of demonstrations),
    holding out ``held_out`` of its episodes; returns the first and last training L1 and the held-out L1."""
    import torch
    rng = np.random.default_rng(seed)
    ends = np.flatnonzero(demos.done[:len(demos)])
    starts = np.concatenate([[0], ends[:-1] + 1])
    episodes = [np.arange(s, e + 1) for s, e in zip(starts, ends)]
    if len(episodes) < 2:
        raise ValueError(f"{len(episodes)} demonstration episode(s): behaviour cloning needs at least 2 (one held out)")
    order = rng.permutation(len(episodes))
    n_val = max(1, int(round(held_out * len(episodes))))
    val_idx = np.concatenate([episodes[i] for i in order[:n_val]])
    train_idx = np.concatenate([episodes[i] for i in order[n_val:]])
    actor = agent.actor
    opt = torch.optim.Adam([q for q in actor.parameters() if q.requires_grad], lr=lr)

    def batch_of(idx, augment):
        t = agent.tensors(demos.gather(idx), augment_images=augment)
        return {"images": t["images"], "state": t["state"], "language": t["language"], "action": t["action"][:, None],
                "action_pad": torch.zeros(len(idx), 1, dtype=torch.bool)}

    def held_out_l1() -> float:
        actor.eval()
        with torch.no_grad():
            losses = [float(actor.compute_loss(batch_of(val_idx[i:i + 256], False))["loss"]) * len(val_idx[i:i + 256])
                      for i in range(0, len(val_idx), 256)]
        actor.train()
        return sum(losses) / len(val_idx)

    report = {"episodes": len(episodes), "held_out_episodes": n_val, "transitions": int(len(train_idx)),
              "held_out_l1_before": held_out_l1()}
    t0, first, loss = time.perf_counter(), None, None
    actor.train()
    for step in range(1, steps + 1):
        loss = actor.compute_loss(batch_of(rng.choice(train_idx, size=batch_size), True))["loss"]
        if not torch.isfinite(loss):
            raise FloatingPointError(f"step {step}: the behaviour-cloning loss is {float(loss)}; lower --lr")
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        first = float(loss.detach()) if first is None else first
        if step % log_every == 0 or step == steps:
            ms = (time.perf_counter() - t0) / step * 1e3
            log(f"step {step}/{steps}: L1 {float(loss.detach()):.4f} ({ms:.0f} ms a step)", flush=True)
    actor.eval()
    report.update(steps=steps, train_l1_first=first, train_l1_last=float(loss.detach()), held_out_l1=held_out_l1(),
                  seconds=round(time.perf_counter() - t0, 1))
    return report


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m vla_trainer.rl.pretrain", description=__doc__.split("\n\n")[0])
    ap.add_argument("--demos", nargs="+", required=True, help="recorded datasets (LeRobotDataset v3.0) to imitate")
    ap.add_argument("--out", required=True, help="where the agent's weights go (.safetensors)")
    ap.add_argument("--params", default="params/rl_learner.yaml",
                    help="the learner's parameter file (default params/rl_learner.yaml): the network shapes")
    ap.add_argument("--set", action="append", default=[], metavar="KEY=VALUE",
                    help="a learner parameter on top of the file (e.g. hidden=64); repeatable")
    ap.add_argument("--steps", type=int, default=1000, help="behaviour-cloning steps (default 1000)")
    ap.add_argument("--batch-size", type=int, default=64, help="batch (default 64)")
    ap.add_argument("--lr", type=float, default=3e-4, help="Adam learning rate (default 3e-4)")
    ap.add_argument("--threads", type=int, default=0, help="torch CPU threads (default: torch's choice)")
    a = ap.parse_args(argv)
    try:
        if a.steps < 1 or a.batch_size < 1 or not a.lr > 0:
            raise ConfigError(f"--steps {a.steps}, --batch-size {a.batch_size} and --lr {a.lr} must be positive")
        out = Path(a.out)
        if out.suffix != ".safetensors":
            raise ConfigError(f"--out {a.out}: name a .safetensors file (rl_learner.initial_weights reads one)")
        import torch

        from vla_core.contract import RobotContract
        from vla_core.paths import workspace_path
        from vla_language.encoder import InstructionEncoder
        from vla_trainer.rl.online import learner_agent
        if a.threads:
            torch.set_num_threads(a.threads)
        p = learner_params(a.params, a.set)
        paths = [str(workspace_path(d)) for d in a.demos]
        p["demos"] = paths
        contract = RobotContract.from_yaml(workspace_path(p["contract"]))
        encoder = InstructionEncoder()
        agent, demos = learner_agent(contract, p, lambda text: encoder.encode(text)[1])
        print(f"{len(demos)} demonstration transitions from {', '.join(paths)}; actor hidden {p['hidden']}, "
              f"channels {p['channels']}, image_downsample {p['image_downsample']}", flush=True)
        report = pretrain(agent, demos, a.steps, a.batch_size, a.lr, seed=p["seed"])
        out.parent.mkdir(parents=True, exist_ok=True)
        agent.save(out)
    except (ConfigError, ValueError, FileNotFoundError, FloatingPointError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    demos_yaml = "[" + ", ".join(a.demos) + "]"
    print(json.dumps({"weights": str(out), **report}))
    print(f"saved {out}: held-out L1 {report['held_out_l1_before']:.4f} -> {report['held_out_l1']:.4f}; start the "
          f"learner from it: vla up rl --set rl_learner.initial_weights={out} --set 'rl_learner.demos={demos_yaml}'"
          + "".join(f" --set rl_learner.{s}" for s in a.set))
    return 0


if __name__ == "__main__":
    sys.exit(main())
