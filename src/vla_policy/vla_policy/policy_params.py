"""Parameters of the policy node (pure data)."""
from vla_core.params import ParamSpec

ENGINES = ["tensorrt", "onnxruntime-trt", "onnxruntime-cuda", "onnxruntime-cpu"]

POLICY_PARAMS = (
    ParamSpec("artifact", "", "Policy to serve at start: a path, NAME or NAME/VERSION under models_dir; empty: none "
              "until ~/load_policy", read_only=True),
    ParamSpec("models_dir", "models", "The policy registry (models/<name>/<version>/)", read_only=True),
    ParamSpec("contract", "params/robots/tabletop_sim.yaml", "Robot contract the policy must fit", read_only=True),
    ParamSpec("engines", list(ENGINES), "Engines in order of preference; the first that runs here is used",
              read_only=True),
    ParamSpec("threads", 1, "onnxruntime intra-op threads (the control loop shares the CPU)", range=(1, 64),
              read_only=True),
    ParamSpec("max_observation_age", 0.5, "An input older than this is stale: no command is proposed",
              range=(0.01, 10.0), unit="s"),
    ParamSpec("input_wait", 0.0, "At a tick, wait up to this long for every image and the joint state to be newer "
              "than those the previous tick used, then act (on what there is when the wait ends; ticks due meanwhile "
              "merge into it and count as missed): with a simulator that publishes one frame per step, each tick "
              "then acts on its own instant's observation, not the step before's. 0: act at once on the newest "
              "inputs (a robot whose sensors run faster than its control loop)", range=(0.0, 1.0), unit="s (wall clock)"),
    ParamSpec("image_prefix", "observation/images", "Topic prefix of the perception node's model-ready images",
              read_only=True),
    ParamSpec("chunk_as_trajectory", False, "With a trajectory_msgs/JointTrajectory contract: send each predicted "
              "action chunk as one trajectory (points at time_from_start dt, 2 dt, ... T dt; dt = 1 / fps) when it is "
              "predicted, instead of one point per tick; false: one point per tick", read_only=True),
    ParamSpec("exploration_std", 0.0, "Exploring actor (online RL): Gaussian noise added to each proposed action, as a "
              "fraction of each dimension's half range (contract action.low/high), clamped to those limits; 0: none. "
              "At most max_exploration_std", range=(0.0, 1.0)),
    ParamSpec("max_exploration_std", 0.3, "Largest exploration_std the node accepts, fixed at start", range=(0.0, 1.0),
              read_only=True),
    ParamSpec("help_threshold", 0.0, "Ask for help (vla_interfaces/HelpRequest on ~/help, latched) when a proposal's "
              "uncertainty exceeds this; the artifact's units (an ensemble's disagreement in action standard "
              "deviations; calibrate it as docs/uncertainty.md says). 0: never ask. Ignored for artifacts without an "
              "uncertainty output", range=(0.0, 1000.0)),
    ParamSpec("help_clear_ratio", 0.8, "A help request clears once the uncertainty falls below help_threshold x this "
              "(hysteresis: a value hovering at the threshold does not toggle the request)", range=(0.05, 1.0)),
    ParamSpec("status_period", 0.5, "Period of ~/status", range=(0.05, 10.0), unit="s"),
    ParamSpec("diagnostics_period", 1.0, "Period of /diagnostics", range=(0.1, 60.0), unit="s"),
)
