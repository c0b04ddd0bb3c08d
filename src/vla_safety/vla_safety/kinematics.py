"""Forward kinematics for the shield's end-effector workspace box (no rclpy).

The robot's kinematic model is a file the robot already has: a URDF or an MJCF, loaded with MuJoCo (which reads
both) only when a workspace box is configured. The end effector is a site or a body of that model; the command's
joints set the model's joints of the same names (joints the model does not have, such as a gripper given as
its opening, do not move the end effector and are skipped). Frames: the model's world frame, which must be the
contract's base_link.
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from vla_safety.limits import Rules, WorkspaceBox


class ForwardKinematics:
    """``position(q)``: the end effector's position (3,) in metres for command joint positions ``q``.

    Raises ValueError (at construction) naming what to fix: a missing or unreadable model, an end effector that is
    neither a site nor a body of it, or no command joint among its joints.
    """

    def __init__(self, model_path: str | Path, link: str, joint_names: tuple[str, ...]):
        path = Path(model_path)
        if not path.is_file():
            raise ValueError(f"workspace_model {path} does not exist; give the robot's URDF or MJCF")
        import mujoco  # only when a workspace box is configured
        try:
            self.model = mujoco.MjModel.from_xml_path(str(path))
        except Exception as exc:  # noqa: BLE001 - mujoco raises ValueError or its own errors for bad files
            raise ValueError(f"workspace_model {path} cannot be loaded as URDF or MJCF: {exc}") from None
        self._mujoco = mujoco
        self.data = mujoco.MjData(self.model)
        self._site = mujoco.mj_name2id(self.model, mujoco.mjtObj.mjOBJ_SITE, link)
        self._body = mujoco.mj_name2id(self.model, mujoco.mjtObj.mjOBJ_BODY, link) if self._site < 0 else -1
        if self._site < 0 and self._body < 0:
            raise ValueError(f"workspace_link {link!r} is neither a site nor a body of {path}")
        model_joints = {self.model.joint(j).name: j for j in range(self.model.njnt)}
        self._index = np.array([i for i, n in enumerate(joint_names) if n in model_joints], dtype=np.intp)
        if self._index.size == 0:
            raise ValueError(f"none of the command's joints {list(joint_names)} is a joint of {path} (it has "
                             f"{sorted(model_joints)[:12]}); name the joints alike")
        self._qadr = np.array([self.model.jnt_qposadr[model_joints[joint_names[i]]] for i in self._index])
        self.joints = tuple(joint_names[i] for i in self._index)

    def position(self, q: np.ndarray) -> np.ndarray:
        self.data.qpos[self._qadr] = np.asarray(q, dtype=np.float64)[self._index]
        self._mujoco.mj_kinematics(self.model, self.data)
        xpos = self.data.site_xpos[self._site] if self._site >= 0 else self.data.xpos[self._body]
        return xpos.copy()


def outside(box: WorkspaceBox, p: np.ndarray) -> float:
    """How far (m) point ``p`` lies outside ``box`` (0 inside)."""
    d = np.maximum(box.low - p, 0.0) + np.maximum(p - box.high, 0.0)
    return math.sqrt(float(d.dot(d)))


@dataclass(frozen=True)
class JointWorkspace:
    """The end-effector box for joint-position commands: ``fk`` gives the end effector of joint positions."""

    box: WorkspaceBox
    fk: ForwardKinematics

    def limit(self, q: np.ndarray, q_ref: np.ndarray, iterations: int = 12) -> tuple[np.ndarray, Rules]:
        """``q`` shortened along the step from ``q_ref`` so that the end effector stays in the box; from outside
        the box, only a step that does not take it further out is allowed (otherwise ``q_ref``: hold)."""
        start = outside(self.box, self.fk.position(q_ref))
        if outside(self.box, self.fk.position(q)) <= start:
            return q, []
        lo, hi = 0.0, 1.0  # the largest fraction of the step that keeps the end effector no further out
        for _ in range(iterations):
            mid = 0.5 * (lo + hi)
            if outside(self.box, self.fk.position(q_ref + mid * (q - q_ref))) <= start:
                lo = mid
            else:
                hi = mid
        out = q_ref + lo * (q - q_ref)
        d = q - out
        return out, [("limit.workspace", math.sqrt(float(d.dot(d))))]
