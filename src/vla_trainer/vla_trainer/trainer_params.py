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
    ParamSpec("retrain_every", 0, "Start a run on its own after this many episodes were saved in retrain_datasets "
              "since the last run (the continual loop: every K episodes); 0: only on request (~/train_policy)",
              range=(0, 1_000_000), unit="episodes"),
    ParamSpec("retrain_datasets", [""], "Datasets a run started by retrain_every trains on and whose new episodes it "
              "counts (e.g. the recorder's root); empty entries ignored", read_only=True),
    ParamSpec("retrain_overrides", ["algorithm.type=hg_dagger"],
              "Overrides of a run started by retrain_every, after default_overrides (key=value); empty entries "
              "ignored", read_only=True),
    ParamSpec("retrain_from_last", True, "A run started by retrain_every fine-tunes the artifact of the trainer's "
              "last successful run (train.init_from) when there is one"),
    ParamSpec("retrain_deploy", True, "A run started by retrain_every deploys its artifact to policy_node"),
    ParamSpec("retrain_check_period", 2.0, "How often retrain_every counts the datasets' episodes",
              range=(0.1, 3600.0), unit="s (wall)", read_only=True),
    ParamSpec("diagnostics_period", 1.0, "Period of the node's /diagnostics status", range=(0.1, 60.0),
              unit="s (wall)"),
)
