"""`vla demo`: the whole robot-learning loop on the embedded sim, through the ROS graph.

1. Bring up the ``continual`` profile (sim robot, recorder, trainer, shield, perception, language, policy,
   teleop with the scripted corrector).
2. Record demonstrations: the corrector drives every step (``corrector_mode: always``), through the shield,
   and the recorder writes each episode (RecordEpisode goals; one reset per seed).
3. Train through the trainer's TrainPolicy action (a separate process) with ``deploy``: the trainer asks the
   policy node to load the artifact, which it hot-swaps between two control ticks.
4. Evaluate: the policy alone drives episodes on seeds never recorded, with instruction phrasings never trained
   on; the sim's episode events give success.
5. Optionally (``--rounds``), the continual loop: the policy drives while the corrector takes over when it stalls;
   those episodes (interventions flagged per frame) are recorded, the policy is retrained (HG-DAgger) on
   everything, swapped in live and evaluated again.
A report (stdout, JSON and a self-contained HTML page with plots) closes the run.
"""
from __future__ import annotations

import json
import random
import threading
import time
from dataclasses import asdict, dataclass
from datetime import datetime, timezone
from pathlib import Path

from rcl_interfaces.msg import Parameter, ParameterType, ParameterValue
from rcl_interfaces.srv import SetParameters
from rclpy.action import ActionClient

from vla_bringup.bringup import Bringup, BringupError, spec_lookup
from vla_bringup.profile import load_profile, parse_overrides
from vla_tools.readiness import GraphProbe, NotReady, Readiness, wait_ready
from vla_core.stats import wilson_interval
from vla_core.dataset.reader import intervention_summary
from vla_core.paths import workspace_path
from vla_interfaces.action import RecordEpisode, TrainPolicy
from vla_interfaces.msg import EpisodeEvent, PolicyStatus
from vla_interfaces.srv import ResetEpisode
from vla_sim.backends import task_state_names
from vla_sim.demos import DEMO_NOISE, reworded_instruction
from vla_ros import node_qos


class LoopError(RuntimeError):
    """A stage of the loop failed; the message says which and why."""


@dataclass
class LoopOptions:
    demos: int = 200
    eval_episodes: int = 100
    rounds: int = 0
    round_episodes: int = 50
    demo_noise: float = DEMO_NOISE  # m/s per axis on the scripted operator's demonstrations (DART)
    preset: str = "tabletop"
    policy: str = "act"
    train_steps: int = 0           # optimisation steps of the first policy (0: the recipe's train.max_steps)
    round_train_steps: int = 0     # fine-tuning steps per continual round (0: a third of the first policy's)
    train_minutes: float = 30.0    # a safety cap only: the steps decide how long training runs
    round_train_minutes: float = 10.0
    epochs: int = 100_000          # the step count ends training unless this is smaller
    real_time_factor: float = 10.0  # the top speed; in lockstep the graph's latency may hold it lower
    lockstep: bool = True          # the sim steps on the answer to its last frame (sim_robot.lockstep)
    demo_seed: int = 0
    round_seed: int = 50_000
    eval_seed: int = 100_000
    eval_phrasings: str = "heldout"
    ready_timeout: float = 60.0   # s the graph may take to show its sensor topics to the recorder
    out_dir: str = ""
    overrides: tuple[str, ...] = ()         # node parameters, NODE.PARAM=VALUE
    train_overrides: tuple[str, ...] = ()   # vla-train options, KEY=VALUE
    train_config: str = "params/train/tabletop_act.yaml"  # the recipe; train_overrides go on top
    # When the scripted operator takes over in a continual round (teleop corrector_mode): on_error when the policy
    # stalls (the progress heuristic), on_help when the policy asks for help (its uncertainty), or either.
    corrector: str = "on_error"


class LoopClient:
    """The loop's ROS side: goals, resets, parameters, and what it watches."""

    #: The node whose parameters say who drives (set_corrector): teleop with its scripted corrector.
    OPERATOR = "/teleop"

    def __init__(self, node, say):
        self.node, self.say = node, say
        self.record = ActionClient(node, RecordEpisode, "/recorder/record_episode")
        self.train_client = ActionClient(node, TrainPolicy, "/trainer/train_policy")
        self.reset_client = node.create_client(ResetEpisode, "/sim_robot/reset")
        self.teleop_params = node.create_client(SetParameters, f"{self.OPERATOR}/set_parameters")
        self.events: list[EpisodeEvent] = []
        self.event_cv = threading.Condition()
        self.latencies: list[float] = []
        self.status: PolicyStatus | None = None
        node.create_subscription(EpisodeEvent, "/episode/events", self._on_event, node_qos.EVENTS)
        node.create_subscription(PolicyStatus, "/policy/status", self._on_status, 10)
        for client, name in ((self.record, "/recorder/record_episode"), (self.train_client, "/trainer/train_policy")):
            if not client.wait_for_server(timeout_sec=30):
                raise LoopError(f"{name} is not available after 30 s although its node is active: discovery is slow "
                                "or another graph shares this ROS_DOMAIN_ID; set another ROS_DOMAIN_ID and run again")
        # A request sent before the service is discovered is lost, and the call then waits out its timeout.
        for service, name in ((self.reset_client, "/sim_robot/reset"),
                              (self.teleop_params, f"{self.OPERATOR}/set_parameters")):
            if not service.wait_for_service(timeout_sec=30):
                raise LoopError(f"{name} is not available after 30 s although its node is active: discovery is slow "
                                "or another graph shares this ROS_DOMAIN_ID; set another ROS_DOMAIN_ID and run again")

    def _on_event(self, msg: EpisodeEvent) -> None:
        with self.event_cv:
            self.events.append(msg)
            self.event_cv.notify_all()

    def _on_status(self, msg: PolicyStatus) -> None:
        self.status = msg
        self.latencies.extend(float(v) for v in msg.recent_latency_ms)

    @staticmethod
    def _wait(future, timeout: float, what: str):
        done = threading.Event()
        future.add_done_callback(lambda _: done.set())
        if not done.wait(timeout):
            raise LoopError(f"{what}: no answer within {timeout:g} s; its node is dead or starved of CPU (see its "
                            "log; stop other heavy work and run again)")
        return future.result()

    def set_corrector(self, mode: str, noise: float = 0.0) -> None:
        """Who drives (teleop ``corrector_mode``) and the noise on the scripted operator's commands."""
        params = [Parameter(name="corrector_mode",
                            value=ParameterValue(type=ParameterType.PARAMETER_STRING, string_value=mode)),
                  Parameter(name="expert_noise",
                            value=ParameterValue(type=ParameterType.PARAMETER_DOUBLE, double_value=float(noise)))]
        self._set_operator(params)

    def _set_operator(self, params: list[Parameter]) -> None:
        results = self._wait(self.teleop_params.call_async(SetParameters.Request(parameters=params)), 30,
                             f"{self.OPERATOR}/set_parameters").results
        for param, result in zip(params, results):
            if not result.successful:
                raise LoopError(f"{self.OPERATOR.lstrip('/')} refused {param.name}: {result.reason}")

    def reset(self, seed: int, instruction: str = "") -> ResetEpisode.Response:
        response = self._wait(self.reset_client.call_async(ResetEpisode.Request(seed=seed, instruction=instruction)),
                              10, "/sim_robot/reset")
        if not response.success:
            raise LoopError(f"sim reset (seed {seed}) failed: {response.message}")
        return response

    def wait_end(self, episode_index: int, timeout: float) -> EpisodeEvent:
        """The SUCCESS or TIMEOUT event of the sim's episode ``episode_index`` (from its reset response)."""
        deadline = time.monotonic() + timeout
        with self.event_cv:
            while True:
                for msg in self.events:
                    if msg.episode_index == episode_index and msg.event in (EpisodeEvent.SUCCESS,
                                                                             EpisodeEvent.TIMEOUT):
                        self.events.remove(msg)
                        return msg
                left = deadline - time.monotonic()
                if left <= 0:
                    raise LoopError(f"episode {episode_index} did not end within {timeout:g} s")
                self.event_cv.wait(min(left, 0.5))

    def record_episode(self, seed: int, timeout: float) -> tuple[RecordEpisode.Result, EpisodeEvent]:
        handle = self._wait(self.record.send_goal_async(RecordEpisode.Goal(time_limit=0.0)), 30, "RecordEpisode goal")
        if not handle.accepted:
            raise LoopError("the recorder rejected the RecordEpisode goal (already recording?)")
        with self.event_cv:
            self.events.clear()
        started = self.reset(seed)
        end = self.wait_end(started.episode_index, timeout)
        result = self._wait(handle.get_result_async(), timeout, "RecordEpisode result").result
        return result, end

    def train(self, datasets: list[str], policy: str, overrides: list[str], deploy: bool, timeout: float,
              on_feedback) -> TrainPolicy.Result:
        goal = TrainPolicy.Goal(datasets=datasets, policy_type=policy, overrides=overrides, deploy=deploy)
        handle = self._wait(self.train_client.send_goal_async(goal, feedback_callback=lambda m: on_feedback(m.feedback)),
                            30, "TrainPolicy goal")
        if not handle.accepted:
            raise LoopError("the trainer rejected the goal (is a run in progress?)")
        return self._wait(handle.get_result_async(), timeout, "TrainPolicy result").result


class Loop:
    #: The profile brought up, and the client that drives it (the arm's loop, vla_tools.demo, sets its own).
    PROFILE = "continual"
    CLIENT = LoopClient

    def __init__(self, opts: LoopOptions, say=print):
        self.opts, self.say = opts, say
        stamp = datetime.now(timezone.utc).strftime("%Y%m%dT%H%M%S")
        self.stamp = stamp
        self.out = Path(opts.out_dir) if opts.out_dir else workspace_path(f"runs/demo/{stamp}")
        self.stages: list[dict] = []
        self.rounds: list[dict] = []
        self.training: list[dict] = []
        self.episodes: list[dict] = []
        self.corrections: dict[int, dict] = {}  # round -> intervention_summary of its policy-driven episodes
        self.rng = random.Random(opts.eval_seed)

    def _stage(self, name: str, t0: float) -> None:
        self.stages.append({"name": name, "seconds": round(time.monotonic() - t0, 2)})

    def run(self) -> dict:
        o = self.opts
        t_start = time.monotonic()
        self.out.mkdir(parents=True, exist_ok=True)
        sets = [*self._sets(), *o.overrides]
        steps = o.train_steps or recipe_steps(o.train_config)  # before anything starts: a bad recipe fails fast
        profile = load_profile(self.PROFILE, None, parse_overrides(sets), spec_lookup)
        bringup = Bringup(profile, echo=False, say=lambda m: None, log_dir=self.out / "logs")
        self.say(f"bringing up '{profile.name}': {', '.join(n.name for n in profile.nodes)} (logs: {self.out / 'logs'})")
        try:
            t0 = time.monotonic()
            up = bringup.start(timeout=180.0)
            self._stage("bring-up", t0)
            self.say(f"all {len(profile.nodes)} nodes active in {up:.1f} s")
            client = self.CLIENT(bringup.node, self.say)
            self._wait_ready(client, bringup)
            datasets = [self._record_demos(client)]
            artifact = self._train(client, datasets, 0, steps, o.train_minutes, "bc")
            self._evaluate(client, 0, artifact)
            for r in range(1, o.rounds + 1):
                self._record_corrections(client, r)
                artifact = self._train(client, datasets, r, o.round_train_steps or max(1, steps // 3),
                                       o.round_train_minutes, "hg_dagger", init=artifact)
                self._evaluate(client, r, artifact)
            swap = {"max_command_gap_ms": client.status.max_command_gap_ms if client.status else float("nan"),
                    "missed_ticks": int(client.status.missed_ticks) if client.status else -1,
                    "period_ms": 1000.0 / 10.0}
            latencies = client.latencies
        finally:
            t0 = time.monotonic()
            bringup.shutdown()
            self._stage("shutdown", t0)
        return self._report(t_start, swap, latencies)

    def _sets(self) -> list[str]:
        """The profile's parameters for the loop (the user's --set go on top)."""
        o = self.opts
        return [f"sim_robot.real_time_factor={o.real_time_factor}", f"sim_robot.preset={o.preset}",
                f"sim_robot.lockstep={str(o.lockstep).lower()}", "sim_robot.auto_reset=false",
                "teleop.device=corrector", 'teleop.corrector_mode="off"',
                f"recorder.root={self.out / 'data' / 'robot'}", "recorder.follow_episode_events=true",
                *self._environment_state_sets(o.preset)]

    @staticmethod
    def _environment_state_sets(preset: str) -> list[str]:
        """The recorder also keeps where the sim says the instruction's objects are (observation.environment_state,
        from sim/state): the recipe's auxiliary training target (policy.aux_env_state)."""
        names = task_state_names(preset)
        if not names:
            return []
        return ["sim_robot.publish_privileged_state=true", f"recorder.environment_state={','.join(names)}"]

    def _instruction(self, seed: int) -> str:
        """The task of the scene of ``seed`` in a random phrasing of the evaluation's set."""
        return reworded_instruction(self.opts.preset, seed, self.opts.eval_phrasings, self.rng)

    # --- stages ------------------------------------------------------------------------------------------
    def _wait_ready(self, client: LoopClient, bringup: Bringup) -> None:
        """Record nothing before the recorder's camera and joint-state topics have publishers and carry messages:
        on a loaded machine discovery and the first frames can take longer than the recorder's start timeout."""
        o = self.opts
        t0 = time.monotonic()
        readiness, probe = Readiness("/recorder", recorder_reports=True), GraphProbe(bringup.node, "/recorder")

        def kick() -> None:  # without auto_reset the sim publishes nothing once its first episode has ended
            try:
                client.reset(o.demo_seed)
            except LoopError as exc:
                self.say(f"  (a reset to start the camera failed: {exc})")
        self.say("waiting for the recorder's camera and joint-state topics (publishers matched, first messages)")
        try:
            waited = wait_ready(probe, readiness, o.ready_timeout, self.say, kick=kick, logs=str(self.out / "logs"))
        except NotReady as exc:
            raise LoopError(str(exc)) from None
        finally:
            probe.close()
        self._stage("wait for the graph", t0)
        self.say(f"graph ready in {waited:.1f} s: " + ", ".join(sorted(readiness.topics)))

    def _record_demos(self, client: LoopClient) -> str:
        o = self.opts
        t0 = time.monotonic()
        client.set_corrector("always", o.demo_noise)
        self.say(f"recording {o.demos} demonstrations (scripted operator -> shield -> sim; recorder) from seed "
                 f"{o.demo_seed}" + (f", {o.demo_noise:g} m/s noise on its commands" if o.demo_noise else ""))
        saved = tries = 0
        seed = o.demo_seed
        while saved < o.demos:
            if tries >= 2 * o.demos:
                raise LoopError(f"only {saved} of {o.demos} demonstrations were saved in {tries} tries; see the "
                                f"recorder's log in {self.out / 'logs'}")
            result, end = client.record_episode(seed, timeout=120.0)
            tries += 1
            if not result.success and "source topics missing" in result.message:
                # The graph, not the demonstration, failed: the same seed again, so no demonstration is lost.
                self.say(f"  seed {seed}: the recorder missed its sources ({result.message}); recording it again")
                continue
            seed += 1
            if not result.success or end.event != EpisodeEvent.SUCCESS:
                self.say(f"  seed {seed - 1}: not kept ({result.message or 'the demonstration failed'})")
                continue
            saved += 1
            if saved % 10 == 0 or saved == o.demos:
                self.say(f"  {saved}/{o.demos} recorded ({result.frames} frames in the last, "
                         f"{result.dropped_frames} dropped)")
        client.set_corrector("off")
        self._stage("record demonstrations", t0)
        return str(self.out / "data" / "robot")

    def _record_corrections(self, client: LoopClient, r: int) -> None:
        """Episodes driven by the policy, with takeovers flagged per frame, appended to the robot's dataset."""
        o = self.opts
        t0 = time.monotonic()
        when = {"on_error": "when it stalls", "on_help": "when it asks for help",
                "on_error_or_help": "when it stalls or asks for help"}[o.corrector]
        self.say(f"round {r}: the policy drives {o.round_episodes} episodes; the corrector takes over {when}")
        client.set_corrector(o.corrector)
        successes, saved = 0, []
        for i in range(o.round_episodes):
            result, end = client.record_episode(o.round_seed + 1000 * r + i, timeout=120.0)
            successes += end.event == EpisodeEvent.SUCCESS
            if result.success:
                saved.append(result.episode_index)
        client.set_corrector("off")
        self._stage(f"round {r}: record with corrections", t0)
        counts = intervention_summary(self.out / "data" / "robot", saved)
        self.corrections[r] = counts
        self.say(f"round {r}: {successes}/{o.round_episodes} episodes ended in success with the corrector's help; "
                 f"{counts['episodes']} saved, the corrector took over in {counts['episodes_with_takeover']} "
                 f"({counts['takeovers']} takeovers, {counts['intervention_frames']} of {counts['frames']} frames)")

    def _train(self, client: LoopClient, datasets: list[str], r: int, steps: int, minutes: float, algorithm: str,
               init: str = "") -> str:
        o = self.opts
        t0 = time.monotonic()
        overrides = [f"config={workspace_path(o.train_config)}"] if o.train_config else []
        overrides += [f"train.max_steps={steps}", f"train.time_budget_s={minutes * 60:g}", f"train.epochs={o.epochs}",
                      f"algorithm.type={algorithm}",
                     f"output.name=demo-{o.preset}", f"output.version={self.stamp}-r{r}",
                     f"output.run_dir={self.out / 'train' / f'round{r}'}"]
        if init:  # fine-tuning: a third of the recipe's learning rate, so the first steps do not undo the last round
            overrides += [f"train.init_from={init}", "train.lr=0.0003"]
        overrides += list(o.train_overrides)
        self.say(f"training {o.policy} ({algorithm}) on {len(datasets)} dataset(s) for {steps} steps (a safety cap "
                 f"of {minutes:g} min), then hot-swapping it into the running policy node")
        last = [0.0]

        def on_feedback(fb) -> None:
            if time.monotonic() - last[0] > 30.0:
                last[0] = time.monotonic()
                self.say(f"  epoch {fb.epoch}: train loss {fb.train_loss:.4f}, val loss {fb.val_loss:.4f}, "
                         f"about {fb.eta:.0f} s left")
        result = client.train(datasets, o.policy, overrides, True, minutes * 60 + 600, on_feedback)
        self._stage(f"round {r}: train + deploy", t0)
        if not result.success:
            raise LoopError(f"training failed: {result.message}; its log and metrics are in "
                            f"{self.out / 'train' / f'round{r}'}")
        self.say(f"  {result.message}")
        run_dir = self.out / "train" / f"round{r}"
        entry: dict = {"round": r, "planned_steps": steps}
        summary = _read_json(run_dir / "result.json")
        if summary:
            entry.update({k: summary.get(k) for k in ("steps", "steps_per_s", "train_seconds", "stopped_by",
                                                      "samples_per_s", "bf16")})
            self.say(f"  {summary.get('steps')} steps in {summary.get('train_seconds', 0):.0f} s "
                     f"({summary.get('steps_per_s', 0):.2f} steps/s)")
            if summary.get("stopped_by") == "time_budget":
                self.say(f"  warning: the {minutes:g}-minute safety cap cut training short at step "
                         f"{summary.get('steps')} of {steps}: this policy is undertrained and will do worse than the "
                         "recipe's. Raise --train-minutes, or run the demo while the CPU is less busy")
        metrics = run_dir / "metrics.csv"
        if metrics.is_file():
            import csv
            with open(metrics) as f:
                entry["history"] = [{k: _num(v) for k, v in row.items()} for row in csv.DictReader(f)]
        self.training.append(entry)
        return result.artifact

    def _evaluate(self, client: LoopClient, r: int, artifact: str) -> None:
        o = self.opts
        t0 = time.monotonic()
        deadline = time.monotonic() + 30
        while (client.status is None or not client.status.version or client.status.version not in artifact) \
                and time.monotonic() < deadline:
            time.sleep(0.1)
        self.say(f"evaluating {Path(artifact).parent.name}/{Path(artifact).name} on {o.eval_episodes} unseen seeds "
                 f"({o.eval_phrasings} phrasings), the policy alone driving")
        successes = 0
        for i in range(o.eval_episodes):
            seed = o.eval_seed + i
            instruction = self._instruction(seed)
            started = client.reset(seed, instruction)
            end = client.wait_end(started.episode_index, timeout=60.0 + 40.0 / o.real_time_factor)
            ok = end.event == EpisodeEvent.SUCCESS
            successes += ok
            self.episodes.append({"round": r, "seed": seed, "instruction": instruction, "success": bool(ok),
                                  "steps": int(end.steps)})
            if (i + 1) % 10 == 0 and i + 1 < o.eval_episodes:
                self.say(f"  {i + 1}/{o.eval_episodes} evaluated: {successes} successes so far")
        rate = successes / max(1, o.eval_episodes)
        low, high = wilson_interval(successes, o.eval_episodes)
        self.rounds.append({"round": r, "success_rate": rate, "successes": successes, "episodes": o.eval_episodes,
                            "ci95": [round(low, 4), round(high, 4)], "instruction_set": o.eval_phrasings,
                            "interventions": self.corrections.get(r, {}).get("intervention_frames"),
                            "artifact": artifact})
        self._stage(f"round {r}: evaluate", t0)
        self.say(f"round {r}: success {successes}/{o.eval_episodes} = {rate:.0%} on unseen seeds and phrasings "
                 f"(95% interval {low:.0%}-{high:.0%})")

    def _report(self, t_start: float, swap: dict, latencies: list[float]) -> dict:
        import numpy as np
        from vla_tools.report import print_summary, write_loop_report
        lat = np.asarray(latencies) if latencies else np.zeros(0)
        final = self.rounds[-1] if self.rounds else {}
        report = {
            "title": f"vla demo: record -> train -> hot-swap -> evaluate ({self.opts.preset})",
            "created": datetime.now(timezone.utc).isoformat(timespec="seconds"),
            "config": asdict(self.opts), "stages": self.stages, "rounds": self.rounds, "training": self.training,
            "corrections": [{"round": r, **c} for r, c in sorted(self.corrections.items())],
            "latency_ms": [round(float(v), 3) for v in lat.tolist()], "swap": swap, "episodes": self.episodes,
            "summary": {"success_rate": final.get("success_rate"), "eval_episodes": final.get("episodes"),
                        "latency_p50_ms": float(np.percentile(lat, 50)) if lat.size else None,
                        "latency_p99_ms": float(np.percentile(lat, 99)) if lat.size else None,
                        "max_command_gap_ms": swap["max_command_gap_ms"], "missed_ticks": swap["missed_ticks"],
                        "total_s": round(time.monotonic() - t_start, 1), "artifact": final.get("artifact"),
                        "ci95": final.get("ci95"), "successes": final.get("successes"),
                        "train_steps": [t.get("steps") for t in self.training],
                        "train_steps_per_s": [t.get("steps_per_s") for t in self.training],
                        "train_cut_short": any(t.get("stopped_by") == "time_budget" for t in self.training)},
        }
        (self.out / "report.json").write_text(json.dumps(report, indent=1, default=str))
        html = write_loop_report(self.out / "report.html", report)
        print_summary(report, say=self.say)
        for t in self.training:
            if t.get("steps") is not None:
                self.say(f"round {t['round']} training: {t['steps']} of {t['planned_steps']} steps, "
                         f"{t.get('steps_per_s') or 0:.2f} steps/s" + (" (CUT SHORT by the time cap)"
                                                                      if t.get("stopped_by") == "time_budget" else ""))
        self.say(f"report: {html}")
        report["report_html"] = str(html)
        return report


def _fail(reason: str, loop: Loop, say) -> int:
    """A failed run ends with its reason as the last line (after the JSON line that tools read)."""
    logs = loop.out / "logs"
    print(json.dumps({"demo": "loop", "error": reason, "logs": str(logs)}), flush=True)
    say(f"error: vla demo failed: {reason}" + ("" if str(logs) in reason else f" (node logs: {logs})"))
    return 1


def recipe_steps(train_config: str) -> int:
    """The recipe's ``train.max_steps``; raises LoopError when it has none (the demo trains by steps)."""
    import yaml
    if not train_config:
        raise LoopError("no training recipe (--train-config '') and no --steps: pass --steps N")
    path = workspace_path(train_config)
    try:
        steps = int(((yaml.safe_load(path.read_text()) or {}).get("train") or {}).get("max_steps") or 0)
    except (OSError, ValueError, TypeError, AttributeError) as exc:
        raise LoopError(f"cannot read train.max_steps from the recipe {path}: {exc}; fix the file or pass --steps")
    if steps < 1:
        raise LoopError(f"the recipe {path} sets no train.max_steps; add one or pass --steps N")
    return steps


def _read_json(path: Path) -> dict:
    try:
        return json.loads(path.read_text())
    except (OSError, ValueError):
        return {}


def _num(value: str):
    try:
        return float(value)
    except (TypeError, ValueError):
        return value


def corrector_problem(opts: LoopOptions) -> str:
    """Why the loop's corrector cannot work as asked, or ''. Help requests need a policy with an uncertainty
    output (policy.ensemble_heads) and a help threshold on the policy node."""
    if opts.corrector not in ("on_error", "on_help", "on_error_or_help"):
        return f"--corrector {opts.corrector!r} is not one of on_error, on_help, on_error_or_help"
    if opts.corrector == "on_error":
        return ""
    heads = [o for o in opts.train_overrides if o.split("=", 1)[0].strip() == "policy.ensemble_heads"]
    threshold = [o for o in opts.overrides if o.split("=", 1)[0].strip() == "policy.help_threshold"]
    missing = []
    if not heads or heads[-1].split("=", 1)[1].strip() in ("0", "1"):
        missing.append("--train-set policy.ensemble_heads=5 (a policy with an uncertainty output)")
    try:
        value = float(threshold[-1].split("=", 1)[1]) if threshold else 0.0
    except ValueError:
        value = 0.0
    if not value > 0:
        missing.append("--set policy.help_threshold=T (> 0, in the artifact's uncertainty units; docs/uncertainty.md "
                       "says how to calibrate it)")
    if missing:
        return f"--corrector {opts.corrector} answers the policy's help requests: add " + " and ".join(missing)
    return ""


def run_loop(args, say=print, loop_class=None) -> int:
    if loop_class is None and args.preset == "arm":  # the arm's loop: its profile, expert and recipe
        from vla_tools.demo import ArmLoop, arm_args
        try:
            args = arm_args(args)
        except ValueError as exc:
            say(f"error: {exc}")
            return 2
        loop_class = ArmLoop
    noise = DEMO_NOISE if args.demo_noise is None else args.demo_noise
    opts = LoopOptions(demos=args.demos, eval_episodes=args.eval_episodes, rounds=args.rounds,
                       round_episodes=args.round_episodes, demo_noise=noise, preset=args.preset, policy=args.policy,
                       train_steps=args.steps or 0, round_train_steps=args.round_steps or 0,
                       train_minutes=args.train_minutes, round_train_minutes=args.round_train_minutes,
                       epochs=args.epochs, real_time_factor=args.real_time_factor, demo_seed=args.seed,
                       lockstep=getattr(args, "lockstep", True),
                       eval_phrasings=args.eval_phrasings, out_dir=args.out or "", overrides=tuple(args.set or ()),
                       train_overrides=tuple(args.train_set or ()), train_config=args.train_config,
                       ready_timeout=getattr(args, "ready_timeout", LoopOptions.ready_timeout),
                       corrector=getattr(args, "corrector", LoopOptions.corrector))
    if not 0.0 <= opts.demo_noise <= 1.0:
        say(f"error: --demo-noise {opts.demo_noise:g} m/s is outside 0..1; 0 records clean demonstrations")
        return 2
    problem = corrector_problem(opts)
    if problem:
        say(f"error: {problem}")
        return 2
    loop = (loop_class or Loop)(opts, say)
    try:
        report = loop.run()
    except (LoopError, BringupError) as exc:
        return _fail(str(exc), loop, say)
    except Exception as exc:  # a bug: keep the traceback, and still end on the reason
        import traceback
        traceback.print_exc()
        return _fail(f"unexpected {type(exc).__name__}: {exc} (a bug in vla demo; please report it with the logs)",
                     loop, say)
    summary = report["summary"]
    print(json.dumps({"demo": "loop", **summary, "report": report["report_html"]}, default=str), flush=True)
    return 0
