"""Parameters of the lifecycle manager (pure data)."""
from vla_core.params import ParamSpec

MANAGER_PARAMS = (
    ParamSpec("node_names", [""], "Managed nodes in bring-up order (fully qualified or relative names)",
              read_only=True),
    ParamSpec("command_gates", ["safety_shield"],
              "Managed nodes every robot command passes through (the safety shield): every stop, pause, safe stop "
              "and shutdown deactivates them first. Names not in node_names are ignored", read_only=True),
    ParamSpec("autostart", True, "Configure and activate every node at start-up"),
    ParamSpec("heartbeat_timeout", 2.0, "A node with no heartbeat for this long is lost", range=(0.05, 60.0),
              unit="s"),
    ParamSpec("transition_timeout", 30.0, "Longest wait for one lifecycle transition", range=(0.1, 600.0),
              unit="s"),
    ParamSpec("service_wait_timeout", 60.0, "Longest wait for a node's lifecycle services at start-up",
              range=(0.1, 600.0), unit="s"),
    ParamSpec("graph_check_period", 2.0, "Period of the check for a second node with a managed node's name, or a "
              "second publisher on a heartbeat topic", range=(0.1, 60.0), unit="s"),
    ParamSpec("diagnostics_period", 1.0, "Period of /diagnostics", range=(0.1, 60.0), unit="s"),
)
