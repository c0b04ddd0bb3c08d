"""`vla eval ARTIFACT [ARTIFACT ...]`: evaluate policy artifacts over tasks x randomisation x phrasings in the
simulator; a table on stdout, the last line one JSON object, results.json and report.html under
runs/eval/<UTC time>/ (docs/eval.md)."""
from __future__ import annotations

import json
import sys
from datetime import datetime, timezone
from pathlib import Path

from vla_core.errors import ConfigError


def _split(text: str) -> list[str]:
    return [p.strip() for p in text.split(",") if p.strip()]


def register(sub) -> None:
    p = sub.add_parser("eval", help="evaluate policy artifacts over tasks x randomisation x phrasings",
                       description="Evaluate one or several policy artifacts (models/NAME/VERSION or a path) in "
                                   "the simulator over every combination of tasks, domain-randomisation presets "
                                   "and phrasing sets; print a table and, last, one JSON line; write results.json "
                                   "and a self-contained report.html. With two or more artifacts, each after the "
                                   "first is compared with the first cell by cell (Fisher's exact test).")
    p.add_argument("artifacts", nargs="+", metavar="ARTIFACT", help="NAME/VERSION under --models-dir, or a path")
    p.add_argument("--tasks", default="tabletop", help="comma-separated: tabletop, tabletop_hard, arm (tabletop)")
    p.add_argument("--randomization", default="off",
                   help="comma-separated vla_sim.randomization presets (off, visual, dynamics, full) or single "
                        "perturbations: a field of the full preset alone (brightness, colour_temperature, shade, "
                        "table_texture, distractors, camera_shift, camera_rotation, camera_zoom, friction_slide, "
                        "mass, latency); default off")
    p.add_argument("--phrasings", default="heldout",
                   help="comma-separated: train, heldout, all, or a file of templates with {block} and {zone}, one "
                        "per line (heldout)")
    p.add_argument("--episodes", type=int, default=50, help="episodes per cell and artifact (50)")
    p.add_argument("--seed-start", type=int, default=100_000, help="first episode seed (100000: unseen in training)")
    p.add_argument("--max-steps", type=int, default=0, help="episode step limit (default: the task's own)")
    p.add_argument("--models-dir", help="artifact registry (default $VLA_WS/models)")
    p.add_argument("--out", help="report directory (default runs/eval/<UTC time>)")
    p.set_defaults(func=cmd_eval)


def format_table(result: dict) -> str:
    """One line per artifact and cell, then one per comparison."""
    def num(v, fmt):
        return format(v, fmt) if v is not None else "n/a".rjust(int(fmt.split(".")[0]))
    lines = [f"{'artifact':24s} {'cell':34s} {'success':>15s} {'95% CI':>12s} {'return':>8s} {'t_succ':>7s} "
             f"{'path':>7s} {'jerk':>8s} {'auroc':>6s}"]
    for c in result["cells"]:
        lines.append(f"{c['artifact'][:24]:24s} {c['cell'][:34]:34s} "
                     f"{c['successes']:>4d}/{c['episodes']:<4d}{100 * c['success_rate']:5.1f}% "
                     f"{100 * c['ci95'][0]:5.1f}-{100 * c['ci95'][1]:5.1f}% {num(c['mean_return'], '8.3f')} "
                     f"{num(c['time_to_success_s'], '7.2f')} {num(c['path_length'], '7.3f')} "
                     f"{num(c['jerk_rms'], '8.2f')} {num(c['failure_auroc'], '6.2f')}")
    for c in result["comparisons"]:
        lines.append(f"compare {c['cell']}: {c['a']} {100 * c['success_rate_a']:.1f}% vs {c['b']} "
                     f"{100 * c['success_rate_b']:.1f}%, p = {c['p_value']:.3g} ({c['test']})")
    return "\n".join(lines)


def summary_line(result: dict, out: Path) -> dict:
    """The last stdout line: every cell's figures (no per-episode rows: those are in results.json)."""
    return {"report": str(out / "report.html"), "results": str(out / "results.json"),
            "artifacts": result["artifacts"], "seeds": result["seeds"],
            "cells": [{k: v for k, v in c.items() if k != "episodes_detail"} for c in result["cells"]],
            "comparisons": result["comparisons"]}


def cmd_eval(args) -> int:
    from vla_core.paths import workspace_path
    from vla_tools.eval_matrix import plan_cells, run_matrix
    from vla_tools.eval_report import write_eval_report
    cells = plan_cells(_split(args.tasks), _split(args.randomization), _split(args.phrasings))
    if args.max_steps < 0:
        raise ConfigError(f"--max-steps {args.max_steps}: give a positive step limit, or 0 for the task's own")
    created = datetime.now(timezone.utc)
    out = Path(args.out) if args.out else workspace_path("runs") / "eval" / created.strftime("%Y%m%dT%H%M%SZ")
    say = lambda msg: print(f"[vla eval] {msg}", file=sys.stderr, flush=True)  # noqa: E731
    from vla_core.artifact import ArtifactError
    try:
        result = run_matrix(args.artifacts, cells, args.episodes, args.seed_start,
                            Path(args.models_dir) if args.models_dir else None, args.max_steps or None, say=say)
    except ArtifactError as exc:  # a missing artifact, or one that does not fit a task's robot contract
        print(f"error: {exc}", file=sys.stderr)
        return 2
    out.mkdir(parents=True, exist_ok=True)
    config = {"created": created.isoformat(timespec="seconds"), "artifacts": args.artifacts, "tasks": args.tasks,
              "randomization": args.randomization, "phrasings": args.phrasings, "episodes": args.episodes,
              "seed_start": args.seed_start, "max_steps": args.max_steps or "task default"}
    (out / "results.json").write_text(json.dumps({"config": config, **result}, indent=1))
    write_eval_report(out / "report.html", result, config)
    print(format_table(result))
    print(json.dumps(summary_line(result, out)), flush=True)
    return 0
