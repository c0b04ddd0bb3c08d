"""Parameters of the recorder node (pure data: ``vla up`` validates parameter files against them)."""
from vla_core.params import ParamSpec

RECORDER_PARAMS = (
    ParamSpec("contract", "params/robots/tabletop_sim.yaml",
              "Robot contract (YAML): the features recorded, their topics, fps and image size", read_only=True),
    ParamSpec("root", "data/recordings/tabletop", "Dataset directory (created; an existing one is appended to)",
              read_only=True),
    ParamSpec("command_topic", "",
              "Command actually sent to the robot (the safety shield's output); empty: the contract's action topic",
              read_only=True),
    ParamSpec("intervention_topic", "teleop/intervention", "Operator intervention flag (vla_interfaces/Intervention)",
              read_only=True),
    ParamSpec("environment_state", "",
              "Also record, as observation.environment_state, where a simulator says the instruction's objects are "
              "(vla_interfaces/SimState task_state on environment_state_topic): the names of its values, comma-"
              "separated, as the sim sends them (e.g. target_block.x,target_block.y,target_zone.x,target_zone.y); a "
              "training target for policy.aux_env_state, never a policy input. Empty: not recorded",
              read_only=True),
    ParamSpec("environment_state_topic", "sim/state", "The simulator's state (vla_interfaces/SimState), read when "
              "environment_state names values", read_only=True),
    ParamSpec("help_topic", "policy/help", "The policy's help request (vla_interfaces/HelpRequest, latched): each "
              "frame's help_requested flag; frames with it and the operator's intervention are requested "
              "interventions (episode help_frames, requested_intervention_frames); empty: not recorded",
              read_only=True),
    ParamSpec("intervention_required", True,
              "An episode starts only once the intervention flag has a publisher (an operator can take over)"),
    ParamSpec("episode_events_topic", "episode/events",
              "Episode boundaries (vla_interfaces/EpisodeEvent) followed when follow_episode_events", read_only=True),
    ParamSpec("follow_episode_events", False,
              "Start each recorded episode at the robot's next episode START and end it at its SUCCESS/TIMEOUT "
              "(ABORTED discards it)"),
    ParamSpec("embedding_topic", "instruction/embedding",
              "Instruction embedding (vla_interfaces/InstructionEmbedding): its encoder_id is kept with each episode",
              read_only=True),
    ParamSpec("encoder_id", "", "Text encoder id kept with each episode until an embedding message names one"),
    ParamSpec("default_time_limit", 60.0, "Episode length when a goal gives none", range=(0.1, 86400.0),
              unit="s (node clock)"),
    ParamSpec("start_timeout", 10.0, "Wait this long for every source at the start of an episode",
              range=(0.1, 600.0), unit="s (wall)"),
    ParamSpec("late_after", 0.0, "A state older than this at its image marks the frame late; 0: half a frame period",
              range=(0.0, 60.0), unit="s", read_only=True),
    ParamSpec("drop_after", 0.0, "A frame whose camera fell silent is dropped this long after its time; "
              "0: 3 frame periods or 2 s, whichever is longer", range=(0.0, 60.0), unit="s",
              read_only=True),
    ParamSpec("command_timeout", 0.5, "A command older than this marks the frame late (the robot had stopped)",
              range=(0.01, 60.0), unit="s", read_only=True),
    ParamSpec("video_codec", "libx264", "Video codec of the camera streams", choices=("libx264", "libsvtav1"),
              read_only=True),
    ParamSpec("video_crf", 23, "Constant rate factor (lower: better quality, larger files)", range=(0, 63),
              read_only=True),
    ParamSpec("video_gop", 10, "Frames between key frames (smaller: faster random access, larger files)",
              range=(1, 600), read_only=True),
    ParamSpec("min_free_mb", 500.0, "Refuse to start, or close the episode cleanly, below this much free disk",
              range=(0.0, 1e7), unit="MB"),
    ParamSpec("mcap", False, "Also write the raw topics of each episode to an MCAP bag under <root>/mcap/",
              read_only=True),
    ParamSpec("max_future_stamp", 5.0, "Images, joint states and episode events stamped further than this ahead of "
              "the node clock are refused and counted (they would anchor an episode in the future); under use_sim_time "
              "keep it above the /clock lag times the real-time factor", range=(0.0, 600.0), unit="s"),
    ParamSpec("diagnostics_period", 1.0, "Period of /diagnostics (recording state, inputs refused per reason)",
              range=(0.1, 60.0), unit="s"),
    ParamSpec("feedback_period", 0.5, "Period of the RecordEpisode feedback", range=(0.05, 10.0), unit="s (wall)"),
)
