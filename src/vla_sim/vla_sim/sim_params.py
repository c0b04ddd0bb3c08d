"""Parameters of the sim-robot node (pure data: ``vla up`` validates parameter files against them)."""
from vla_core.params import ParamSpec
from vla_sim.randomization import INTEGER_FIELDS, LIMITS, PARAM_PREFIX, RandomizationRanges, UNITS

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
    ParamSpec("lockstep", False, "Step only once a command has arrived since the last frame was published (the "
              "answer to it), or after lockstep_timeout: a slow or busy graph then costs speed, never a step of lag "
              "between an observation and the command that answers it; real_time_factor is the top speed"),
    ParamSpec("lockstep_timeout", 0.5, "In lockstep, step without a new command after this long (counted in "
              "/diagnostics as lockstep_timeouts; the command in force applies, or the stop once it is stale)",
              range=(0.001, 60.0), unit="s (wall clock)"),
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

# Domain randomisation (tabletop and arm presets; docs/randomization.md): one range per field of
# vla_sim.randomization.RandomizationRanges, and a scale over them all. All 0 by default (off); every one is
# honoured at run time from the next episode on.
_RANDOMIZATION_DOCS = {
    "brightness": "Image brightness factor drawn in [1 - this, 1 + this]",
    "colour_temperature": "White point drawn in 6500 K +- this",
    "shade": "Fraction of each colour name's hue band that block and zone shades may use",
    "table_texture": "Strength of the table's tint and grain (0..1)",
    "distractors": "Most flat distractor rings per episode (colours no instruction names)",
    "camera_shift": "Camera translation jitter per axis",
    "camera_rotation": "Camera rotation jitter about its optical axis",
    "camera_zoom": "Camera zoom drawn in [1 - this, 1 + this]",
    "friction_slide": "Low friction: most distance a block released at top speed slides on (0: blocks stop when "
                      "no longer pushed)",
    "mass": "Block mass ratio drawn in [1 - this, 1 + this]; a heavier block slows the pusher",
    "latency": "Most control steps between a command and its effect, drawn per episode",
}
RANDOMIZATION_PARAMS = tuple(
    ParamSpec(PARAM_PREFIX + name, int(default) if name in INTEGER_FIELDS else float(default),
              _RANDOMIZATION_DOCS[name] + "; from the next episode", range=LIMITS[name],
              unit=UNITS[name].strip())
    for name, default in RandomizationRanges().to_dict().items()
) + (ParamSpec(PARAM_PREFIX + "scale", 1.0, "Scale (0..1) over every randomization range, e.g. set by a "
               "curriculum; from the next episode", range=(0.0, 1.0)),)
SIM_ROBOT_PARAMS = SIM_ROBOT_PARAMS + RANDOMIZATION_PARAMS
