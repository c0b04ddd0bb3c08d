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

from vla_core.kinematics import ArmModel
from vla_safety.limits import Rules, WorkspaceBox


def forward_kinematics(model_path: str | Path, link: str, joint_names: tuple[str, ...]) -> ArmModel:
    """The end effector of command joint positions (``position(q)``, (3,) m), from the robot's model: the shared
    :class:`vla_core.kinematics.ArmModel`, its errors naming the shield's parameters (workspace_model,
    workspace_link)."""
    return ArmModel(model_path, link, joint_names, params=("workspace_model", "workspace_link"))


def outside(box: WorkspaceBox, p: np.ndarray) -> float:
    """How far (m) point ``p`` lies outside ``box`` (0 inside)."""
    d = np.maximum(box.low - p, 0.0) + np.maximum(p - box.high, 0.0)
    return math.sqrt(float(d.dot(d)))


@dataclass(frozen=True)
class JointWorkspace:
    """The end-effector box for joint-position commands: ``fk`` gives the end effector of joint positions."""

    box: WorkspaceBox
    fk: ArmModel

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
