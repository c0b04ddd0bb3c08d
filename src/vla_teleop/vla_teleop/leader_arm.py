"""Leader-follower teleoperation (no ROS): a leader arm's joint_states, mirrored onto the follower's command
(LeRobot's leader arm; ALOHA's puppets).

Joints are matched by name: each of the follower's action names (the contract's, gripper included) takes the
leader's joint of the same name, or the one ``leader_joint_map`` maps onto it (``"leader=follower"``; ``"name="``
ignores a leader joint the follower lacks). The leader's joint_states must be in the follower's units (rad, and
the gripper's opening in m): a leader whose gripper reports another unit converts in its driver. A leader whose
names do not match (a follower joint it lacks, a joint the follower does not have, a name twice) is refused with
the mismatch listed; a stale leader stops the device (no command: the shield holds the arm).
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import ClassVar, Mapping, Sequence

import numpy as np

from vla_teleop.devices import TeleopDevice, register_device
from vla_teleop.joint_commands import JointLimits


class LeaderMismatch(ValueError):
    """The leader's joint names do not match the follower's: ``missing`` follower joints the leader lacks,
    ``extra`` leader joints the follower does not have, ``repeated`` leader names given more than once."""

    def __init__(self, missing: Sequence[str], extra: Sequence[str], repeated: Sequence[str], follower: Sequence[str]):
        self.missing, self.extra, self.repeated = list(missing), list(extra), list(repeated)
        parts = []
        if self.missing:
            parts.append(f"missing {self.missing} (the follower's joints the leader does not publish)")
        if self.extra:
            parts.append(f"extra {self.extra} (leader joints the follower does not have)")
        if self.repeated:
            parts.append(f"repeated {self.repeated}")
        super().__init__(f"the leader's joint names do not match the follower's {list(follower)}: "
                         + "; ".join(parts) + "; name the joints alike, or map them with leader_joint_map "
                         "['leader_name=follower_name', 'unused_leader_joint=']")


@dataclass(frozen=True)
class LeaderMapping:
    """Leader joint name -> follower action name. ``renames`` holds the explicit pairs (a follower name of ''
    ignores that leader joint); every other leader name maps onto itself."""

    follower: tuple[str, ...]
    renames: Mapping[str, str] = field(default_factory=dict)

    @classmethod
    def parse(cls, follower: Sequence[str], pairs: Sequence[str]) -> "LeaderMapping":
        """From ``leader_joint_map`` entries ``"leader=follower"`` (empty entries skipped). Raises ValueError
        naming a malformed entry, a follower name that is not an action name, or a name mapped twice."""
        follower = tuple(follower)
        renames: dict[str, str] = {}
        problems = []
        targets: list[str] = []
        for pair in (p.strip() for p in pairs):
            if not pair:
                continue
            leader, sep, name = (s.strip() for s in pair.partition("="))
            if not sep or not leader:
                problems.append(f"{pair!r} is not 'leader_name=follower_name' (or 'leader_name=' to ignore it)")
            elif leader in renames:
                problems.append(f"leader joint {leader!r} is mapped twice")
            elif name and name not in follower:
                problems.append(f"{pair!r} maps onto {name!r}, which is not one of the follower's joints "
                                f"{list(follower)}")
            else:
                renames[leader] = name
                if name:
                    targets.append(name)
        twice = sorted({n for n in targets if targets.count(n) > 1})
        if twice:
            problems.append(f"follower joints {twice} are mapped from more than one leader joint")
        if problems:
            raise ValueError("leader_joint_map: " + "; ".join(problems))
        return cls(follower, renames)

    def order(self, leader_names: Sequence[str]) -> np.ndarray:
        """Index into the leader's positions of each follower joint, in follower order.

        Raises:
            LeaderMismatch: listing the missing, extra and repeated names.
        """
        mapped = [self.renames.get(n, n) for n in leader_names]
        repeated = sorted({n for n in leader_names if list(leader_names).count(n) > 1})
        index = {m: i for i, m in enumerate(mapped) if m}
        missing = [n for n in self.follower if n not in index]
        extra = [n for n, m in zip(leader_names, mapped) if m and m not in self.follower]
        dup_targets = sorted({m for m in mapped if m and mapped.count(m) > 1} - set(repeated))
        if missing or extra or repeated or dup_targets:
            raise LeaderMismatch(missing, extra, repeated + dup_targets, self.follower)
        return np.array([index[n] for n in self.follower], dtype=np.intp)


@register_device("leader_arm")
@dataclass
class LeaderArmDevice(TeleopDevice):
    """Mirrors the leader's joint positions onto the follower's command (the contract's mode and limits apply:
    absolute targets clipped to ``low``/``high`` and counted, or increments from the follower's measured joints).
    No command without a fresh leader message (``timeout`` s), or in delta mode without fresh joint_states."""

    PARAMETERS: ClassVar[dict[str, str]] = {"input_timeout": "timeout"}
    INPUT: ClassVar[str] = "leader"
    COMMANDS_JOINTS: ClassVar[bool] = True

    mapping: LeaderMapping
    limits: JointLimits
    timeout: float = 0.5
    _target: np.ndarray | None = field(default=None, repr=False)
    _stamp: float = field(default=-np.inf, repr=False)
    _measured: np.ndarray | None = field(default=None, repr=False)
    _measured_at: float = field(default=-np.inf, repr=False)
    _names: tuple = field(default=(), repr=False)
    _order: np.ndarray | None = field(default=None, repr=False)

    def needs_joint_states(self) -> bool:
        return self.limits.mode == "delta"  # an increment is taken from the follower's measured joints

    def observe_leader(self, names: Sequence[str], positions: Sequence[float], now: float) -> None:
        """Keep the leader's positions (joint_states ``name`` and ``position``) received at ``now`` (s).

        Raises:
            LeaderMismatch: other joint names (nothing kept).
            ValueError: a position per name missing, or a non-finite position (nothing kept).
        """
        names = tuple(names)
        if names != self._names:
            self._order, self._names = self.mapping.order(names), names
        q = np.asarray(positions, dtype=np.float64)
        if q.shape != (len(names),):
            raise ValueError(f"leader joint_states has {q.size} positions for {len(names)} names; send one per joint")
        target = q[self._order]
        if not np.all(np.isfinite(target)):
            raise ValueError(f"leader joint positions {target.tolist()} are not finite")
        self._target, self._stamp = target, now

    def observe_joints(self, positions: np.ndarray, now: float) -> None:
        """The follower's measured positions (n,) in action order (delta mode). Raises ValueError if unusable."""
        q = np.asarray(positions, dtype=np.float64)
        if q.shape != (self.limits.dim,) or not np.all(np.isfinite(q)):
            raise ValueError(f"joint positions {q.tolist()} need {self.limits.dim} finite values")
        self._measured, self._measured_at = q, now

    def command(self, now: float) -> np.ndarray | None:
        if self._target is None or now - self._stamp > self.timeout:
            return None
        measured = None
        if self.limits.mode == "delta":
            if self._measured is None or now - self._measured_at > self.timeout:
                return None
            measured = self._measured
        return self.limits.command(self._target, measured)

    def reset(self) -> None:
        self._target, self._stamp, self._measured, self._measured_at = None, -np.inf, None, -np.inf
