"""`vla dataset`: check, import and convert datasets.

  vla dataset check PATH                    read every frame of every episode; list every problem
  vla dataset import SRC DST [--repack]     bring a LeRobot v3.0 dataset (any layout) from a local directory
  vla dataset repack SRC DST [--gaps keep]  rewrite one file per episode with exact timestamps (dropped slots filled)
  vla dataset from-bag BAG... --out DST --contract YAML [--instruction TEXT] [--command-topic T] [--success]
"""
from __future__ import annotations

import json
import sys
from pathlib import Path


def _say(msg: str) -> None:
    print(f"\033[1m[vla dataset]\033[0m {msg}", flush=True)


def cmd_check(args) -> int:
    from vla_core.dataset.lerobot_import import check_dataset
    report = check_dataset(args.path)
    print(json.dumps(report.__dict__, indent=2))
    if report.gaps:
        _say(f"{report.gaps} episodes have timestamps off frame_index / fps (dropped frames); LeRobot's default "
             f"decoder needs exact ones: `vla dataset repack {args.path} NEW_DIR`")
    return 0 if report.ok else 1


def cmd_import(args) -> int:
    from vla_core.dataset.lerobot_import import import_dataset
    report = import_dataset(args.src, args.dst, repack=args.repack,
                            progress=lambda i, n: _say(f"checking episode {i + 1}/{n}") if i % 50 == 0 else None)
    _say(f"imported {report.episodes} episodes, {report.frames} frames at {report.fps:g} fps, cameras "
         f"{', '.join(report.cameras)} ({report.episodes_per_data_file:g} episodes per data file) into {args.dst}")
    return 0


def cmd_repack(args) -> int:
    from vla_core.dataset.lerobot_import import repack_dataset
    n = repack_dataset(args.src, args.dst, gaps=args.gaps)
    _say(f"rewrote {n} episodes into {args.dst} (gaps={args.gaps})")
    return 0


def cmd_from_bag(args) -> int:
    from vla_core.contract import RobotContract
    from vla_recorder.bag_to_dataset import INTERVENTION_TOPIC, bags_to_dataset
    contract = RobotContract.from_yaml(args.contract)
    summaries = bags_to_dataset([Path(b) for b in args.bags], Path(args.out), contract, args.instruction,
                                args.command_topic, args.intervention_topic or INTERVENTION_TOPIC,
                                True if args.success else None, gaps=args.gaps)
    for s in summaries:
        _say(f"{s.bag} -> episode {s.episode_index}: {s.frames} frames ({s.dropped} dropped, {s.invalid} invalid, "
             f"{s.late} late, {s.refused_images} images refused), '{s.instruction}'")
    return 0


def run(args) -> int:
    from vla_core.dataset import DatasetError
    from vla_recorder.bag_to_dataset import BagError
    try:
        return args.dataset_func(args)
    except (DatasetError, BagError, FileNotFoundError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2


def register(sub) -> None:
    parser = sub.add_parser("dataset", help="check, import and convert datasets (LeRobot v3.0, MCAP bags)",
                            description=__doc__.split("\n\n", 1)[1], formatter_class=__import__("argparse")
                            .RawDescriptionHelpFormatter)
    verbs = parser.add_subparsers(dest="verb", required=True)
    check = verbs.add_parser("check", help="read every frame of every episode; list every problem")
    check.add_argument("path")
    check.set_defaults(dataset_func=cmd_check)
    imp = verbs.add_parser("import", help="bring a LeRobot v3.0 dataset (any layout) from a local directory")
    imp.add_argument("src")
    imp.add_argument("dst")
    imp.add_argument("--repack", action="store_true",
                     help="rewrite one file per episode with exact timestamps instead of copying as is")
    imp.set_defaults(dataset_func=cmd_import)
    repack = verbs.add_parser("repack", help="rewrite a dataset: one file per episode, exact timestamps")
    repack.add_argument("src")
    repack.add_argument("dst")
    repack.add_argument("--gaps", default="fill", choices=("fill", "keep"),
                        help="fill: a row for every 1/fps slot, dropped ones repeat the previous frame with "
                             "valid=false (default); keep: rows only for recorded frames")
    repack.set_defaults(dataset_func=cmd_repack)
    bag = verbs.add_parser("from-bag", help="convert MCAP bags (or rosbag2 directories of them) into episodes")
    bag.add_argument("bags", nargs="+", help="one episode per bag")
    bag.add_argument("--out", required=True, help="dataset directory (created, or appended to)")
    bag.add_argument("--contract", required=True, help="robot contract YAML (params/robots/NAME.yaml)")
    bag.add_argument("--instruction", help="the episodes' instruction (default: the bag's instruction topic)")
    bag.add_argument("--command-topic", help="topic of the commands sent (default: the contract's action topic)")
    bag.add_argument("--intervention-topic", help="operator intervention flags (default teleop/intervention)")
    bag.add_argument("--success", action="store_true", help="label the episodes successful")
    bag.add_argument("--gaps", default="fill", choices=("fill", "keep"), help="dropped frames (default fill)")
    bag.set_defaults(dataset_func=cmd_from_bag)
    parser.set_defaults(func=run)
