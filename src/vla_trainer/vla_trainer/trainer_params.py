"""Parameters of the trainer node (pure data: ``vla up`` validates parameter files against them)."""
from vla_core.params import ParamSpec

TRAINER_PARAMS = (
    ParamSpec("models_dir", "models", "Artifacts are written under this directory (models/<name>/<version>/)",
              read_only=True),
    ParamSpec("default_policy_type", "act", "Policy type when a goal gives none", choices=("act", "diffusion", "mlp"),
              read_only=True),
    ParamSpec("default_overrides", [""],
              "Overrides applied before each goal's own (key=value, e.g. train.epochs=50); empty entries ignored",
              read_only=True),
    ParamSpec("policy_node", "policy", "Node whose ~/load_policy service a deploy goal calls", read_only=True),
    ParamSpec("deploy_timeout", 60.0, "Wait this long for ~/load_policy to answer", range=(1.0, 600.0),
              unit="s (wall)"),
    ParamSpec("nproc_per_node", 1, "Training processes (torchrun, DDP); 1 runs one plain process",
              range=(1, 64), read_only=True),
    ParamSpec("memory_limit_mb", 0, "Address-space limit of the training process; 0: none",
              range=(0, 1_048_576), unit="MiB"),
    ParamSpec("cancel_grace", 10.0, "On cancel, SIGINT then SIGKILL after this long", range=(0.1, 600.0),
              unit="s (wall)"),
    ParamSpec("torch_threads", 0, "CPU threads of the training process (train.threads); 0: torch's default",
              range=(0, 256)),
    ParamSpec("diagnostics_period", 1.0, "Period of the node's /diagnostics status", range=(0.1, 60.0),
              unit="s (wall)"),
)
