"""Does a simulated robot satisfy a robot contract? Every mismatch is listed, with the fix."""
from __future__ import annotations

from vla_core.codecs import FLOAT64_ARRAY, JOINT_TRAJECTORY, TWIST
from vla_core.contract import RobotContract

# The sim robot's command_type parameter -> the message type it takes.
COMMAND_MESSAGES = {"twist": TWIST, "float64_multiarray": FLOAT64_ARRAY, "joint_trajectory": JOINT_TRAJECTORY}


def contract_mismatches(contract: RobotContract, *, fps: float, cameras: dict[str, tuple[int, ...]],
                        joint_names: tuple[str, ...], action_dim: int, command_type: str | None = None,
                        action_names: tuple[str, ...] | None = None) -> list[str]:
    """Every way the simulated robot differs from ``contract``: its rate, ``cameras`` (name -> image shape),
    joints, action dimension, the command message it takes (``command_type``, a sim robot parameter) and, for
    a position-controlled robot, the joints its commands address (``action_names``)."""
    problems = []
    if abs(contract.fps - fps) > 1e-6:
        problems.append(f"fps: the environment steps at {fps:g} Hz, the contract says {contract.fps:g} Hz")
    cams = {c.name: c for c in contract.cameras}
    for name, shape in cameras.items():
        cam = cams.get(name)
        if cam is None:
            problems.append(f"camera '{name}' is not in the contract (it has: {', '.join(cams) or 'none'}); "
                            f"set camera_name to one of them, or add it to the contract")
        elif (cam.height, cam.width) != tuple(shape[:2]):
            problems.append(f"camera '{name}': the environment renders {shape[0]}x{shape[1]}, "
                            f"the contract says {cam.height}x{cam.width}; set image_height/image_width to match")
    absent = [c for c in cams if c not in cameras]
    if absent:
        problems.append(f"cameras {absent} of the contract are not published by this simulated robot (it has "
                        f"{list(cameras)})")
    if tuple(contract.state.joints) != tuple(joint_names):
        problems.append(f"joints: the environment has {list(joint_names)}, the contract {list(contract.state.joints)}")
    if contract.action.dim != action_dim:
        problems.append(f"action: the environment takes {action_dim} values, the contract declares "
                        f"{contract.action.dim} ({', '.join(contract.action.fields)})")
    elif action_names is not None and tuple(contract.action.names) != tuple(action_names):
        problems.append(f"action names: the environment's commands address {list(action_names)}, the contract "
                        f"names {list(contract.action.names)}")
    if contract.action.mode != "absolute":
        problems.append(f"action.mode {contract.action.mode}: this simulated robot takes absolute targets; set "
                        "mode absolute in the contract")
    taken = COMMAND_MESSAGES.get(command_type or "")
    if taken is not None and contract.action.type != taken:
        problems.append(f"command: the contract's action is {contract.action.type}, but this robot takes {taken} "
                        f"(command_type {command_type}); set command_type to "
                        f"{next((k for k, v in COMMAND_MESSAGES.items() if v == contract.action.type), 'another')}")
    return problems
