"""Does a simulated robot satisfy a robot contract? Every mismatch is listed, with the fix."""
from __future__ import annotations

from vla_core.contract import RobotContract


def contract_mismatches(contract: RobotContract, *, fps: float, image_shape: tuple[int, ...],
                        camera_name: str, joint_names: tuple[str, ...], action_dim: int) -> list[str]:
    problems = []
    if abs(contract.fps - fps) > 1e-6:
        problems.append(f"fps: the environment steps at {fps:g} Hz, the contract says {contract.fps:g} Hz")
    cams = {c.name: c for c in contract.cameras}
    cam = cams.get(camera_name)
    if cam is None:
        problems.append(f"camera '{camera_name}' is not in the contract (it has: {', '.join(cams) or 'none'}); "
                        f"set camera_name to one of them")
    elif (cam.height, cam.width) != tuple(image_shape[:2]):
        problems.append(f"camera '{camera_name}': the environment renders {image_shape[0]}x{image_shape[1]}, "
                        f"the contract says {cam.height}x{cam.width}; set image_height/image_width to match")
    if tuple(contract.state.joints) != tuple(joint_names):
        problems.append(f"joints: the environment has {list(joint_names)}, the contract {list(contract.state.joints)}")
    if contract.action.dim != action_dim:
        problems.append(f"action: the environment takes {action_dim} values, the contract declares "
                        f"{contract.action.dim} ({', '.join(contract.action.fields)})")
    return problems
