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
