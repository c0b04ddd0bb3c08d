"""Scripted expert for :class:`vla_sim.envs.tabletop.TabletopPushEnv`.

The expert sees only the flat privileged-state vector (it may live in another
process, e.g. behind a ROS topic), decodes it with
``TabletopPushEnv.decode_privileged`` and returns a pusher velocity command in
m/s in ``base_link``. numpy only (plus that decoder); no ROS or torch.

Strategy (a two-mode controller with hysteresis; ``reset()`` between episodes):

* APPROACH: go to a staging point behind the target block, on the line from
  the zone centre through the block, ``standoff`` beyond contact. Blocks are
  obstacles inflated by pusher radius + block radius + ``clearance``. If the
  straight path to the staging point is blocked by the target, circle the
  target toward the staging angle, the shorter way round unless the table
  edge leaves no room for the pusher on that side. If it is blocked by another
  block, circle that block on the side facing the goal, handing over to the
  next block in the same sense when blocks form a cluster. A block sitting on
  the staging point, or an approach longer than ``patience`` steps, makes the
  expert stop avoiding non-target blocks and shove them aside.
* PUSH: drive toward the zone with speed reduced as the contact drifts off
  the block-to-zone line, plus a proportional correction that slides the pusher
  back onto the ideal contact point ``block - u * (r_block + r_pusher)``
  (u = unit vector block -> zone); ``gain * dt = 0.5`` keeps it stable with one
  or two steps of action delay. If the contact angle exceeds
  ``leave_push_deg`` the expert re-approaches.
* Edges: a block pushed against the table edge may leave no room behind it;
  then the push direction is the reachable one closest to u (the block slides
  along the edge and off it) with the pusher pressed into the edge.

Demonstration noise (DART, Laskey et al. 2017): with ``noise_std`` > 0 every
speed-limited command gets zero-mean Gaussian noise per axis, and the result
is clipped to the per-axis limit (the robot's own). The robot then drifts off
the expert's path and the expert's next commands steer it back, so
demonstrations show recoveries from the small errors a learned policy makes;
a policy cloned from them compounds its errors far less. Being zero-mean
before the clip, a regression on the commands recovers (close to) the
expert's own command.
"""

from __future__ import annotations

import math

import numpy as np

from vla_sim.envs.tabletop import PrivilegedState, TabletopPushEnv


class ScriptedExpert:
    """Privileged-state expert for the tabletop push task.

    Args:
        max_speed: per-axis limit of the returned command (m/s); the command's
            norm is also kept <= max_speed so it moves the same in every direction.
        clearance: extra clearance (m) around blocks while approaching.
        standoff: distance (m) beyond contact of the staging point behind the block.
        push_gain: proportional gain (1/s) of the contact-point correction.
        approach_gain: proportional gain (1/s) toward the staging point.
        enter_push_deg / leave_push_deg: contact-angle hysteresis (degrees)
            between APPROACH and PUSH.
        patience: APPROACH steps after which only the target block is avoided
            (other blocks get shoved aside), a guard against planner cycles.
        noise_std: standard deviation (m/s, per axis) of the demonstration
            noise added to every command (see the module docstring); 0: none.
            May change between calls.
        seed: seed of the noise generator.
    """

    APPROACH = "approach"
    PUSH = "push"

    def __init__(
        self,
        max_speed: float = 0.25,
        clearance: float = 0.012,
        standoff: float = 0.02,
        push_gain: float = 5.0,
        approach_gain: float = 3.0,
        enter_push_deg: float = 20.0,
        leave_push_deg: float = 55.0,
        patience: int = 40,
        noise_std: float = 0.0,
        seed: int | None = None,
    ) -> None:
        if not max_speed > 0:
            raise ValueError(f"max_speed must be > 0 m/s, got {max_speed!r}")
        if not noise_std >= 0:
            raise ValueError(f"noise_std must be >= 0 m/s, got {noise_std!r}")
        self.max_speed = float(max_speed)
        self.clearance = float(clearance)
        self.standoff = float(standoff)
        self.push_gain = float(push_gain)
        self.approach_gain = float(approach_gain)
        self.patience = int(patience)
        self.noise_std = float(noise_std)
        self._rng = np.random.default_rng(seed)
        self.clean_action: np.ndarray | None = None
        self._cos_enter = math.cos(math.radians(enter_push_deg))
        self._cos_leave = math.cos(math.radians(leave_push_deg))
        self.reset()

    def reset(self) -> None:
        """Forget the mode and orbit memory; call at every episode start."""
        self.mode = self.APPROACH
        self._orbit_obstacle: int | None = None
        self._orbit_dir = 0.0
        self._approach_steps = 0  # consecutive steps in APPROACH

    def act(self, privileged: np.ndarray) -> np.ndarray:
        """Velocity command for one control step.

        Args:
            privileged: flat float64 vector from ``TabletopPushEnv.privileged_state()``.

        Returns:
            (2,) float32 commanded pusher velocity (vx, vy) in m/s, base_link.
        """
        s = TabletopPushEnv.decode_privileged(privileged)
        speed = min(self.max_speed, s.max_speed)
        v = _limit(self._command(s), speed)
        self.clean_action = v.astype(np.float32)  # DART's label: the command without its noise
        if self.noise_std > 0:
            v = np.clip(v + self._rng.normal(0.0, self.noise_std, size=2), -speed, speed)
        return v.astype(np.float32)

    # ------------------------------------------------------------ internals
    def _command(self, s: PrivilegedState) -> np.ndarray:
        p = s.pusher_pos
        b = s.target_block_pos
        z = s.target_zone_pos
        r_contact = s.block_radius + s.pusher_radius
        to_zone = z - b
        dist = math.hypot(*to_zone)
        if dist < 1e-9:
            return np.zeros(2)
        u = to_zone / dist  # desired block motion direction
        # A block pushed against the table edge may have no room behind it for the
        # pusher: then push from the reachable contact point closest to the ideal
        # one, which slides the block off the edge; the ideal line resumes after.
        lim = s.table_half_size - s.pusher_radius - 0.002
        edge_limited = bool(np.any(np.abs(b - u * r_contact) > lim))
        if edge_limited:
            u = self._reachable_push_direction(b, u, p, r_contact, lim)

        w = p - b
        wl = math.hypot(*w)
        cos_contact = float(-(w @ u) / wl) if wl > 1e-9 else 1.0
        if self.mode == self.PUSH:
            if cos_contact < self._cos_leave or wl > r_contact + self.standoff + 0.02:
                self.mode = self.APPROACH
        elif cos_contact > self._cos_enter and wl < r_contact + self.standoff + 0.01:
            self.mode = self.PUSH

        if self.mode == self.PUSH:
            self._orbit_obstacle = None
            self._approach_steps = 0
            # Push slower the further the contact is off the line, so the
            # tangential correction can win against the sideways drift.
            align = max(0.0, (cos_contact - self._cos_leave) / (1.0 - self._cos_leave))
            v_push = self.max_speed * align * align
            ideal = b - u * r_contact
            v = v_push * u + self.push_gain * (ideal - p)
            # A block (nearly) flat against an edge is pushed along it from a
            # pusher pressed into that edge: otherwise the push's own component
            # along that axis would drift the pusher level with the block and
            # lose the small angle that slides the block off the edge.
            at_edge = (
                (np.abs(b) > s.table_half_size - s.block_radius - 0.01)
                & (np.abs(ideal) >= lim - 1e-3)
                & (np.sign(ideal) == np.sign(b))
            )
            if edge_limited and np.any(at_edge):
                # Just enough speed to reach (and press on) the edge within one step,
                # leaving the rest of the speed budget for pushing along the edge.
                gap = s.table_half_size - s.pusher_radius - np.abs(p[at_edge])
                press = np.minimum(self.max_speed, gap / s.dt + 0.02)
                v[at_edge] = np.sign(ideal[at_edge]) * press
                free = ~at_edge
                budget = math.sqrt(max(0.0, self.max_speed**2 - float(press @ press)))
                norm_free = float(np.linalg.norm(v[free]))
                if norm_free > budget:
                    v[free] *= budget / norm_free
            return v

        # Keep the staging point reachable: a block near the edge leaves less room behind it.
        staging = np.clip(b - u * (r_contact + self.standoff), -lim, lim)
        self._approach_steps += 1
        return self._navigate(s, p, staging, r_contact + self.clearance)

    def _reachable_push_direction(self, b, u, p, r_contact, lim) -> np.ndarray:
        """Unit push direction close to ``u`` whose contact point ``b - d * r_contact`` is on the table.

        The feasible directions are the unit circle cut by the box
        ``|b - d * r_contact| <= lim``; the best one lies where a box side cuts the
        circle. Ties (a block flat against an edge can be pushed off either way
        along it) are broken toward the pusher's current side; while pushing
        that preference is strong, so the choice does not flip from step to step.
        """
        side_weight = 0.5 if self.mode == self.PUSH else 0.1
        lo = (b - lim) / r_contact  # per-axis bounds on d
        hi = (b + lim) / r_contact
        side = b - p
        side = side / max(math.hypot(*side), 1e-9)
        best, best_score = u, -math.inf
        for axis in (0, 1):
            for bound in (lo[axis], hi[axis]):
                if abs(bound) > 1.0:
                    continue
                other = math.sqrt(1.0 - bound * bound)
                for sign in (1.0, -1.0):
                    d = np.empty(2)
                    d[axis], d[1 - axis] = bound, sign * other
                    if np.all(d >= lo - 1e-9) and np.all(d <= hi + 1e-9):
                        score = float(d @ u) + side_weight * float(d @ side)
                        if score > best_score:
                            best, best_score = d, score
        return best

    def _navigate(self, s: PrivilegedState, p: np.ndarray, goal: np.ndarray, radius: float) -> np.ndarray:
        """Velocity toward ``goal`` that circles around blocks inflated to ``radius``."""
        seg = goal - p
        seg_len = math.hypot(*seg)
        r_contact = s.block_radius + s.pusher_radius
        obstacles: dict[int, float] = {}  # block index -> avoidance radius
        for i, c in enumerate(s.block_pos):
            goal_dist = math.hypot(*(goal - c))
            if i != s.target_block and (goal_dist < radius or self._approach_steps > self.patience):
                # The staging point is (nearly) occupied by another block (e.g. the
                # target sits against a neighbour), or avoiding the other blocks
                # has not got us there in `patience` steps (a reactive planner
                # can cycle in a maze of blocks): shove other blocks aside.
                continue
            # The target's inflated disc shrinks to leave the staging point outside.
            obstacles[i] = max(r_contact, min(radius, goal_dist - 0.003))

        blocker, t_first = None, math.inf
        for i, r_i in obstacles.items():
            t = _segment_hits_disc(p, seg, seg_len, s.block_pos[i], r_i)
            if t is not None and t < t_first:
                blocker, t_first = i, t
        if blocker is None:
            self._orbit_obstacle = None
            return self.approach_gain * seg

        if blocker == s.target_block:
            v = self._orbit_target(s, p, goal, radius, r_contact)
        else:
            v = self._orbit(s, p, seg, blocker, radius, r_contact)
        # If circling this block would run into another one, circle that one
        # instead, in the same sense: this follows the boundary of a cluster.
        step = v * s.dt
        step_len = math.hypot(*step)
        for i, r_i in obstacles.items():
            if i != blocker and _segment_hits_disc(p, step, step_len, s.block_pos[i], r_i) is not None:
                v = self._orbit(s, p, seg, i, radius, r_contact)
                break
        return v

    def _orbit_target(self, s: PrivilegedState, p, goal, radius: float, r_contact: float) -> np.ndarray:
        """Velocity circling the target block toward the polar angle of ``goal``.

        The sense of rotation is the shorter way round unless the table edge
        leaves no room for the pusher on that side (checked on the tightest
        ring the pusher can use); it is kept while circling the target.
        """
        b = s.target_block_pos
        radial = p - b
        r = math.hypot(*radial)
        phi_p = math.atan2(radial[1], radial[0]) if r > 1e-9 else 0.0
        phi_g = math.atan2(goal[1] - b[1], goal[0] - b[0])
        delta = (phi_g - phi_p + math.pi) % (2.0 * math.pi) - math.pi
        if self._orbit_obstacle != s.target_block or self._orbit_dir == 0.0:
            lim = s.table_half_size - s.pusher_radius + 1e-6
            short = 1.0 if delta >= 0.0 else -1.0
            self._orbit_dir = short
            for sense in (short, -short):
                arc = delta if sense == short else delta - short * 2.0 * math.pi
                angles = phi_p + np.linspace(0.0, arc, 24)
                ring = b + (r_contact + 0.003) * np.stack([np.cos(angles), np.sin(angles)], axis=1)
                if np.all(np.abs(ring[1:]) <= lim):  # [0] is where the pusher already is
                    self._orbit_dir = sense
                    break
            self._orbit_obstacle = s.target_block
        n = radial / r if r > 1e-9 else np.array([math.cos(phi_g), math.sin(phi_g)])
        tangent = self._orbit_dir * np.array([-n[1], n[0]])
        ring_r = radius + 0.004
        return self.max_speed * tangent + self.approach_gain * (ring_r - r) * n

    def _orbit(self, s: PrivilegedState, p, seg, index: int, radius: float, r_contact: float) -> np.ndarray:
        """Velocity circling block ``index`` on a ring just outside ``radius``."""
        c = s.block_pos[index]
        radial = p - c
        r = math.hypot(*radial)
        n = radial / r if r > 1e-9 else -seg / max(math.hypot(*seg), 1e-9)
        tangent_ccw = np.array([-n[1], n[0]])
        if self._orbit_obstacle != index or self._orbit_dir == 0.0:
            # Blocks closer than the pusher can pass between form one obstacle:
            # keep the sense of rotation when handing over from one to the
            # next, i.e. follow the cluster's boundary instead of dithering
            # between the two and squeezing through the gap.
            prev = self._orbit_obstacle
            adjacent = (
                prev is not None and prev < len(s.block_pos) and self._orbit_dir != 0.0
                and math.hypot(*(s.block_pos[prev] - c)) < 2.0 * radius
            )
            if not adjacent:
                self._orbit_dir = 1.0 if tangent_ccw @ seg >= 0.0 else -1.0
            self._orbit_obstacle = index
        tangent = self._orbit_dir * tangent_ccw
        # Near the table edge the pusher is clamped and slides along the edge, which
        # is fine while it fits between block and edge; flip the orbit only where
        # it cannot pass (the clamped point ahead would touch the obstacle).
        lim = s.table_half_size - s.pusher_radius
        ahead = np.clip(p + tangent * 0.02, -lim, lim)
        if math.hypot(*(ahead - c)) < r_contact + 0.001:
            self._orbit_dir = -self._orbit_dir
            tangent = -tangent
        ring = radius + 0.004
        return self.max_speed * tangent + self.approach_gain * (ring - r) * n


def _limit(v: np.ndarray, speed: float) -> np.ndarray:
    """``v`` scaled down to norm ``speed`` if longer, and clipped to ``speed`` per axis."""
    norm = math.hypot(v[0], v[1])
    if norm > speed:
        v = v * (speed / norm)
    return np.clip(v, -speed, speed)


def _segment_hits_disc(p, seg, seg_len, c, radius):
    """Fraction t in [0, 1] of the first point of segment p + t * seg inside disc (c, radius), or None.

    A segment starting inside the disc only counts if it heads toward the centre,
    so the pusher can always leave a disc it is in.
    """
    if seg_len < 1e-9:
        return None
    f = p - c
    a = seg @ seg
    bq = 2.0 * (f @ seg)
    cq = f @ f - radius * radius
    if cq <= 0.0:  # starting inside
        return 0.0 if bq < 0.0 else None
    disc = bq * bq - 4.0 * a * cq
    if disc < 0.0:
        return None
    t = (-bq - math.sqrt(disc)) / (2.0 * a)
    return t if 0.0 <= t <= 1.0 else None


__all__ = ["ScriptedExpert"]
