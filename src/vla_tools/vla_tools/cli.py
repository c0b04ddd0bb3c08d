"""`vla`: the workspace's command.

  vla up PROFILE            bring a profile up (each node its own process, or --single-process)
  vla profiles              list the profiles
  vla demo                  the whole loop on the simulated robot: record, train, hot-swap, evaluate
  vla bench NAME            run a benchmark (last line: one JSON object)
  vla bench all             run every benchmark, each in its own process, and write reports/bench-*.{json,md}
  vla teleop                drive the robot from this terminal (keyboard) or a joystick
"""
from __future__ import annotations

import argparse
import signal
import sys
import threading
from importlib.metadata import entry_points
from pathlib import Path

from vla_core.errors import ConfigError
from vla_core.process import configure_process


def _say(msg: str) -> None:
    print(f"\033[1m[vla]\033[0m {msg}", flush=True)


def _load(args) -> "Profile":  # noqa: F821
    from vla_bringup.bringup import spec_lookup
    from vla_bringup.profile import load_profile, parse_overrides
    return load_profile(args.profile, Path(args.params_dir) if args.params_dir else None,
                        parse_overrides(args.set or []), spec_lookup)


def cmd_up(args) -> int:
    from vla_bringup.bringup import Bringup, BringupError
    profile = _load(args)
    if args.check:
        _say(f"profile {profile.name} is valid: " + ", ".join(e.name for e in profile.entries()))
        return 0
    bringup = Bringup(profile, single_process=args.single_process, echo=not args.quiet, say=_say,
                      discovery_wait=args.discovery_wait)
    stop = threading.Event()
    for sig in (signal.SIGINT, signal.SIGTERM):
        signal.signal(sig, lambda *_: stop.set())
    _say(f"bringing up profile '{profile.name}': {', '.join(n.name for n in profile.nodes)} "
         f"(logs: {bringup.log_dir})")
    failure = None
    try:
        took = bringup.start(timeout=args.timeout)
        _say(f"all {len(profile.nodes)} nodes active in {took:.2f} s" +
             ("" if args.duration else "; Ctrl-C to stop"))
        failure = bringup.supervise(stop, duration=args.duration)
    except BringupError as exc:
        failure = str(exc)
    finally:
        # After a failure nothing waits on the manager: the command gates go down first, then the rest.
        if bringup.spawned:
            _say("shutting down" + (" after a failure" if failure else ""))
        bringup.shutdown(orderly=failure is None)
    if failure:
        _say(f"error: {failure}")
        return 1
    _say("stopped cleanly")
    return 0


def cmd_profiles(args) -> int:
    from vla_bringup.profile import available_profiles, default_params_dir
    import yaml
    params_dir = Path(args.params_dir) if args.params_dir else default_params_dir()
    for name in available_profiles(params_dir):
        data = yaml.safe_load((params_dir / "profiles" / f"{name}.yaml").read_text()) or {}
        print(f"{name:16s} {data.get('description', '')}")
    return 0


def cmd_demo(args) -> int:
    if args.expert_only:
        from vla_tools.demo import run_demo
        return run_demo(args, say=_say)
    from vla_tools.loop import run_loop
    return run_loop(args, say=_say)


ALL_BENCHES = "all"


def cmd_bench(args) -> int:
    from vla_tools.bench import benches, run_bench
    if args.name == ALL_BENCHES:
        from vla_tools.bench_all import run_from_args
        return run_from_args(args, sorted(benches()), say=_say)
    if args.name not in benches():
        print(f"unknown benchmark '{args.name}'; available: {', '.join(sorted(benches()))}, {ALL_BENCHES}",
              file=sys.stderr)
        return 2
    return run_bench(args.name, args, say=_say)


def cmd_teleop(args) -> int:
    from vla_tools.teleop_cli import run_teleop
    return run_teleop(args, say=_say)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="vla", description="The VLA workspace: bring-up, demo, benchmarks.")
    parser.add_argument("--params-dir", help="parameters directory (default: $VLA_WS/params)")
    sub = parser.add_subparsers(dest="command", required=True)

    up = sub.add_parser("up", help="bring a profile up and supervise it")
    up.add_argument("profile", help="profile name (params/profiles/NAME.yaml) or a path to one")
    up.add_argument("--set", action="append", metavar="NODE.PARAM=VALUE", help="override a parameter (repeatable)")
    up.add_argument("--single-process", action="store_true", help="run every node in this process")
    up.add_argument("--duration", type=float, help="stop after this many seconds")
    up.add_argument("--timeout", type=float, default=90.0, help="seconds to wait for all nodes to be active")
    up.add_argument("--quiet", action="store_true", help="keep node output in the log files only")
    up.add_argument("--check", action="store_true", help="validate the profile and its parameters, start nothing")
    up.add_argument("--discovery-wait", type=float, default=3.5, metavar="S",
                    help="seconds to look for another graph with the same node names on this ROS domain before "
                         "starting anything (default 3.5: one periodic DDS announcement)")
    up.set_defaults(func=cmd_up)

    sub.add_parser("profiles", help="list the profiles").set_defaults(func=cmd_profiles)

    demo = sub.add_parser("demo", help="the whole loop on the simulated robot: record, train, hot-swap, evaluate",
                          description="Record demonstrations through the ROS graph, train through the trainer's "
                                      "action, hot-swap the result into the running policy node, evaluate it on "
                                      "unseen seeds and phrasings, and write a report (runs/demo/<time>/).")
    demo.add_argument("--demos", type=int, default=200, help="demonstrations to record (default 200)")
    demo.add_argument("--eval-episodes", type=int, default=100,
                      help="evaluation episodes per round (default 100: a 96%% rate then has an interval from 90%%)")
    demo.add_argument("--rounds", type=int, default=0,
                      help="continual rounds after the first: policy drives, corrector intervenes, retrain (default 0)")
    demo.add_argument("--corrector", default="on_error", choices=("on_error", "on_help", "on_error_or_help"),
                      help="when the scripted operator takes over in a continual round: on_error when the policy "
                           "stalls, on_help when it asks for help (needs --train-set policy.ensemble_heads=5 and "
                           "--set policy.help_threshold=T), or either (default on_error)")
    demo.add_argument("--round-episodes", type=int, default=50,
                      help="policy-driven episodes recorded per continual round (default 50)")
    demo.add_argument("--demo-noise", type=float, default=None, metavar="M_PER_S",
                      help="noise (m/s per axis) on the scripted operator's demonstration commands, so that they show "
                           "recoveries (DART); 0 for clean demonstrations (default vla_sim.demos.DEMO_NOISE, 0.08)")
    demo.add_argument("--preset", default="tabletop", help="sim task: tabletop, tabletop_hard or arm (default tabletop)")
    demo.add_argument("--policy", default="act", help="policy type (default act)")
    demo.add_argument("--steps", type=int, default=0,
                      help="optimisation steps of the first policy (default: the recipe's train.max_steps)")
    demo.add_argument("--round-steps", type=int, default=0,
                      help="fine-tuning steps per continual round (default: a third of --steps)")
    demo.add_argument("--train-minutes", type=float, default=30.0,
                      help="safety cap on training time; the run says so if it cuts training short (default 30)")
    demo.add_argument("--round-train-minutes", type=float, default=10.0,
                      help="safety cap on fine-tuning time per continual round (default 10)")
    demo.add_argument("--epochs", type=int, default=100000, help="epoch limit (the step count usually ends first)")
    demo.add_argument("--eval-phrasings", default="heldout", choices=("train", "heldout", "all"),
                      help="instruction phrasings of the evaluation (default heldout: never trained on)")
    demo.add_argument("--out", help="run directory (default runs/demo/<UTC time>)")
    demo.add_argument("--real-time-factor", type=float, default=10.0,
                      help="simulated seconds per second: the top speed (in lockstep the graph may hold it lower)")
    demo.add_argument("--lockstep", action=argparse.BooleanOptionalAction, default=True,
                      help="the simulator steps once the command answering its last frame has arrived, so a busy "
                           "machine costs speed, not a step of lag (default on; sim_robot.lockstep)")
    demo.add_argument("--seed", type=int, default=0, help="seed of the first demonstration")
    demo.add_argument("--ready-timeout", type=float, default=60.0,
                      help="seconds the graph may take to deliver the first camera and joint states (default 60)")
    demo.add_argument("--set", action="append", metavar="NODE.PARAM=VALUE", help="override a parameter")
    demo.add_argument("--train-config", default="params/train/tabletop_act.yaml",
                      help="training recipe (a vla-train --config file; default params/train/tabletop_act.yaml)")
    demo.add_argument("--train-set", action="append", metavar="KEY=VALUE",
                      help="training override, as vla-train takes them (e.g. policy.chunk_size=8)")
    demo.add_argument("--expert-only", action="store_true",
                      help="only let the scripted expert drive --episodes episodes through the sim profile")
    demo.add_argument("--episodes", type=int, default=20, help="--expert-only: episodes to run (default 20)")
    demo.add_argument("--profile", default="sim", help="--expert-only: profile to bring up (default sim)")
    demo.add_argument("--timeout", type=float, default=900.0, help="--expert-only: give up after this long")
    demo.set_defaults(func=cmd_demo)

    bench = sub.add_parser("bench", help="run a benchmark; its last line is one JSON object")
    bench.add_argument("name", help=f"benchmark name, e.g. sim; '{ALL_BENCHES}' runs every benchmark, each in its "
                       "own process, and writes reports/bench-<UTC time>.json and .md")
    bench.add_argument("--quick", action="store_true", help="fewer iterations (for smoke tests)")
    bench.add_argument("--timeout", type=float, default=900.0, help="with all: seconds each bench may take (900)")
    bench.add_argument("--only", metavar="A,B", help="with all: run only these benches")
    bench.add_argument("--skip", metavar="A,B", help="with all: leave these benches out")
    bench.add_argument("--variant", action="append", metavar="NAME:KEY=VALUE,...",
                       help="with train: compare recipe variants side by side (NAME: is the recipe as it is)")
    bench.add_argument("--lerobot-python", metavar="PY",
                       help="with train: compare with LeRobot's own ACT loop, run by this Python (a venv with "
                            "lerobot[dataset]), on the same data")
    for flag, kind, text in (("--seeds", int, "scripted expert seeds (200)"),
                             ("--demos", int, "scripted demonstrations to train on (200)"),
                             ("--steps", int, "training steps (2000)"),
                             ("--episodes", int, "evaluation episodes per phrasing set (100)"),
                             ("--policy", str, "policy type: act, mlp or diffusion (act)"),
                             ("--noise", float, "DART noise on the demonstrations, rad per joint (0.02)")):
        bench.add_argument(flag, type=kind, help=f"with arm: {text}")
    bench.set_defaults(func=cmd_bench)

    teleop = sub.add_parser("teleop", help="drive the robot from this terminal (keyboard) or a joystick")
    from vla_teleop.teleop_params import DEVICE_NAMES  # the registered devices, arm ones included (pure data)
    teleop.add_argument("--device", default="keyboard", choices=list(DEVICE_NAMES))
    teleop.add_argument("--topic", default="teleop/cmd_vel", help="where to publish (default teleop/cmd_vel)")
    teleop.add_argument("--set", action="append", metavar="PARAM=VALUE", help="teleop parameter override")
    teleop.set_defaults(func=cmd_teleop)

    from vla_recorder.dataset_cli import register as register_dataset  # vla dataset check/import/repack/from-bag
    register_dataset(sub)

    # The other verbs come through 'vla.commands' entry points (this package's setup.py): register(subparsers)
    # adds a parser and sets its func(args) -> exit code.
    for ep in sorted(entry_points(group="vla.commands"), key=lambda e: e.name):
        ep.load()(sub)
    return parser


def main(argv: list[str] | None = None) -> int:
    configure_process()
    args = build_parser().parse_args(argv)
    try:
        return args.func(args)
    except ConfigError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
