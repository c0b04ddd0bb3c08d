"""Forward and inverse kinematics of the tabletop arm, on its own MJCF kinematic chain.

The arm is described once, in ``assets/arm/arm_tabletop.xml``; this module loads
that file (relative to itself, so it works from a source tree, a symlink
install or a wheel) and computes the pose of the ``tcp`` site (the point
between the finger pads) with MuJoCo's own kinematics, so the expert, a teleop
device or a shield see exactly the chain the simulator moves.

Frames and units: ``base_link`` = the MJCF world frame (REP 103: x forward,
y left, z up; origin at the arm's base on the table top), metres, radians.
Rotations are 3x3 matrices whose columns are the tcp's x (finger slide
direction), y and z (approach direction) axes in ``base_link``.

Inverse kinematics is damped least squares (Levenberg-Marquardt, Wampler 1986)
on the 6x6 site Jacobian from ``mj_jacSite``, with joint limits enforced by
clamping after every iteration. It needs a seed near the wanted branch (the
current joint positions): the arm's home pose keeps the elbow up and the
forearm roll near zero, and small steps from there stay on that branch.

numpy + mujoco only; no rendering, gymnasium or ROS.
"""

from __future__ import annotations

import math
import os
from pathlib import Path
from typing import NamedTuple

os.environ.setdefault("MUJOCO_GL", "egl")  # headless, should this process render later

import mujoco  # noqa: E402
import numpy as np  # noqa: E402

#: The MJCF of the arm on its table (cubes, bins, cameras included).
ARM_MJCF_PATH = Path(__file__).resolve().parent / "assets" / "arm" / "arm_tabletop.xml"

#: Arm joints in chain order (= the first six entries of an action).
ARM_JOINT_NAMES: tuple[str, ...] = (
    "shoulder_pan", "shoulder_lift", "elbow", "forearm_roll", "wrist_pitch", "wrist_roll",
)
#: The two finger slide joints (m; 0 = closed, FINGER_TRAVEL = open).
FINGER_JOINT_NAMES: tuple[str, ...] = ("finger_left", "finger_right")
FINGER_TRAVEL = 0.04  # m per finger; the opening between the pads is the sum of both
TCP_SITE = "tcp"

#: Home pose (rad): tcp 0.36 m ahead of the base and 0.22 m above the table, pointing
#: straight down (the fingers slide along base_link x: yaw pi), elbow up, forearm roll zero.
HOME_QPOS = np.array([0.0, 0.21, 1.59, 0.0, 1.34, 0.0])


def load_arm_model() -> mujoco.MjModel:
    """The arm-on-table MjModel from :data:`ARM_MJCF_PATH`."""
    return mujoco.MjModel.from_xml_path(str(ARM_MJCF_PATH))


def top_down_rotation(yaw: float) -> np.ndarray:
    """(3, 3) tcp rotation pointing straight down, fingers sliding along ``yaw`` (rad, about z).

    Columns: x = (cos yaw, sin yaw, 0), z = (0, 0, -1), y = z x x. The two fingers
    are alike, so ``yaw`` and ``yaw + pi`` are the same grasp; at the home pose
    (wrist roll 0) the tcp's yaw is pi.
    """
    c, s = math.cos(yaw), math.sin(yaw)
    return np.array([[c, s, 0.0], [s, -c, 0.0], [0.0, 0.0, -1.0]])


def rotation_error(target: np.ndarray, current: np.ndarray) -> np.ndarray:
    """(3,) rotation vector (rad, base_link) that turns ``current`` into ``target``."""
    qt, qc, qe = np.empty(4), np.empty(4), np.empty(4)
    mujoco.mju_mat2Quat(qt, np.ascontiguousarray(target).ravel())
    mujoco.mju_mat2Quat(qc, np.ascontiguousarray(current).ravel())
    mujoco.mju_negQuat(qc, qc)
    mujoco.mju_mulQuat(qe, qt, qc)
    err = np.empty(3)
    mujoco.mju_quat2Vel(err, qe, 1.0)
    return err


class IkResult(NamedTuple):
    """Outcome of :meth:`ArmKinematics.ik`."""

    qpos: np.ndarray       # (6,) joint positions (rad), within the joint limits
    converged: bool        # both errors below the tolerances
    position_error: float  # m, |target - reached|
    rotation_error: float  # rad, angle between target and reached rotations


class ArmKinematics:
    """FK/IK of the ``tcp`` site over the six arm joints.

    Args:
        model: an MjModel that contains the arm (default: :func:`load_arm_model`).
            Only the arm's kinematic chain is used; a private MjData holds the
            scratch state, so this object never disturbs a running simulation.
    """

    def __init__(self, model: mujoco.MjModel | None = None) -> None:
        self.model = load_arm_model() if model is None else model
        self._data = mujoco.MjData(self.model)
        m = self.model
        joint_ids = [mujoco.mj_name2id(m, mujoco.mjtObj.mjOBJ_JOINT, n) for n in ARM_JOINT_NAMES]
        if min(joint_ids) < 0:
            raise ValueError(f"model lacks arm joints {ARM_JOINT_NAMES}; got joint ids {joint_ids}")
        self._qadr = np.array([m.jnt_qposadr[j] for j in joint_ids])
        self._dadr = np.array([m.jnt_dofadr[j] for j in joint_ids])
        self._site = mujoco.mj_name2id(m, mujoco.mjtObj.mjOBJ_SITE, TCP_SITE)
        if self._site < 0:
            raise ValueError(f"model lacks the {TCP_SITE!r} site")
        #: (6,) lower / upper joint limits (rad).
        self.lower = np.array([m.jnt_range[j][0] for j in joint_ids])
        self.upper = np.array([m.jnt_range[j][1] for j in joint_ids])
        self._jacp = np.zeros((3, m.nv))
        self._jacr = np.zeros((3, m.nv))

    def fk(self, qpos: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """tcp position (3,) m and rotation (3, 3) in base_link for arm joints ``qpos`` (6,) rad."""
        self._set(qpos)
        d = self._data
        return d.site_xpos[self._site].copy(), d.site_xmat[self._site].reshape(3, 3).copy()

    def jacobian(self, qpos: np.ndarray) -> np.ndarray:
        """(6, 6) Jacobian of the tcp (rows: linear m/rad, then angular rad/rad) over the arm joints."""
        self._set(qpos)
        mujoco.mj_jacSite(self.model, self._data, self._jacp, self._jacr, self._site)
        return np.vstack([self._jacp[:, self._dadr], self._jacr[:, self._dadr]])

    def ik(
        self,
        position: np.ndarray,
        rotation: np.ndarray,
        seed: np.ndarray,
        *,
        max_iters: int = 60,
        position_tol: float = 1e-4,
        rotation_tol: float = 1e-3,
        damping: float = 0.05,
        max_step: float = 0.3,
    ) -> IkResult:
        """Joint positions that put the tcp at ``position`` (3,) m with ``rotation`` (3, 3).

        Damped least squares from ``seed`` (6,) rad: ``dq = J^T (J J^T + damping^2 I)^-1 e``
        with e = (position error, rotation vector), each update capped at
        ``max_step`` rad (largest joint) and clamped to the joint limits. Returns
        the best iterate found; ``converged`` says whether it met the tolerances
        (an unreachable target gives the closest pose the damping allows).
        """
        q = np.clip(np.asarray(seed, np.float64).reshape(6), self.lower, self.upper)
        target_p = np.asarray(position, np.float64).reshape(3)
        target_r = np.asarray(rotation, np.float64).reshape(3, 3)
        best = (math.inf, q.copy(), math.inf, math.inf)
        eye = np.eye(6) * damping * damping
        for _ in range(max_iters):
            p, r = self.fk(q)
            e_p = target_p - p
            e_r = rotation_error(target_r, r)
            pe, re = float(np.linalg.norm(e_p)), float(np.linalg.norm(e_r))
            cost = pe + 0.1 * re  # 1 rad weighs like 0.1 m
            if cost < best[0]:
                best = (cost, q.copy(), pe, re)
            if pe < position_tol and re < rotation_tol:
                break
            mujoco.mj_jacSite(self.model, self._data, self._jacp, self._jacr, self._site)
            jac = np.vstack([self._jacp[:, self._dadr], self._jacr[:, self._dadr]])
            dq = jac.T @ np.linalg.solve(jac @ jac.T + eye, np.concatenate([e_p, e_r]))
            biggest = float(np.max(np.abs(dq)))
            if biggest > max_step:
                dq *= max_step / biggest
            q = np.clip(q + dq, self.lower, self.upper)
        _, q_best, pe, re = best
        return IkResult(q_best, pe < position_tol * 10 and re < rotation_tol * 10, pe, re)

    def _set(self, qpos: np.ndarray) -> None:
        d = self._data
        d.qpos[self._qadr] = np.asarray(qpos, np.float64).reshape(6)
        mujoco.mj_kinematics(self.model, d)
        mujoco.mj_comPos(self.model, d)


__all__ = [
    "ARM_MJCF_PATH",
    "ARM_JOINT_NAMES",
    "FINGER_JOINT_NAMES",
    "FINGER_TRAVEL",
    "HOME_QPOS",
    "TCP_SITE",
    "ArmKinematics",
    "IkResult",
    "load_arm_model",
    "rotation_error",
    "top_down_rotation",
]
