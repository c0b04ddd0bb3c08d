"""Parameters of the sim-robot node (pure data: ``vla up`` validates parameter files against them)."""
from vla_core.params import ParamSpec

PRESETS = ("tabletop", "tabletop_hard", "pusht", "arm")

SIM_ROBOT_PARAMS = (
    ParamSpec("preset", "tabletop", "Environment preset that stands in for the robot", choices=PRESETS,
              read_only=True),
    ParamSpec("env_id", "", "Gymnasium id overriding the preset's (empty: the preset's own)", read_only=True),
    ParamSpec("image_height", 96, "Camera image height", range=(8, 4096), unit="px", read_only=True),
    ParamSpec("image_width", 96, "Camera image width", range=(8, 4096), unit="px", read_only=True),
    ParamSpec("camera_name", "top", "Camera name of a one-camera environment: topics camera/<name>/image_raw and "
              "camera_info (an environment with several cameras publishes each under its own name)", read_only=True),
    ParamSpec("camera_frame_id", "camera_top_optical_frame", "frame_id of a one-camera environment's images (REP 103 "
              "optical frame; several cameras: camera_<name>_optical_frame)", read_only=True),
    ParamSpec("real_time_factor", 1.0, "Simulated seconds per wall-clock second", range=(0.01, 10000.0)),
    ParamSpec("publish_clock", False, "Publish /clock so that use_sim_time nodes follow the simulation",
              read_only=True),
    ParamSpec("seed", 0, "Seed of the first episode; later episodes take the next seeds (set at run time: the seed "
              "of the next episode)", range=(0, 2**31 - 1)),
    ParamSpec("auto_reset", True, "Start the next episode when one ends (success or time limit)"),
    ParamSpec("instruction_set", "train", "Instruction phrasings to draw from",
              choices=("train", "heldout", "all"), read_only=True),
    ParamSpec("max_episode_steps", 200, "Time limit of an episode", range=(1, 1_000_000), unit="steps",
              read_only=True),
    ParamSpec("command_type", "twist", "Command message: geometry_msgs/Twist (cmd_vel), std_msgs/Float64MultiArray "
              "(cmd) or trajectory_msgs/JointTrajectory (cmd; its first point is the target)",
              choices=("twist", "float64_multiarray", "joint_trajectory"), read_only=True),
    ParamSpec("command_timeout", 0.5, "With no fresh command for this long the robot stops (velocity control) or "
              "holds the positions it has (position control)",
              range=(0.01, 60.0), unit="s (simulated)"),
    ParamSpec("publish_privileged_state", True, "Publish ground truth on sim/state (for scripted experts)"),
    ParamSpec("contract", "", "Robot contract (YAML) that the simulated robot must satisfy; empty: no check",
              read_only=True),
    ParamSpec("diagnostics_period", 1.0, "Period of /diagnostics", range=(0.1, 60.0), unit="s"),
)
