"""The online learner of HIL-SERL (no ROS): control-tick steps in, transitions, RLPD replay, SAC updates, and a
new actor artifact every N updates.

:class:`TransitionAssembler` turns what the robot did at each control tick (the observation, the action the
shield really sent, whether the operator was commanding) and the episode's end (success or not) into
transitions: step t and step t+1 make ``(obs_t, action_t, reward, obs_t+1, done)``. Reward 1 and ``done`` on the
transition that ends in success (the sim's SUCCESS event, or a reward model's success); a timeout or an abort
ends the chain without ``done`` (the episode was cut, not finished: no transition is made across it). Where the
operator (a person, or the scripted corrector in sim) took over, the action is the operator's, because it is what
the shield sent, and the transition is flagged ``intervention``.

:class:`OnlineLearner` keeps the RLPD buffers (HIL-SERL: operator takeovers go to both the online and the
demonstration buffer), refuses a bad transition (counted by field, nothing stored), runs SAC updates once
``warmup`` online transitions are in, counts a diverged update (weights kept, vla_trainer.rl.sac.DivergedUpdate),
and says when an export is due. The ROS shell (vla_trainer.rl_learner_node) only converts messages and calls these.
"""
from __future__ import annotations

import collections
import re
import time
from dataclasses import dataclass

import numpy as np

from vla_trainer.rl.replay import ReplayBuffer, RLPDSampler, TransitionSpec
from vla_trainer.rl.sac import DivergedUpdate, SACAgent


@dataclass(frozen=True)
class OnlineConfig:
    """How the learner turns transitions into updates and updates into deployed versions."""

    capacity: int = 100_000        # online replay (a ring)
    warmup: int = 64               # online transitions before the first update
    updates_per_step: float = 1.0  # SAC updates per transition received (the update-to-data ratio)
    export_every: int = 50         # updates between two exported (and deployed) actors
    success_reward: float = 1.0

    def __post_init__(self):
        problems = []
        if self.capacity < 1 or self.warmup < 1 or self.export_every < 1:
            problems.append(f"capacity {self.capacity}, warmup {self.warmup} and export_every {self.export_every} "
                            "must be at least 1")
        if not (np.isfinite(self.updates_per_step) and self.updates_per_step > 0):
            problems.append(f"updates_per_step {self.updates_per_step} must be finite and > 0")
        if not np.isfinite(self.success_reward):
            problems.append(f"success_reward {self.success_reward} must be finite")
        if problems:
            raise ValueError("online learner: " + "; ".join(problems))


@dataclass
class Step:
    """One control tick: camera -> (H, W, 3) uint8, state (S,), instruction embedding (L,), the action the shield
    sent (D,), and whether the operator was commanding."""

    images: dict
    state: np.ndarray
    language: np.ndarray
    action: np.ndarray
    intervention: bool


def transition(prev: Step, nxt_images: dict, nxt_state: np.ndarray, reward: float, done: bool) -> dict:
    """A batch of one transition (the flat layout of vla_trainer.rl.replay) from ``prev`` to the next observation."""
    return {"images": {c: np.asarray(v)[None] for c, v in prev.images.items()},
            "next_images": {c: np.asarray(v)[None] for c, v in nxt_images.items()},
            "state": np.asarray(prev.state)[None], "next_state": np.asarray(nxt_state)[None],
            "language": np.asarray(prev.language)[None], "action": np.asarray(prev.action)[None],
            "reward": np.array([reward]), "done": np.array([done]), "intervention": np.array([prev.intervention])}


class TransitionAssembler:
    """Steps of one episode at a time -> transitions (see the module's docstring)."""

    def __init__(self, success_reward: float = 1.0):
        self.success_reward = float(success_reward)
        self._prev: Step | None = None

    def step(self, step: Step) -> dict | None:
        """The transition from the previous step to this one (reward 0, not done), or None at an episode's start."""
        prev, self._prev = self._prev, step
        if prev is None:
            return None
        return transition(prev, step.images, step.state, 0.0, False)

    def end(self, success: bool, images: dict | None = None, state: np.ndarray | None = None) -> dict | None:
        """The episode ended. On success, the last step's transition into the final observation (``images``,
        ``state``; the last step's own when not given) with the success reward and ``done``; otherwise nothing
        (a cut episode is not a terminal state). Either way the next step starts a new chain."""
        prev, self._prev = self._prev, None
        if prev is None or not success:
            return None
        return transition(prev, prev.images if images is None else images, prev.state if state is None else state,
                          self.success_reward, True)

    def reset(self) -> None:
        """Forget the chain (an input went stale, the robot stopped): no transition spans the gap."""
        self._prev = None


def refusal_field(message: str) -> str:
    """The field a replay refusal names ('state', 'images.top', ...), or 'other'."""
    match = re.search(r"field '([^']+)'", message)
    return match.group(1) if match else "other"


class OnlineLearner:
    """RLPD replay and SAC updates on transitions as they arrive; thread-compatible (one caller at a time)."""

    def __init__(self, agent: SACAgent, config: OnlineConfig = OnlineConfig(), demos: ReplayBuffer | None = None,
                 seed: int = 0):
        self.agent, self.config = agent, config
        spec: TransitionSpec = agent.spec
        self.online = ReplayBuffer(spec, config.capacity)
        if demos is not None and demos.spec != spec:
            raise ValueError(f"demonstrations {demos.spec} do not fit the actor's {spec}; record them under the same "
                             "robot contract and image size")
        self.demos = ReplayBuffer(spec, config.capacity + (len(demos) if demos is not None else 0))
        if demos is not None and len(demos):
            self.demos.add(demos.gather(np.arange(len(demos))))
        self.rng = np.random.default_rng(seed)
        self.counts: collections.Counter = collections.Counter()
        self.refused: collections.Counter = collections.Counter()  # field -> transitions refused
        self.last_refusal = ""
        self.last_metrics: dict = {}
        self._credit = 0.0  # updates owed by the transitions received (updates_per_step each)
        self._since_export = 0
        self.update_seconds = 0.0

    def add(self, batch: dict | None) -> bool:
        """Store a transition batch (all or nothing); a bad one is refused, counted by field and remembered."""
        if batch is None:
            return False
        try:
            n = self.online.add(batch)
        except ValueError as exc:
            self.refused[refusal_field(str(exc))] += 1
            self.last_refusal = str(exc)
            return False
        if bool(np.any(batch["intervention"])):
            self.demos.add(batch)  # HIL-SERL: the operator's correction is a demonstration too
            self.counts["interventions"] += n
        self.counts["transitions"] += n
        self.counts["successes"] += int(np.sum(batch["done"]))
        if len(self.online) >= self.config.warmup:
            self._credit += n * self.config.updates_per_step
        return True

    @property
    def pending_updates(self) -> int:
        return int(self._credit)

    def forgive(self, most: int) -> int:
        """Cap the owed updates at ``most`` (a CPU that falls behind does not catch up forever); returns how many
        were forgiven."""
        extra = max(0, self.pending_updates - int(most))
        self._credit -= extra
        return extra

    def sample(self) -> dict:
        """An RLPD batch: the configured share from demonstrations (while there are any), the rest online."""
        share = self.agent.config.demo_fraction if len(self.demos) else 0.0
        return RLPDSampler(self.demos, self.online, share).sample(self.agent.config.batch_size, self.rng)

    def update(self) -> dict | None:
        """One SAC update if one is owed; its metrics, or None (nothing owed, or the update diverged and was not
        applied: counted as ``diverged``, the weights kept)."""
        if self._credit < 1.0:
            return None
        self._credit -= 1.0
        t0 = time.perf_counter()
        try:
            metrics = self.agent.update(self.sample())
        except DivergedUpdate as exc:
            self.counts["diverged"] += 1
            self.last_refusal = f"update not applied: {exc}"
            return None
        finally:
            self.update_seconds += time.perf_counter() - t0
        self.counts["updates"] += 1
        self._since_export += 1
        self.last_metrics = metrics
        return metrics

    def export_due(self) -> bool:
        return self._since_export >= self.config.export_every

    def exported(self) -> None:
        self._since_export = 0
        self.counts["exports"] += 1


def demonstrations(paths: list[str], spec: TransitionSpec, encode, cache_dir: str = "") -> tuple[ReplayBuffer, dict]:
    """Demonstration transitions from recorded datasets (vla_trainer.data), for the learner's RLPD share, and the
    data's statistics (``state_mean``/``state_std``/``action_mean``/``action_std``) for the actor's normaliser.
    ``encode(text) -> (L,)`` embeds each instruction with the encoder the live graph uses. Raises ValueError when
    the recordings do not fit ``spec`` (cameras, image size, state or action size)."""
    from vla_trainer.data import DataConfig, LanguageTable, load_training_data
    from vla_trainer.rl.replay import buffer_from_episodes
    data = load_training_data(DataConfig(paths=tuple(paths), val_fraction=0.0, cache_dir=cache_dir))
    first = data.episodes[0]
    found = TransitionSpec(tuple(data.cameras), tuple(data.image_size), int(first.state.shape[1]), spec.language_dim,
                           int(first.action.shape[1]))
    if found != spec:
        raise ValueError(f"the demonstrations in {', '.join(paths)} have {found}, the actor takes {spec}; record them "
                         "under the same robot contract")
    language = LanguageTable(data.instructions, "none", encode)
    stats = {k: [float(v) for v in np.asarray(data.stats()[k])] for k in ("state_mean", "state_std", "action_mean",
                                                                         "action_std")}
    return buffer_from_episodes(data.episodes, language, spec), stats


def learner_agent(contract, p: dict, encode=None, cache_dir: str = ""):
    """The SAC agent the learner node builds from its parameters ``p`` (vla_trainer.rl_params) and the robot
    ``contract``, with its demonstrations: ``(agent, demos or None)``. ``p["demos"]`` (dataset paths, resolved by
    the caller) fill the RLPD share and set the actor's normaliser; their instructions are embedded with
    ``encode(text) -> (384,)``. Used by the node and by :mod:`vla_trainer.rl.pretrain`, so that weights pretrained
    offline load into the node's agent (same shapes, same normaliser). ``p["initial_weights"]`` is not read here."""
    from vla_trainer.rl.networks import SACNetConfig
    from vla_trainer.rl.replay import TransitionSpec
    from vla_trainer.rl.sac import SACAgent, SACConfig
    cams = contract.cameras
    sizes = {(cam.height, cam.width) for cam in cams}
    if len(sizes) != 1:
        raise ValueError(f"the contract's cameras have sizes {sorted(sizes)}; the actor takes one image size")
    low, high = np.asarray(contract.action.low), np.asarray(contract.action.high)
    image_size = sizes.pop()
    stats = {"action_mean": list((low + high) / 2), "action_std": list((high - low) / 2)}
    demos = None
    paths = [str(d) for d in p["demos"] if d]
    if paths:
        if encode is None:
            raise ValueError("demonstrations need an instruction encoder (encode)")
        spec = TransitionSpec(tuple(cam.name for cam in cams), image_size, len(contract.state.names), 384,
                              contract.action.dim)
        demos, stats = demonstrations(paths, spec, encode, cache_dir)
    net = SACNetConfig(cameras=tuple(cam.name for cam in cams), image_size=image_size,
                       state_dim=len(contract.state.names), language_dim=384, action_dim=contract.action.dim,
                       action_low=tuple(low), action_high=tuple(high), **stats, hidden=p["hidden"],
                       channels=p["channels"], image_downsample=p["image_downsample"])
    agent = SACAgent(net, SACConfig(batch_size=p["batch_size"], demo_fraction=p["demo_fraction"],
                                    discount=p["discount"], seed=p["seed"]))
    return agent, demos
