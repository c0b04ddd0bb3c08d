"""Parameters of the sim-expert node (pure data: ``vla up`` validates parameter files against them)."""
from vla_core.params import ParamSpec

from vla_sim.sim_params import PRESETS

SIM_EXPERT_PARAMS = (
    ParamSpec("preset", "arm", "Sim backend preset whose scripted expert drives (the sim robot's preset)",
              choices=PRESETS, read_only=True),
    ParamSpec("contract", "", "Robot contract (YAML) whose action type, names and fields the commands follow",
              read_only=True),
    ParamSpec("enabled", True, "Send the expert's commands; false only watches (set it at run time to hand the arm "
              "to a policy or a test)"),
    ParamSpec("mode", "always", "Who drives while enabled: always the expert (demonstrations), or on_error the policy "
              "until it stalls, then the expert for corrector_takeover s (the continual loop's corrector; the task's "
              "progress is vla_sim.corrector.PROGRESS of the preset's expert)", choices=("always", "on_error")),
    ParamSpec("corrector_patience", 3.0, "on_error: take over when the task's distance (the arm: tcp to the target "
              "cube plus the cube to its goal) has come no closer by corrector_min_progress for this long",
              range=(0.1, 600.0), unit="s (simulated)"),
    ParamSpec("corrector_takeover", 3.0, "on_error: drive with the scripted expert for this long, then hand back",
              range=(0.1, 600.0), unit="s (simulated)"),
    ParamSpec("corrector_min_progress", 0.01, "on_error: the least decrease of the task's distance that counts as "
              "progress", range=(1e-4, 1.0), unit="m"),
    ParamSpec("corrector_max_takeovers", 0, "on_error: most takeovers per episode; 0 for no limit", range=(0, 1000)),
    ParamSpec("rate", 10.0, "Command rate (the robot contract's fps)", range=(1.0, 1000.0), unit="Hz",
              read_only=True),
    ParamSpec("expert_noise", 0.0, "Standard deviation of the DART noise added to each scripted command (the "
              "expert's units: rad per joint for the arm)", range=(0.0, 1.0)),
    ParamSpec("input_timeout", 0.5, "sim/state older than this gives no command", range=(0.01, 10.0),
              unit="s (simulated)"),
    ParamSpec("seed", 0, "Seed of the noise", range=(0, 2**31 - 1), read_only=True),
    ParamSpec("diagnostics_period", 1.0, "Period of /diagnostics (commands sent, inputs dropped)", range=(0.1, 60.0),
              unit="s"),
)
