"""Scripted expert for :class:`vla_sim.envs.arm.ArmPickPlaceEnv`.

Like the tabletop expert, it sees only the flat privileged-state vector (it
may live in another process), decodes it with
``ArmPickPlaceEnv.decode_privileged`` and returns an action of the env's
action space: six absolute joint-position targets (rad) and a gripper command
(0 closed .. 1 open). numpy + mujoco (for the arm's own kinematics); no ROS,
gymnasium rendering or torch.

Strategy: a sequence of tcp waypoints, each reached by damped-least-squares
inverse kinematics (:class:`vla_sim.envs.arm_kinematics.ArmKinematics`) on
the MJCF's chain, with the tcp pointing straight down:

REACH toward the target cube with the fingers turned to the cube's faces,
DESCEND onto it (one funnel: the waypoint is the cube's centre raised by 3 m
per m of horizontal error and 0.2 m per rad of yaw error, ``hover`` m at most,
so the descent depends only on where the tcp is) -> GRASP (close within
``grasp_distance`` of the cube's centre) -> LIFT to ``carry_height`` as soon as
the fingers stop on the cube -> CARRY over the goal (the bin's centre, or the
base cube) and LOWER to the release height (just above the bin's walls; a few
mm above the base cube), again one funnel, aimed 2 cm below the release point
so the cube passes it without slowing -> RELEASE (open) -> RETREAT upward, then
hold; or, if the cube did not stay where it was put, start over. No point to
settle on and no threshold crossed in the past: a policy without memory, which
sees only the state, can copy it.

Every step recomputes the waypoint from the current state (closed loop): the
tcp moves toward it by at most ``max_speed * dt`` from where the arm is now,
so a disturbed arm is steered back. A grasp that closes on nothing, or a cube
lost on the way (further than 0.025 m from the tcp), sends the expert back to
REACH. While carrying and lowering, the waypoint is where the *cube* should go,
shifted by the cube's measured offset in the hand. The fingers' yaw is the cube yaw (mod 90 degrees) closest to the arm's
natural yaw at that bearing, which keeps the wrist roll within +-45 degrees of
its centre; while carrying, the cube is turned to the goal's axes (bin walls,
or the base cube's faces).

Demonstration noise (DART, Laskey et al. 2017): with ``noise_std`` > 0 every
joint target gets zero-mean Gaussian noise (rad, per joint), clipped to the
joint limits, and with ``gripper_delay`` > 0 a change of the gripper command is
held back a step at a time with that probability. The arm then drifts off the
expert's path (or lingers where the fingers should switch) and the next
commands, computed from where it actually is, steer it back, so demonstrations
show recoveries. ``clean_action`` is the last command without the noise: the
label to record (DART's), as ``vla_sim.demos`` does with ``labels="clean"``.
"""

from __future__ import annotations

import math

import numpy as np

from vla_sim.envs.arm import ArmPickPlaceEnv, ArmPrivilegedState
from vla_sim.envs.arm_kinematics import ArmKinematics, top_down_rotation

_QUARTER = math.pi / 2


class ArmScriptedExpert:
    """Privileged-state expert for the arm pick-and-place and stacking task.

    Args:
        max_speed: tcp speed limit (m/s) between waypoints.
        yaw_speed: tcp yaw rate limit (rad/s).
        hover: height (m) above the cube's centre of the REACH waypoint.
        carry_height: tcp height (m) above the table while carrying.
        grasp_distance: the fingers close when the tcp is this close (m) to the cube's centre.
        noise_std: standard deviation (rad, per joint) of the demonstration noise
            added to every joint target (see the module docstring); 0: none.
            May change between calls.
        gripper_delay: demonstration noise on the gripper's timing: the probability, at each step, that a change
            of the gripper command is held back one step more (0: none). The arm lingers where the fingers
            should close or open, with the clean command (``clean_action``) saying so.
        seed: seed of the noise generator.
        kinematics: an :class:`ArmKinematics` to share (default: a new one on the MJCF).
    """

    REACH, DESCEND, GRASP, LIFT, CARRY, LOWER, RELEASE, RETREAT = (
        "reach", "descend", "grasp", "lift", "carry", "lower", "release", "retreat",
    )

    def __init__(
        self,
        max_speed: float = 0.25,
        yaw_speed: float = 3.0,
        hover: float = 0.07,
        carry_height: float = 0.15,
        grasp_distance: float = 0.010,
        noise_std: float = 0.0,
        gripper_delay: float = 0.0,
        seed: int | None = None,
        kinematics: ArmKinematics | None = None,
    ) -> None:
        if not max_speed > 0 or not yaw_speed > 0:
            raise ValueError(f"max_speed and yaw_speed must be > 0, got {max_speed!r}, {yaw_speed!r}")
        if not noise_std >= 0:
            raise ValueError(f"noise_std must be >= 0 rad, got {noise_std!r}")
        if not 0.0 <= gripper_delay < 1.0:
            raise ValueError(f"gripper_delay must be a probability in [0, 1), got {gripper_delay!r}")
        self.max_speed = float(max_speed)
        self.yaw_speed = float(yaw_speed)
        self.hover = float(hover)
        self.carry_height = float(carry_height)
        self.grasp_distance = float(grasp_distance)
        self.noise_std = float(noise_std)
        self.gripper_delay = float(gripper_delay)
        self.kinematics = kinematics or ArmKinematics()
        self._rng = np.random.default_rng(seed)
        self.reset()

    def reset(self) -> None:
        """Forget the phase and the IK seed; call at every episode start."""
        self.phase = self.REACH
        self._phase_steps = 0
        self._ik_seed: np.ndarray | None = None
        self._retreat_to: np.ndarray | None = None
        self._gripper_sent: float | None = None
        #: The last :meth:`act`'s action without the demonstration noise (joint noise, gripper delay): the label a
        #: demonstration should record for the state it was computed on (DART: the noise only visits states).
        self.clean_action: np.ndarray | None = None

    def act(self, privileged: np.ndarray) -> np.ndarray:
        """Action for one control step.

        Args:
            privileged: flat float64 vector from ``ArmPickPlaceEnv.privileged_state()``.

        Returns:
            (7,) float32: six joint targets (rad), gripper command (0 closed .. 1 open).
        """
        s = ArmPickPlaceEnv.decode_privileged(privileged)
        tcp, rot = self.kinematics.fk(s.qpos)
        yaw_now = math.atan2(rot[1, 0], rot[0, 0])
        target, yaw, gripper = self._waypoint(s, tcp, yaw_now)

        # Closed loop: step from where the tcp is now, at most max_speed * dt
        # (half that while lowering a cube onto its goal).
        delta = target - tcp
        dist = float(np.linalg.norm(delta))
        reach = self.max_speed * s.dt * (0.5 if self.phase == self.LOWER else 1.0)
        goal = tcp + delta * (reach / dist) if dist > reach else target
        dyaw = _wrap(yaw - yaw_now)
        yaw_step = self.yaw_speed * s.dt
        yaw_goal = yaw_now + float(np.clip(dyaw, -yaw_step, yaw_step))

        seed = s.qpos if self._ik_seed is None else self._ik_seed
        q = self.kinematics.ik(goal, top_down_rotation(yaw_goal), seed, max_iters=30).qpos
        self._ik_seed = q
        self.clean_action = np.append(np.clip(q, self.kinematics.lower, self.kinematics.upper),
                                      gripper).astype(np.float32)
        if self.noise_std > 0:
            q = q + self._rng.normal(0.0, self.noise_std, size=6)
        q = np.clip(q, self.kinematics.lower, self.kinematics.upper)
        sent = self._gripper_sent
        if self.gripper_delay > 0 and sent is not None and gripper != sent and self._rng.random() < self.gripper_delay:
            gripper = sent
        self._gripper_sent = gripper
        return np.append(q, gripper).astype(np.float32)

    # ------------------------------------------------------------ internals
    def _advance(self, phase: str) -> None:
        self.phase, self._phase_steps = phase, 0

    def _waypoint(self, s: ArmPrivilegedState, tcp: np.ndarray, yaw_now: float):
        """(tcp target (3,), yaw, gripper command) for this step; moves the phase on."""
        self._phase_steps += 1
        cube = s.cube_pos[s.target_cube]
        half = s.cube_half
        held = np.linalg.norm(cube - tcp) < 0.025 and s.opening > 2 * half - 0.01
        if self.phase in (self.LIFT, self.CARRY, self.LOWER) and not held:
            self._advance(self.REACH)  # lost the cube: start over

        if self.phase in (self.REACH, self.DESCEND, self.GRASP):
            yaw = _closest(_quat_yaw(s.cube_quat[s.target_cube]), _natural_yaw(cube))
            if self.phase != self.GRASP:
                if np.linalg.norm(cube - tcp) < self.grasp_distance:
                    self._advance(self.GRASP)
                    return cube.copy(), yaw, 0.0
                # A funnel, not a hover point and a threshold: the tcp aims at the cube's centre raised by an
                # amount that shrinks with the horizontal and yaw error (``hover`` at most), so the descent is a
                # function of where the tcp is, with no point to settle on.
                lift = _funnel(float(np.linalg.norm(cube[:2] - tcp[:2])), abs(_wrap(yaw - yaw_now)), self.hover)
                if s.opening < 2 * half + 0.01:  # the fingers are not open round the cube: stay above
                    lift = self.hover
                self.phase = self.REACH if lift > 0.02 else self.DESCEND
                return cube + np.array([0.0, 0.0, lift]), yaw, 1.0
            # GRASP: close in place; lift as soon as the fingers stop on the cube (what the opening shows).
            if abs(s.opening - 2 * half) < 0.006 or (self._phase_steps >= 6 and s.opening < 2 * half + 0.02):
                self._advance(self.LIFT)
            elif self._phase_steps >= 3 and s.opening < 2 * half - 0.01:  # closed on nothing
                self._advance(self.REACH)
                return cube + np.array([0.0, 0.0, self.hover]), yaw, 1.0
            else:
                return cube.copy(), yaw, 0.0
        goal = s.goal
        if s.skill == "place":
            release_z = s.bin_wall_height + half + 0.015  # cube centre at release
            goal_yaw = 0.0  # bins are aligned with base_link
        else:
            release_z = goal[2] + 0.004
            goal_yaw = _quat_yaw(s.cube_quat[s.target])
        carry_yaw = _closest(goal_yaw, _natural_yaw(goal))
        if self.phase == self.LIFT:
            target = np.array([tcp[0], tcp[1], self.carry_height])
            if tcp[2] > self.carry_height - 0.02:
                self._advance(self.CARRY)
            return target, yaw_now, 0.0
        # Carry and lower aim the cube, not the tcp: a cube held off-centre still lands on the goal.
        in_hand = tcp - cube
        if self.phase in (self.CARRY, self.LOWER):
            # The same funnel over the goal: the held cube aims at its release point raised by an amount that
            # shrinks with the horizontal and yaw error (up to the carry height).
            cube_target = np.array([goal[0], goal[1], release_z])
            off = float(np.linalg.norm(goal[:2] - cube[:2]))
            # A bin takes the cube anywhere within 2 cm of its centre; a stack within 1 cm.
            tolerance = 0.02 if s.skill == "place" else 0.01
            if off < tolerance and cube[2] - release_z < 0.006:
                self._advance(self.RELEASE)
                return tcp.copy(), yaw_now, 1.0
            rise = _funnel(off, abs(_wrap(carry_yaw - yaw_now)), max(0.0, self.carry_height - in_hand[2] - release_z),
                           dead=tolerance / 2)
            self.phase = self.CARRY if rise > 0.02 else self.LOWER
            # Aimed 2 cm below the release point, the cube passes it without slowing down: no run of frames
            # hovering just above it with the fingers closed, which a policy would learn as a place to stop.
            sink = 0.02 if rise == 0.0 else 0.0
            return cube_target + in_hand + np.array([0.0, 0.0, rise - sink]), carry_yaw, 0.0
        if self.phase == self.RELEASE:
            if self._phase_steps >= 3 and s.opening > 2 * half + 0.015:
                self._advance(self.RETREAT)
                self._retreat_to = np.array([tcp[0], tcp[1], self.carry_height])
            return tcp.copy(), yaw_now, 1.0
        # RETREAT: straight up; start over if the cube did not stay where it was put
        # (knocked off the base cube, bounced out of the bin), else hold there.
        if np.linalg.norm(self._retreat_to - tcp) < 0.02 and not _placed(s):
            self._advance(self.REACH)
        return self._retreat_to.copy(), yaw_now, 1.0


def _funnel(horizontal: float, yaw_error: float, top: float, dead: float = 0.004) -> float:
    """Height (m) above its goal that a tcp (or held cube) aims at: 0 when it is within ``dead`` m and 0.05 rad
    of the goal's axis, rising 3 m per m of horizontal error and 0.2 m per rad of yaw error, ``top`` at most."""
    return min(top, 3.0 * max(0.0, horizontal - dead) + 0.2 * max(0.0, yaw_error - 0.05))


def _placed(s: ArmPrivilegedState) -> bool:
    """Whether the target cube is where the task wants it (or out of reach: nothing left to do)."""
    cube = s.cube_pos[s.target_cube]
    if cube[2] < 0.0 or math.hypot(cube[0], cube[1]) > 0.6:  # off the table or out of reach
        return True
    if s.skill == "place":
        x, y = s.bin_pos[s.target]
        return max(abs(cube[0] - x), abs(cube[1] - y)) <= s.bin_inner_half
    return bool(np.linalg.norm(cube - s.goal) < s.cube_half)


def _wrap(angle: float) -> float:
    """``angle`` wrapped to [-pi, pi)."""
    return (angle + math.pi) % (2.0 * math.pi) - math.pi


def _quat_yaw(quat: np.ndarray) -> float:
    """Yaw (rad, about base_link z) of a (w, x, y, z) quaternion."""
    w, x, y, z = quat
    return math.atan2(2.0 * (w * z + x * y), 1.0 - 2.0 * (y * y + z * z))


def _natural_yaw(point: np.ndarray) -> float:
    """tcp yaw with the wrist roll at zero when the arm faces ``point`` (home pose: pi)."""
    return math.pi + math.atan2(point[1], point[0])


def _closest(yaw: float, reference: float) -> float:
    """The angle ``yaw + k * pi / 2`` (a cube's symmetry) closest to ``reference``."""
    return reference + _wrap(4.0 * (yaw - reference)) / 4.0


__all__ = ["ArmScriptedExpert"]
