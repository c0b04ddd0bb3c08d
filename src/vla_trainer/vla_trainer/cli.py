"""``vla-train`` (also ``vla train``): train a policy from datasets, export it, optionally evaluate it in sim.

    vla-train --data.paths=data/demos --policy.type=act --train.epochs=100 --eval.episodes=50
    torchrun --nproc-per-node=4 -m vla_trainer.cli --data.paths=... (one process per GPU; DDP)

Progress: a bar on a terminal, else (or with ``--progress=json``) one JSON object per line, which is what the
trainer node reads. The last line is always one JSON object: the result (run directory, artifact, figures).
Exit codes: 0 trained, 2 bad config or data (the message says what to change), 1 anything else.
"""
from __future__ import annotations

import json
import math
import sys
from typing import Any

from vla_core.errors import ConfigError
from vla_core.process import configure_process

USAGE = __doc__


def _printer(mode: str):
    def emit(event: dict[str, Any]) -> None:
        if mode == "json":
            print(json.dumps(_finite(event), default=str), flush=True)
            return
        kind = event.get("event")
        if kind == "log":
            print(event["message"], file=sys.stderr, flush=True)
        elif kind == "epoch":
            m = event["metrics"]
            maes = ", ".join(f"{k.rsplit('/', 1)[-1]} {v:.4f}" for k, v in m.items() if k.startswith("val/action_mae/"))
            line = (f"epoch {event['epoch']}/{event['epochs']} step {event['step']}: train loss "
                    f"{event['train_loss']:.4f}, val loss {event['val_loss']:.4f}")
            print(line + (f", val |action error| {maes}" if maes else "") + f", eta {event['eta_s']:.0f} s",
                  file=sys.stderr, flush=True)
        elif kind == "eval":
            print(f"simulated evaluation ({event['instruction_set']} phrasings): {event['successes']}/"
                  f"{event['episodes']} succeeded ({100 * event['success_rate']:.0f}%)", file=sys.stderr, flush=True)
    return emit


def _finite(obj):
    if isinstance(obj, float) and not math.isfinite(obj):
        return None
    if isinstance(obj, dict):
        return {k: _finite(v) for k, v in obj.items()}
    if isinstance(obj, list):
        return [_finite(v) for v in obj]
    return obj


def run(argv: list[str]) -> int:
    if any(a in ("-h", "--help") for a in argv):
        print(USAGE)
        _print_options()
        return 0
    mode = "text" if sys.stderr.isatty() else "json"
    args = []
    for a in argv:
        if a.startswith("--progress="):
            mode = a.split("=", 1)[1]
        else:
            args.append(a)
    if mode not in ("text", "json"):
        print(f"error: --progress={mode}: use text or json", file=sys.stderr)
        return 2
    import os
    if mode == "json":
        os.environ["VLA_PROGRESS"] = "json"
    from vla_trainer.config import LEFT_OUT, build_config, parse_overrides
    from vla_trainer.data import DataError
    try:
        raw = parse_overrides(args)
        for option in raw.get(LEFT_OUT, ()):
            print(f"note: left out {option}", file=sys.stderr)
        config = build_config(raw)
    except (ValueError, ConfigError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    emit = _printer(mode)
    from vla_trainer.train import train
    try:
        result = train(config, emit)
    except (DataError, ConfigError, FileNotFoundError, ValueError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        print(json.dumps({"event": "error", "error": str(exc)}), flush=True)
        return 2
    from vla_trainer.train import distributed_env
    if distributed_env()[0] == 0 and config.eval.episodes and result.get("artifact"):
        from vla_trainer.evaluate import evaluate_artifact
        evals = {}
        for instruction_set in config.eval.instruction_sets:
            ev = evaluate_artifact(result["artifact"], config.eval.env, config.eval.episodes, config.eval.seed_start,
                                   instruction_set, config.eval.contract)
            ev.pop("rows")
            emit({"event": "eval", **ev})
            evals[instruction_set] = ev
        result["eval"] = evals
        from pathlib import Path
        Path(result["run_dir"], "result.json").write_text(json.dumps(result, indent=1, default=str))
    if distributed_env()[0] == 0:
        print(json.dumps(_finite({"event": "result", **result}), default=str), flush=True)
    return 0


def _print_options() -> None:
    import dataclasses
    from vla_trainer.config import SECTIONS, STATISTICS_AND_SHAPES
    from vla_trainer.algorithms import ALGORITHMS
    from vla_trainer.policies import POLICIES
    print("options (--section.key=value):")
    for section, cls in SECTIONS.items():
        for f in dataclasses.fields(cls):
            default = f.default if f.default is not dataclasses.MISSING else f.default_factory()
            print(f"  --{section}.{f.name}={default}")
    for section, registry, hidden in (("policy", POLICIES, STATISTICS_AND_SHAPES), ("algorithm", ALGORITHMS, ())):
        for name, cls in registry.items():
            opts = [f"{f.name}={f.default if f.default is not dataclasses.MISSING else f.default_factory()}"
                    for f in dataclasses.fields(cls.config_class) if f.name not in {"type", *hidden}]
            print(f"  --{section}.type={name}" + "".join(f" --{section}.{opt}" for opt in opts))
            for f in dataclasses.fields(cls.config_class):  # options that carry a description (field metadata "help")
                if f.metadata.get("help"):
                    print(f"      {section}.{f.name}: {f.metadata['help']}")
    print("  --config FILE (YAML, same sections)  --resume RUN_DIR  --progress=text|json")


def main(argv: list[str] | None = None) -> int:
    configure_process()
    return run(list(sys.argv[1:] if argv is None else argv))


def register(subparsers) -> None:
    """``vla train ...``: the same options as vla-train."""
    import argparse
    parser = subparsers.add_parser("train", help="train a policy from datasets (vla-train)", add_help=False)
    parser.add_argument("options", nargs=argparse.REMAINDER)
    parser.set_defaults(func=lambda args: run(args.options))


if __name__ == "__main__":
    sys.exit(main())
