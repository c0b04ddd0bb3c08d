"""The training config: typed dataclasses, from a YAML file and ``--section.key=value`` overrides.

``--policy.type=act --policy.chunk_size=10 --data.paths=data/a,data/b --train.epochs=50`` — every key is
checked against the dataclass (or, under ``policy.`` and ``algorithm.``, the config class of the chosen policy
type or algorithm, found by name in their registries), so a typo raises with the accepted keys. Nothing in a config is evaluated as code.
"""
from __future__ import annotations

import dataclasses
import typing
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from vla_trainer.data import DataConfig

BF16_MODES = ("auto", "on", "off")


@dataclass(frozen=True)
class OptimConfig:
    batch_size: int = 64
    epochs: int = 100
    max_steps: int = 0           # stop after this many optimizer steps (0: epochs decide)
    time_budget_s: float = 0.0   # stop at the end of the step that exceeds this wall time (0: no limit)
    lr: float = 3e-4
    weight_decay: float = 1e-4
    warmup_steps: int = 100
    grad_clip: float = 1.0
    bf16: str = "auto"           # auto: measure a few steps both ways at start and keep the faster
    seed: int = 0
    # torch CPU threads (0: torch's default, one per core). -1: time a step on one thread and on one per core at
    # the start and keep the faster: on a machine whose cores other processes keep busy, threads that wait for
    # each other at every operation can make a step several times slower than one thread.
    threads: int = 0
    init_from: str = ""          # start from these weights: an artifact directory or a run directory (fine-tuning)
    init_encoder: str = ""       # start every camera's image encoder from vla_trainer.pretrain_encoder's weights
    # Memory: each optimizer step sums the gradients of this many batches of batch_size (a larger effective batch
    # in the memory of one).
    grad_accum_steps: int = 1
    # Memory: the image encoders keep no activations for backward; they are recomputed (about a third more
    # compute for the encoders, the same gradients).
    activation_checkpointing: bool = False
    # Frozen / unfrozen schedule: the image encoders (pretrained: train.init_encoder) stay fixed for this many
    # optimizer steps while the rest adapts to them, then train with it.
    freeze_encoder_steps: int = 0
    # Early stopping: stop after this many validations (one per epoch) without a lower validation loss, and export
    # the weights of the best one (kept as best.safetensors in the run directory). 0: off.
    early_stop_patience: int = 0

    def __post_init__(self):
        if self.batch_size < 1 or self.epochs < 1 or self.max_steps < 0 or self.time_budget_s < 0:
            raise ValueError("train.batch_size and train.epochs must be >= 1, train.max_steps and "
                             "train.time_budget_s >= 0")
        if self.threads < -1:
            raise ValueError(f"train.threads {self.threads} must be a thread count, 0 (torch's default) or -1 (measure "
                             "one thread against one per core at the start)")
        if not self.lr > 0:
            raise ValueError(f"train.lr {self.lr} must be positive")
        if self.grad_accum_steps < 1 or self.freeze_encoder_steps < 0 or self.early_stop_patience < 0:
            raise ValueError(f"train.grad_accum_steps {self.grad_accum_steps} must be >= 1, "
                             f"train.freeze_encoder_steps {self.freeze_encoder_steps} and train.early_stop_patience "
                             f"{self.early_stop_patience} >= 0")
        if self.bf16 not in BF16_MODES:
            raise ValueError(f"train.bf16 '{self.bf16}' is not one of {', '.join(BF16_MODES)}")


@dataclass(frozen=True)
class AlgorithmConfig:
    """Options every algorithm has (``bc`` has no others); each algorithm's ``config_class`` in
    ``vla_trainer.algorithms`` adds its own (HGDAggerConfig, IQLConfig), as each policy type does."""

    type: str = "bc"                 # bc | hg_dagger | iql | cql | td3bc

    def __post_init__(self):
        from vla_trainer.algorithms import algorithm_class
        algorithm_class(self.type)  # an unknown type raises, naming the known ones


@dataclass(frozen=True)
class OutputConfig:
    name: str = "policy"
    version: str = ""               # "" = UTC time, e.g. 20261121T221500
    models_dir: str = "models"
    run_dir: str = ""               # "" = runs/train/<name>-<version>
    checkpoint_every: int = 10      # epochs
    log: tuple[str, ...] = ("tensorboard", "csv")
    export: bool = True
    tensorrt: str = "auto"          # auto: build an engine when tensorrt and a GPU are present; on; off
    fp16: bool = False              # TensorRT engine precision
    execution: str = ""             # temporal_ensemble | receding_horizon; "" = the policy type's own
    receding_steps: int = 0         # receding_horizon: steps executed per chunk (0: the policy type's own)
    ensemble_coeff: float = 0.01

    def __post_init__(self):
        object.__setattr__(self, "log", tuple(self.log))
        unknown = set(self.log) - {"tensorboard", "csv"}
        if unknown:
            raise ValueError(f"output.log {sorted(unknown)}: choose from tensorboard, csv")
        if self.execution not in ("", "temporal_ensemble", "receding_horizon"):
            raise ValueError(f"output.execution '{self.execution}' is not temporal_ensemble or receding_horizon")
        if self.tensorrt not in ("auto", "on", "off"):
            raise ValueError(f"output.tensorrt '{self.tensorrt}' is not one of auto, on, off")


@dataclass(frozen=True)
class EvalConfig:
    episodes: int = 0               # simulated evaluation episodes per instruction set after training (0: none)
    env: str = "tabletop"           # a vla_sim.backends preset
    seed_start: int = 100_000       # evaluation seeds start here: never the seeds demonstrations are recorded on
    instruction_sets: tuple[str, ...] = ("train", "heldout")
    contract: str = "params/robots/tabletop_sim.yaml"

    def __post_init__(self):
        object.__setattr__(self, "instruction_sets", tuple(self.instruction_sets))


@dataclass(frozen=True)
class TrainConfig:
    policy: dict = field(default_factory=lambda: {"type": "act"})
    data: DataConfig = field(default_factory=DataConfig)
    train: OptimConfig = field(default_factory=OptimConfig)
    algorithm: AlgorithmConfig = field(default_factory=AlgorithmConfig)
    output: OutputConfig = field(default_factory=OutputConfig)
    eval: EvalConfig = field(default_factory=EvalConfig)
    resume: str = ""                # a run directory to continue from its last checkpoint

    def to_dict(self) -> dict:
        return dataclasses.asdict(self)


SECTIONS = {"data": DataConfig, "train": OptimConfig, "output": OutputConfig, "eval": EvalConfig}
#: Sections whose keys depend on their ``type`` (the registered policy or algorithm's config class).
TYPED_SECTIONS = ("policy", "algorithm")


def _convert(value: Any, annotation: Any, key: str) -> Any:
    """A CLI string or YAML value -> the field's type."""
    origin = typing.get_origin(annotation)
    if annotation in (tuple, list) or origin in (tuple, list):
        if isinstance(value, str):
            value = [v for v in value.split(",") if v]
        args = [a for a in typing.get_args(annotation) if a is not Ellipsis]
        inner = args[0] if args else str
        return tuple(_convert(v, inner, key) for v in value)
    if not isinstance(value, str):
        if annotation is float and isinstance(value, int) and not isinstance(value, bool):
            return float(value)
        return value
    if annotation is bool:
        if value.lower() in ("1", "true", "yes", "on"):
            return True
        if value.lower() in ("0", "false", "no", "off"):
            return False
        raise ValueError(f"{key}={value!r} is not a boolean; use true or false")
    if annotation in (int, float):
        try:
            return annotation(value)
        except ValueError:
            raise ValueError(f"{key}={value!r} is not a{'n int' if annotation is int else ' float'}") from None
    return value


def _field_types(cls) -> dict[str, Any]:
    hints = typing.get_type_hints(cls)
    return {f.name: hints[f.name] for f in dataclasses.fields(cls)}


def build_config(raw: dict) -> TrainConfig:
    """A TrainConfig from nested plain data; unknown sections or keys raise naming the accepted ones."""
    from vla_trainer.algorithms import algorithm_class
    from vla_trainer.policies import policy_class
    raw = dict(raw or {})
    raw.pop(LEFT_OUT, None)
    known = set(SECTIONS) | set(TYPED_SECTIONS) | {"resume"}
    unknown = sorted(set(raw) - known)
    if unknown:
        raise ValueError(f"unknown config section(s) {', '.join(unknown)}; sections: {', '.join(sorted(known))}")
    kwargs: dict[str, Any] = {}
    for section, cls in SECTIONS.items():
        values = dict(raw.get(section) or {})
        types = _field_types(cls)
        bad = sorted(set(values) - set(types))
        if bad:
            raise ValueError(f"unknown key(s) {', '.join(f'{section}.{b}' for b in bad)}; "
                             f"{section} accepts {', '.join(sorted(types))}")
        kwargs[section] = cls(**{k: _convert(v, types[k], f"{section}.{k}") for k, v in values.items()})
    policy = dict(raw.get("policy") or {})
    ptype = policy.pop("type", "act")
    types = _field_types(policy_class(ptype).config_class)
    settable = set(types) - STATISTICS_AND_SHAPES
    bad = sorted(set(policy) - settable)
    if bad:
        raise ValueError(f"unknown key(s) {', '.join(f'policy.{b}' for b in bad)} for policy type '{ptype}'; "
                         f"it accepts {', '.join(sorted(settable | {'type'}))}")
    kwargs["policy"] = {"type": ptype, **{k: _convert(v, types[k], f"policy.{k}") for k, v in policy.items()}}
    algorithm = dict(raw.get("algorithm") or {})
    atype = str(algorithm.pop("type", "bc"))
    config_class = algorithm_class(atype).config_class
    types = _field_types(config_class)
    bad = sorted(set(algorithm) - set(types))
    if bad:
        raise ValueError(f"unknown key(s) {', '.join(f'algorithm.{b}' for b in bad)} for algorithm '{atype}'; "
                         f"it accepts {', '.join(sorted(types))}")
    kwargs["algorithm"] = config_class(type=atype, **{k: _convert(v, types[k], f"algorithm.{k}")
                                                      for k, v in algorithm.items()})
    kwargs["resume"] = str(raw.get("resume") or "")
    return TrainConfig(**kwargs)


#: Set from the data, never by hand.
STATISTICS_AND_SHAPES = {"cameras", "image_size", "state_dim", "language_dim", "action_dim", "state_mean",
                         "state_std", "action_mean", "action_std", "action_reference"}


def parse_overrides(args: list[str]) -> dict:
    """``--a.b=v`` / ``--a.b v`` / ``--config FILE`` -> nested dict (the file first, flags on top)."""
    raw: dict = {}
    flat: list[tuple[str, str]] = []
    i = 0
    while i < len(args):
        arg = args[i]
        if not arg.startswith("--"):
            raise ValueError(f"unexpected argument {arg!r}; options look like --policy.type=act")
        key, eq, value = arg[2:].partition("=")
        if not eq:
            if i + 1 >= len(args) or args[i + 1].startswith("--"):
                raise ValueError(f"--{key} needs a value (--{key}=VALUE)")
            value, i = args[i + 1], i + 1
        flat.append((key, value))
        i += 1
    for key, value in flat:
        if key == "config":
            path = Path(value)
            if not path.is_file():
                raise ValueError(f"--config {value}: no such file")
            loaded = yaml.safe_load(path.read_text()) or {}
            if not isinstance(loaded, dict):
                raise ValueError(f"--config {value}: the file must hold a mapping of sections")
            for section, values in loaded.items():
                if isinstance(values, dict):
                    raw.setdefault(section, {}).update(values)
                else:
                    raw[section] = values
    file_types = {section: (raw.get(section) or {}).get("type") for section in TYPED_SECTIONS}
    flagged: dict[str, set[str]] = {}
    for key, value in flat:
        if key == "config":
            continue
        if key == "resume":
            raw["resume"] = value
            continue
        section, dot, name = key.partition(".")
        if not dot or not name:
            raise ValueError(f"--{key}: options are --section.key=value (sections: "
                             f"{', '.join(sorted(set(SECTIONS) | set(TYPED_SECTIONS)))}), --config FILE or --resume "
                             "RUN_DIR")
        raw.setdefault(section, {})[name] = value
        flagged.setdefault(section, set()).add(name)
    _leave_out_options_of_replaced_types(raw, file_types, flagged)
    return raw


#: Where :func:`parse_overrides` lists the config file's options it left out (see
#: :func:`_leave_out_options_of_replaced_types`), for the command line to say; :func:`build_config` ignores it.
LEFT_OUT = "_left_out"


def _leave_out_options_of_replaced_types(raw: dict, file_types: dict, flagged: dict[str, set[str]]) -> None:
    """A flag that changes a config file's ``policy.type`` (or ``algorithm.type``) keeps the file's options the new
    type has and leaves out the ones it has not (a recipe's ``policy.dropout`` for ACT under
    ``--policy.type=mlp``), listing them under :data:`LEFT_OUT`. Options given as flags are never left out: a
    wrong one still fails, naming what the type accepts."""
    from vla_trainer.algorithms import algorithm_class
    from vla_trainer.policies import policy_class
    for section, lookup in (("policy", policy_class), ("algorithm", algorithm_class)):
        values, old = raw.get(section) or {}, file_types.get(section)
        new = values.get("type")
        if old is None or new is None or str(new) == str(old):
            continue
        try:
            accepted = set(_field_types(lookup(str(new)).config_class))
        except (KeyError, ValueError):
            continue  # an unknown type: build_config names it
        for key in sorted(set(values) - accepted - {"type"} - flagged.get(section, set())):
            values.pop(key)
            raw.setdefault(LEFT_OUT, []).append(
                f"{section}.{key} (set by the config file for {section}.type={old}; {new} has no such option)")
