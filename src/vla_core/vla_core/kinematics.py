"""An arm's kinematics from the robot's own model file (no rclpy): the shield's end-effector box and teleop's jog.

The model is the file the robot already has: a URDF or an MJCF, loaded with MuJoCo (which reads both) only when an
ArmModel is built. The end effector is a site or a body of that model, and the chain is the model's joints named as
the robot contract's action names, so the same contract drives any arm whose model names its joints alike. Action
names the model lacks (a gripper given as its opening) and excluded ones are not part of the chain: forward
kinematics ignores them and a jog leaves them alone.

Frames and units: the model's world frame, which must be the contract's base_link (REP 103: x forward, y left,
z up); metres, radians. Rotations are (3, 3) matrices whose columns are the end effector's axes in base_link.
"""
from __future__ import annotations

import math
from pathlib import Path
from typing import Sequence

import numpy as np


class ArmModel:
    """Forward kinematics and the Jacobian of ``link`` over the chain joints of the action vector.

    Args:
        model_path: the robot's URDF or MJCF.
        link: the end effector, a site (preferred: the tool point) or a body of the model.
        action_names: the contract's action names; the chain is those that are 1-dof (hinge or slide) joints of
            the model, minus ``exclude``.
        exclude: action names never moved by the jog (the gripper, even where the model has it as a joint).
        params: the parameters that name the model file and the end effector, as errors should call them.

    Raises:
        ValueError: naming what to fix: a missing or unreadable model, an end effector that is neither a site
            nor a body of it, no action name among its joints, or an action name that is a multi-dof joint.
    """

    def __init__(self, model_path: str | Path, link: str, action_names: Sequence[str], exclude: Sequence[str] = (),
                 params: tuple[str, str] = ("arm_model", "arm_link")):
        path = Path(model_path)
        model_param, link_param = params
        if not path.is_file():
            raise ValueError(f"{model_param} {path} does not exist; give the robot's URDF or MJCF")
        import mujoco  # only when a model is built; MuJoCo reads URDF and MJCF
        try:
            self.model = mujoco.MjModel.from_xml_path(str(path))
        except Exception as exc:  # noqa: BLE001 - mujoco raises ValueError or its own errors for bad files
            raise ValueError(f"{model_param} {path} cannot be loaded as URDF or MJCF: {exc}") from None
        self._mujoco = mujoco
        m = self.model
        self._data = mujoco.MjData(m)
        self._site = mujoco.mj_name2id(m, mujoco.mjtObj.mjOBJ_SITE, link) if link else -1
        self._body = mujoco.mj_name2id(m, mujoco.mjtObj.mjOBJ_BODY, link) if link and self._site < 0 else -1
        if self._site < 0 and self._body < 0:
            raise ValueError(f"{link_param} {link!r} is neither a site nor a body of {path}; name the end effector "
                             "(the tool point's site, or the flange body)")
        joints = {m.joint(j).name: j for j in range(m.njnt)}
        one_dof = (mujoco.mjtJoint.mjJNT_HINGE, mujoco.mjtJoint.mjJNT_SLIDE)
        multi = [n for n in action_names if n in joints and m.jnt_type[joints[n]] not in one_dof]
        if multi:
            raise ValueError(f"action names {multi} are free or ball joints of {path}; a jog moves hinge and slide "
                             "joints only")
        chain = [i for i, n in enumerate(action_names) if n in joints and n not in exclude]
        if not chain:
            raise ValueError(f"none of the action names {list(action_names)} (excluding {list(exclude)}) is a joint "
                             f"of {path} (it has {sorted(joints)[:12]}); name the model's joints as the contract's "
                             "action names")
        #: Indices into the action vector of the chain joints, in action order.
        self.index = np.array(chain, dtype=np.intp)
        #: Names of the chain joints.
        self.joints = tuple(action_names[i] for i in chain)
        ids = [joints[n] for n in self.joints]
        self._qadr = np.array([m.jnt_qposadr[j] for j in ids])
        self._dadr = np.array([m.jnt_dofadr[j] for j in ids])
        limited = np.array([bool(m.jnt_limited[j]) for j in ids])
        ranges = np.array([m.jnt_range[j] for j in ids], dtype=np.float64).reshape(-1, 2)
        #: (k,) the model's joint ranges (rad or m; +-inf where the model sets none).
        self.lower = np.where(limited, ranges[:, 0], -np.inf)
        self.upper = np.where(limited, ranges[:, 1], np.inf)
        self._jacp = np.zeros((3, m.nv))
        self._jacr = np.zeros((3, m.nv))

    def fk(self, q: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """End-effector position (3,) m and rotation (3, 3) in base_link for the action vector ``q`` (its chain
        joints; other values are ignored)."""
        self._set(q)
        d = self._data
        if self._site >= 0:
            return d.site_xpos[self._site].copy(), d.site_xmat[self._site].reshape(3, 3).copy()
        return d.xpos[self._body].copy(), d.xmat[self._body].reshape(3, 3).copy()

    def position(self, q: np.ndarray) -> np.ndarray:
        """End-effector position (3,) m in base_link for the action vector ``q``."""
        self._set(q)
        d = self._data
        return (d.site_xpos[self._site] if self._site >= 0 else d.xpos[self._body]).copy()

    def jacobian(self, q: np.ndarray) -> np.ndarray:
        """(6, k) Jacobian of the end effector over the chain joints at action vector ``q``: rows are the linear
        velocity (m/s) then the angular velocity (rad/s) in base_link per unit joint rate."""
        self._set(q)
        mj = self._mujoco
        mj.mj_comPos(self.model, self._data)
        if self._site >= 0:
            mj.mj_jacSite(self.model, self._data, self._jacp, self._jacr, self._site)
        else:
            mj.mj_jacBody(self.model, self._data, self._jacp, self._jacr, self._body)
        return np.vstack([self._jacp[:, self._dadr], self._jacr[:, self._dadr]])

    def _set(self, q: np.ndarray) -> None:
        self._data.qpos[self._qadr] = np.asarray(q, dtype=np.float64)[self.index]
        self._mujoco.mj_kinematics(self.model, self._data)


def rotation_vector(r: np.ndarray) -> np.ndarray:
    """(3,) axis * angle (rad) of the rotation matrix ``r`` (the logarithm map; angle in [0, pi])."""
    cos = min(1.0, max(-1.0, (float(np.trace(r)) - 1.0) / 2.0))
    angle = math.acos(cos)
    axis = np.array([r[2, 1] - r[1, 2], r[0, 2] - r[2, 0], r[1, 0] - r[0, 1]])
    if angle < 1e-9:
        return 0.5 * axis  # small angles: the skew part is the rotation vector
    if math.pi - angle < 1e-6:  # near pi the skew part vanishes: the axis is the dominant column of r + I
        b = r + np.eye(3)
        col = b[:, int(np.argmax(np.linalg.norm(b, axis=0)))]
        return angle * col / np.linalg.norm(col)
    return angle * axis / (2.0 * math.sin(angle))


def rotation_matrix(w: np.ndarray) -> np.ndarray:
    """(3, 3) rotation of the rotation vector ``w`` (axis * angle, rad): Rodrigues' formula."""
    w = np.asarray(w, dtype=np.float64)
    angle = float(np.linalg.norm(w))
    if angle < 1e-12:
        return np.eye(3)
    k = w / angle
    kx = np.array([[0.0, -k[2], k[1]], [k[2], 0.0, -k[0]], [-k[1], k[0], 0.0]])
    return np.eye(3) + math.sin(angle) * kx + (1.0 - math.cos(angle)) * (kx @ kx)
