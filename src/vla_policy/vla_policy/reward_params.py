"""Parameters of the reward node (pure data: ``vla up`` validates parameter files against them)."""
from vla_core.params import ParamSpec

REWARD_PARAMS = (
    ParamSpec("model", "", "Reward artifact to serve: its directory, or NAME/VERSION under models_dir (a success "
              "classifier exported by vla_trainer.rl.reward)", read_only=True),
    ParamSpec("models_dir", "models", "The registry NAME/VERSION is looked up in", read_only=True),
    ParamSpec("contract", "params/robots/tabletop_sim.yaml", "Robot contract the reward model must fit",
              read_only=True),
    ParamSpec("image_prefix", "observation/images", "Topic prefix of the perception node's model-ready images",
              read_only=True),
    ParamSpec("max_observation_age", 0.5, "An input older than this is stale: that frame is not judged",
              range=(0.01, 10.0), unit="s"),
    ParamSpec("success_frames", 3, "Judged frames in a row at or above the threshold that make a success",
              range=(1, 100)),
    ParamSpec("publish_success", True, "Publish SUCCESS on episode/events when an episode succeeds (a real robot "
              "without another success signal); false where a simulator already says it: the node then only "
              "publishes ~/reward"),
    ParamSpec("diagnostics_period", 1.0, "Period of /diagnostics", range=(0.1, 60.0), unit="s"),
)
