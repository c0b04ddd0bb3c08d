"""`vla demo --expert-only`: bring the simulated robot up, let the scripted expert drive N episodes through the
ROS graph, and report the success rate and timings. `vla demo --preset arm`: the whole loop of vla_tools.loop on the
simulated arm (:class:`ArmLoop`)."""
from __future__ import annotations

import argparse
import json
import random
import threading
import time

from vla_bringup.bringup import Bringup, BringupError, spec_lookup
from vla_bringup.profile import load_profile, parse_overrides
from vla_interfaces.msg import EpisodeEvent
from vla_ros import node_qos


def run_demo(args, say=print) -> int:
    t_start = time.monotonic()
    sets = [f"sim_robot.real_time_factor={args.real_time_factor}", f"sim_robot.seed={args.seed}", *(args.set or [])]
    profile = load_profile(args.profile, None, parse_overrides(sets), spec_lookup)
    bringup = Bringup(profile, echo=False, say=lambda m: None)
    ends: list[EpisodeEvent] = []
    done = threading.Event()

    def on_event(msg: EpisodeEvent) -> None:
        if msg.event in (EpisodeEvent.SUCCESS, EpisodeEvent.TIMEOUT) and len(ends) < args.episodes:
            ends.append(msg)
            rate = sum(e.event == EpisodeEvent.SUCCESS for e in ends) / len(ends)
            mark = "success" if msg.event == EpisodeEvent.SUCCESS else "timeout"
            say(f"episode {len(ends):3d}/{args.episodes}  seed {msg.seed:5d}  {mark:7s}  "
                f"{msg.sim_time:5.1f} s sim  running success {rate:6.1%}  \"{msg.instruction}\"")
            if len(ends) >= args.episodes:
                done.set()

    say(f"bringing up profile '{profile.name}' ({', '.join(n.name for n in profile.nodes)}); logs: {bringup.log_dir}")
    failure = None
    try:
        up = bringup.start(timeout=120.0)
        say(f"all nodes active in {up:.2f} s; the scripted expert drives {args.episodes} episodes at "
            f"{args.real_time_factor:g}x real time")
        t_episodes = time.monotonic()
        bringup.node.create_subscription(EpisodeEvent, "/episode/events", on_event, node_qos.EVENTS)
        stop = threading.Event()
        watcher = threading.Thread(target=lambda: stop.set() if done.wait(args.timeout) or True else None,
                                   daemon=True)
        watcher.start()
        failure = bringup.supervise(stop)
        episodes_s = time.monotonic() - t_episodes
        if failure is None and not done.is_set():
            failure = f"only {len(ends)} of {args.episodes} episodes finished within {args.timeout:g} s"
    except BringupError as exc:
        failure, up, episodes_s = str(exc), float("nan"), 0.0
    finally:
        t_down = time.monotonic()
        bringup.shutdown()
        down = time.monotonic() - t_down
    if failure:
        say(f"error: vla demo --expert-only failed: {failure} (node logs: {bringup.log_dir})")
        return 1
    successes = sum(e.event == EpisodeEvent.SUCCESS for e in ends)
    sim_seconds = sum(e.sim_time for e in ends)
    report = {
        "demo": "scripted-expert", "profile": profile.name, "episodes": len(ends), "successes": successes,
        "success_rate": round(successes / len(ends), 4), "mean_episode_sim_s": round(sim_seconds / len(ends), 2),
        "achieved_real_time_factor": round(sim_seconds / max(episodes_s, 1e-9), 2),
        "bringup_s": round(up, 2), "episodes_s": round(episodes_s, 2), "shutdown_s": round(down, 2),
        "total_s": round(time.monotonic() - t_start, 2),
    }
    say(f"success rate {successes}/{len(ends)} = {report['success_rate']:.1%} on seeds {args.seed}..; "
        f"bring-up {up:.1f} s, episodes {episodes_s:.1f} s ({report['achieved_real_time_factor']:.1f}x real time), "
        f"shutdown {down:.1f} s")
    print(json.dumps(report), flush=True)
    return 0


# ---- vla demo --preset arm --------------------------------------------------------------------------------------
from rcl_interfaces.msg import Parameter, ParameterType, ParameterValue  # noqa: E402

from vla_tools.loop import Loop, LoopClient, LoopError  # noqa: E402

ARM_PRESET = "arm"
ARM_RECIPE = "params/train/arm_act.yaml"
TABLETOP_RECIPE = "params/train/tabletop_act.yaml"
#: DART noise on the arm expert's demonstrations by default (rad per joint); --demo-noise sets it.
ARM_DEMO_NOISE = 0.0


def arm_args(args: argparse.Namespace) -> argparse.Namespace:
    """``vla demo`` flags for the arm: its recipe (params/train/arm_act.yaml) where the tabletop's default was left,
    its noise default (rad per joint)."""
    out = argparse.Namespace(**vars(args))
    if out.train_config == TABLETOP_RECIPE:
        out.train_config = ARM_RECIPE
    if out.demo_noise is None:
        out.demo_noise = ARM_DEMO_NOISE
    return out


class ArmLoopClient(LoopClient):
    """The arm's loop client: the scripted expert (sim_expert) drives the demonstrations through the shield, and
    corrects the policy in the continual rounds."""

    OPERATOR = "/sim_expert"

    def set_corrector(self, mode: str, noise: float = 0.0) -> None:
        """"always": the expert drives (with ``noise`` rad of DART noise per joint); "on_error": the policy drives
        and the expert takes over when it stalls; "off": the expert only watches."""
        if mode not in ("always", "on_error", "off"):
            raise LoopError(f"the arm's expert cannot '{mode}': it drives (always), corrects (on_error) or watches "
                            "(off)")
        self._set_operator([
            Parameter(name="enabled", value=ParameterValue(type=ParameterType.PARAMETER_BOOL,
                                                            bool_value=mode != "off")),
            Parameter(name="mode", value=ParameterValue(type=ParameterType.PARAMETER_STRING,
                                                         string_value="on_error" if mode == "on_error" else "always")),
            Parameter(name="expert_noise", value=ParameterValue(type=ParameterType.PARAMETER_DOUBLE,
                                                                 double_value=float(noise)))])


class ArmLoop(Loop):
    """record -> train -> hot-swap -> evaluate on the simulated arm through the ROS graph (params/profiles/
    arm_demo.yaml): the scripted expert records demonstrations through the shield (both cameras and the joint
    command sent), the trainer trains a 2-camera policy and deploys it, and the policy alone drives the evaluation
    episodes on unseen seeds and phrasings."""

    PROFILE = "arm_demo"
    CLIENT = ArmLoopClient

    def _sets(self) -> list[str]:
        o = self.opts
        return [f"sim_robot.real_time_factor={o.real_time_factor}", "sim_robot.auto_reset=false",
                f"sim_robot.lockstep={str(o.lockstep).lower()}",
                "sim_expert.enabled=false", f"recorder.root={self.out / 'data' / 'robot'}",
                "recorder.follow_episode_events=true", *self._environment_state_sets("arm")]

    def _instruction(self, seed: int) -> str:
        return arm_reworded_instruction(seed, self.opts.eval_phrasings, self.rng)


def arm_reworded_instruction(seed: int, phrasings: str, rng: random.Random) -> str:
    """The arm task of the scene of ``seed`` (its skill and colours) in a random phrasing of ``phrasings``; the
    sim robot follows it on a reset with the same seed (the scene is the seed's)."""
    import gymnasium as gym

    import vla_sim.envs  # noqa: F401 - registers the envs
    from vla_sim.backends import PRESETS
    from vla_sim.envs.arm_instructions import arm_templates, format_arm_instruction, parse_arm_instruction
    preset = PRESETS[ARM_PRESET]
    env = gym.make(preset["env_id"], **preset.get("env_kwargs", {}))
    try:
        _, info = env.reset(seed=seed)
    finally:
        env.close()
    task = parse_arm_instruction(info["instruction"])
    return format_arm_instruction(rng.choice(arm_templates(task.skill, phrasings)), task)
