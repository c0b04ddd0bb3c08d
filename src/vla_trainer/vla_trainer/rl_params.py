"""Parameters of the RL learner node (pure data: ``vla up`` validates parameter files against them)."""
from vla_core.params import ParamSpec

RL_LEARNER_PARAMS = (
    ParamSpec("contract", "params/robots/tabletop_sim.yaml", "Robot contract of the graph the learner reads",
              read_only=True),
    ParamSpec("models_dir", "models", "Exported actors go to models_dir/<name>/<version>/", read_only=True),
    ParamSpec("name", "sac_online", "Artifact name of the exported actor; versions count up from the highest there",
              read_only=True),
    ParamSpec("policy_node", "policy", "Node whose ~/load_policy each exported actor is sent to", read_only=True),
    ParamSpec("deploy", True, "Send each exported actor to <policy_node>/load_policy (false: export only)"),
    ParamSpec("deploy_timeout", 30.0, "Wait this long for ~/load_policy to answer", range=(1.0, 600.0),
              unit="s (wall)"),
    ParamSpec("initial_weights", "", "SAC agent weights (safetensors from SACAgent.save) to start from; empty: a "
              "fresh actor and critics", read_only=True),
    ParamSpec("demos", [""], "Recorded datasets whose transitions fill the RLPD demonstration share (with the "
              "operator's takeovers); their instructions are embedded with the bundled text encoder, which must be the "
              "one the graph's language node uses; empty entries ignored", read_only=True),
    ParamSpec("image_prefix", "observation/images", "Topic prefix of the perception node's model-ready images",
              read_only=True),
    ParamSpec("command_topic", "", "What was sent to the robot; empty: the contract's action topic (the shield's "
              "output, the operator's command during a takeover)", read_only=True),
    ParamSpec("intervention_topic", "teleop/intervention", "vla_interfaces/Intervention: who commands",
              read_only=True),
    ParamSpec("episode_events_topic", "episode/events", "vla_interfaces/EpisodeEvent: SUCCESS gives the reward",
              read_only=True),
    ParamSpec("max_observation_age", 0.5, "An input older than this (node clock) breaks the chain of transitions",
              range=(0.01, 10.0), unit="s"),
    ParamSpec("hidden", 256, "Width of the actor's and critics' MLPs", range=(1, 4096), read_only=True),
    ParamSpec("channels", 32, "CNN width per camera (a multiple of 8)", range=(8, 512), read_only=True),
    ParamSpec("image_downsample", 2, "Average-pool images by this factor before the CNN", range=(1, 16),
              read_only=True),
    ParamSpec("batch_size", 64, "SAC batch", range=(1, 4096), read_only=True),
    ParamSpec("demo_fraction", 0.5, "RLPD: share of each batch from demonstrations (operator takeovers), while "
              "there are any", range=(0.0, 1.0), read_only=True),
    ParamSpec("discount", 0.97, "SAC discount per control tick", range=(0.01, 0.9999), read_only=True),
    ParamSpec("capacity", 100000, "Online replay capacity (transitions)", range=(1, 10_000_000), read_only=True),
    ParamSpec("warmup", 64, "Online transitions before the first update", range=(1, 10_000_000), read_only=True),
    ParamSpec("updates_per_step", 1.0, "SAC updates owed per transition received (the CPU may fall behind: owed "
              "updates queue up to max_pending_updates)", range=(0.01, 100.0), read_only=True),
    ParamSpec("max_pending_updates", 1000, "Owed updates beyond this are forgiven (counted)", range=(1, 1_000_000),
              read_only=True),
    ParamSpec("export_every", 50, "Updates between two exported (and deployed) actors", range=(1, 1_000_000),
              read_only=True),
    ParamSpec("export_initial", True, "Export and deploy the starting actor at activation (so the policy node "
              "serves the learner's actor from the first transition)", read_only=True),
    ParamSpec("torch_threads", 1, "torch CPU threads of the learner (the graph shares the CPU)", range=(1, 256),
              read_only=True),
    ParamSpec("seed", 0, "Seed of the networks and of the replay sampling", range=(0, 2**31 - 1), read_only=True),
    ParamSpec("diagnostics_period", 1.0, "Period of /diagnostics", range=(0.1, 60.0), unit="s"),
)
