"""Parameters of the teleop node (pure data)."""
from vla_core.params import ParamSpec

TELEOP_PARAMS = (
    ParamSpec("device", "expert", "Input device; corrector: the scripted expert takes over only when the policy "
              "stops making progress", choices=("expert", "keyboard", "joy", "corrector"), read_only=True),
    ParamSpec("rate", 10.0, "Command rate (the robot contract's fps)", range=(1.0, 1000.0), unit="Hz",
              read_only=True),
    ParamSpec("max_speed", 0.25, "Largest commanded speed per axis", range=(0.0, 10.0), unit="m/s"),
    ParamSpec("expert_noise", 0.0, "Expert and corrector devices: standard deviation of the Gaussian noise added "
              "to each scripted command per axis (DART demonstrations: they show recoveries from small errors); "
              "0 for none", range=(0.0, 1.0), unit="m/s"),
    ParamSpec("keyboard_speed", 0.1, "Speed of a keyboard key press", range=(0.0, 10.0), unit="m/s"),
    ParamSpec("keyboard_hold_time", 0.6, "A key press commands for this long (bridges key repeat)",
              range=(0.05, 5.0), unit="s"),
    ParamSpec("joy_axis_x", 1, "Joy axis for forward (+x) motion", range=(0, 63)),
    ParamSpec("joy_axis_y", 0, "Joy axis for leftward (+y) motion", range=(0, 63)),
    ParamSpec("joy_deadman_button", 4, "Joy button that must be held to command; -1 for none", range=(-1, 63)),
    ParamSpec("input_timeout", 0.5, "Input (sim state, Joy) older than this is ignored", range=(0.01, 10.0),
              unit="s"),
    ParamSpec("corrector_mode", "on_error", "Corrector: on_error takes over when the policy stalls; always drives "
              "every step (demonstrations); off only watches (the policy alone)", choices=("on_error", "always", "off")),
    ParamSpec("corrector_patience", 5.0, "Corrector: take over when the target block has come no closer to its "
              "zone by corrector_min_progress for this long (sim time); keep it above the approach to the block "
              "(the scripted expert's took up to 4.9 s on the hard task)",
              range=(0.1, 60.0), unit="s"),
    ParamSpec("corrector_takeover", 2.0, "Corrector: drive with the scripted expert for this long, then hand back",
              range=(0.1, 60.0), unit="s"),
    ParamSpec("corrector_min_progress", 0.01, "Corrector: the least decrease of the target block's distance to "
              "its zone centre that counts as progress", range=(0.001, 0.5), unit="m"),
    ParamSpec("diagnostics_period", 1.0, "Period of /diagnostics (commands sent, inputs rejected and why)",
              range=(0.1, 60.0), unit="s"),
    ParamSpec("corrector_max_takeovers", 0, "Corrector: most takeovers per episode; 0 for no limit",
              range=(0, 1000)),
)
