"""The trainer lifecycle node: a ``~/train_policy`` action (vla_interfaces/TrainPolicy) that trains in a child process.

Goal: datasets, policy type, ``key=value`` overrides, deploy. Feedback: epoch, losses, progress, ETA, from the
child's JSON lines. Result: the artifact directory. Cancel stops the child (SIGINT, then SIGKILL); a crash or an
out-of-memory kill aborts the goal with the reason, and the node keeps serving. With ``deploy``, a trained
artifact goes to ``<policy_node>/load_policy``, which verifies it and hot-swaps it between two control ticks.

One goal at a time. Deactivating does not stop a run in progress (training never moves the robot) but an
inactive node accepts no goal and deploys nothing.

With ``retrain_every`` K > 0 the node also starts runs itself: after every K episodes saved in
``retrain_datasets`` since its last run (vla_trainer.retrain), it trains on them with ``retrain_overrides``
(HG-DAgger by default), fine-tuning its last artifact, and deploys the result: the continual loop on the robot,
with the operator's takeovers as the only input. Goals that arrive meanwhile are rejected, as during any run.
"""
from __future__ import annotations

import os
import threading
import time

from diagnostic_msgs.msg import DiagnosticArray, DiagnosticStatus, KeyValue
from rclpy.action import ActionServer, CancelResponse, GoalResponse
from rclpy.task import Future

from vla_core.paths import workspace_path
from vla_interfaces.action import TrainPolicy
from vla_interfaces.srv import LoadPolicy
from vla_ros.node_base import ManagedNode, main_for
from vla_ros.services import ServiceCallFailed, call_and_wait
from vla_trainer.job import TrainingJob, training_argv
from vla_trainer.retrain import RetrainTrigger
from vla_trainer.trainer_params import TRAINER_PARAMS


class _OwnRun:
    """What a run started by ``retrain_every`` has instead of a goal handle: the same request, no client."""

    is_cancel_requested = False

    def __init__(self, request: TrainPolicy.Goal):
        self.request = request

    def publish_feedback(self, feedback) -> None:
        pass

    def abort(self) -> None:
        pass

    def canceled(self) -> None:
        pass

    def succeed(self) -> None:
        pass


class TrainerNode(ManagedNode):
    PARAMS = TRAINER_PARAMS

    def __init__(self, **kwargs):
        super().__init__("trainer", **kwargs)
        self._action = None
        self._deploy_client = None
        self._diag_pub = None
        self._job: TrainingJob | None = None
        self._busy = threading.Lock()
        self.counts = {"goals": 0, "succeeded": 0, "failed": 0, "cancelled": 0, "rejected": 0, "deployed": 0,
                       "own_runs": 0}
        self._trigger: RetrainTrigger | None = None
        self._retrain_timer = None
        self.last = {"message": "", "artifact": "", "epoch": 0, "train_loss": float("nan")}

    def configure(self, p: dict) -> None:
        self._action = ActionServer(self, TrainPolicy, "~/train_policy", self._execute,
                                    goal_callback=self.guard(self._on_goal, "~/train_policy goal"),
                                    cancel_callback=lambda _: CancelResponse.ACCEPT)
        self._deploy_client = self.create_client(LoadPolicy, f"{p['policy_node'].rstrip('/')}/load_policy")
        self._diag_pub = self.create_publisher(DiagnosticArray, "/diagnostics", 10)
        datasets = [str(workspace_path(d)) for d in p["retrain_datasets"] if d]
        self._trigger = RetrainTrigger(datasets)
        self._trigger.total()  # a path that is not a dataset fails the configure transition, with the fix

    def activate(self) -> None:
        self.start_diagnostics()
        reference = self._trigger.arm()  # episodes already recorded do not start a run
        self._retrain_timer = self.create_timer(self.params["retrain_check_period"], self._check_retrain,
                                                clock=self._steady)
        if self._trigger.datasets:
            self.get_logger().info(f"retrain_every: counting episodes in {', '.join(self._trigger.datasets)} "
                                   f"from {reference}")

    def deactivate(self) -> None:
        self.stop_diagnostics()
        self._retrain_timer = self.drop_timer(self._retrain_timer)

    def _check_retrain(self) -> None:
        """Start a run of our own once ``retrain_every`` new episodes are saved (``self.params`` is read at each
        check and each run: every parameter that is not read_only applies to the next check or run)."""
        every = self.params["retrain_every"]
        if every <= 0 or not self.is_active or self._busy.locked():
            return
        if not self._trigger.datasets:
            self.get_logger().warning("retrain_every is set but retrain_datasets is empty: no run starts; set "
                                      "retrain_datasets to the recorder's root", throttle_duration_sec=60.0)
            return
        try:
            if not self._trigger.due(every):
                return
        except ValueError as exc:
            self.get_logger().error(f"retrain_every: {exc}", throttle_duration_sec=60.0)
            return
        if not self._busy.acquire(blocking=False):  # a goal got in first
            return
        episodes = self._trigger.started()
        p = self.params
        overrides = [o for o in p["retrain_overrides"] if o]
        if p["retrain_from_last"] and self.last["artifact"]:
            overrides.append(f"train.init_from={self.last['artifact']}")
        request = TrainPolicy.Goal(datasets=self._trigger.datasets, policy_type=p["default_policy_type"],
                                   overrides=overrides, deploy=p["retrain_deploy"])
        self.counts["own_runs"] += 1
        self.get_logger().info(f"retrain_every={every}: {episodes} episodes saved, starting a run "
                               f"({' '.join(overrides) or 'no overrides'})")

        def work() -> None:
            try:
                result = self._train(_OwnRun(request))
            except Exception as exc:  # noqa: BLE001 - reported; the node keeps serving
                self.get_logger().error(f"own training run failed: {type(exc).__name__}: {exc}")
                self.counts["failed"] += 1
                result = TrainPolicy.Result(success=False, message=f"{type(exc).__name__}: {exc}")
            finally:
                self._busy.release()
            self.last["message"] = result.message
        threading.Thread(target=work, name="retrain", daemon=True).start()

    def cleanup(self) -> None:
        if self._job is not None and self._job.running():
            self._job.cancel(self.params.get("cancel_grace", 10.0))
        if self._action is not None:
            self._action.destroy()
        if self._deploy_client is not None:
            self.destroy_client(self._deploy_client)
        if self._diag_pub is not None:
            self.destroy_publisher(self._diag_pub)
        self._action = self._deploy_client = self._diag_pub = self._trigger = None

    def _on_goal(self, goal) -> GoalResponse:
        if not self.is_active:
            self.get_logger().warning("training goal rejected: the trainer is not active")
            self.counts["rejected"] += 1
            return GoalResponse.REJECT
        if self._busy.locked():
            self.get_logger().warning("training goal rejected: a run is in progress (one at a time)")
            self.counts["rejected"] += 1
            return GoalResponse.REJECT
        return GoalResponse.ACCEPT

    async def _execute(self, goal_handle):
        """Follow the run on a worker thread; the executor's one thread keeps serving feedback and cancels."""
        done = Future()

        def work() -> None:
            with self._busy:
                try:
                    result = self._train(goal_handle)
                except Exception as exc:  # noqa: BLE001 - the goal fails with the reason; the node stays up
                    self.get_logger().error(f"training goal failed: {type(exc).__name__}: {exc}")
                    goal_handle.abort()
                    self.counts["failed"] += 1
                    result = TrainPolicy.Result(success=False, message=f"{type(exc).__name__}: {exc}")
            self.last["message"] = result.message
            done.set_result(result)
        threading.Thread(target=work, name="train_policy", daemon=True).start()
        return await done

    def _train(self, goal_handle) -> TrainPolicy.Result:
        p, goal = self.params, goal_handle.request
        self.counts["goals"] += 1
        overrides = [o for o in p["default_overrides"] if o] + list(goal.overrides)
        if not any(o.startswith("output.models_dir=") for o in overrides):
            overrides.append(f"output.models_dir={workspace_path(p['models_dir'])}")
        if p["torch_threads"] and not any(o.startswith("train.threads=") for o in overrides):
            overrides.append(f"train.threads={p['torch_threads']}")
        datasets = [str(workspace_path(d)) for d in goal.datasets]
        try:
            argv = training_argv(datasets, goal.policy_type or p["default_policy_type"], overrides,
                                 p["nproc_per_node"])
        except ValueError as exc:
            goal_handle.abort()
            self.counts["failed"] += 1
            return TrainPolicy.Result(success=False, message=str(exc))
        latest = {"epoch": 0, "epochs": 0, "train_loss": float("nan"), "val_loss": float("nan"), "eta_s": 0.0}

        def on_event(event: dict) -> None:
            if event.get("event") == "epoch":
                latest.update({k: event.get(k) if event.get(k) is not None else latest[k] for k in latest})
                self.last.update(epoch=latest["epoch"], train_loss=latest["train_loss"])
                goal_handle.publish_feedback(TrainPolicy.Feedback(
                    epoch=int(latest["epoch"]), epochs=int(latest["epochs"]),
                    progress=float(latest["epoch"]) / max(1, int(latest["epochs"])),
                    train_loss=float(latest["train_loss"]), val_loss=float(latest["val_loss"]),
                    eta=float(latest["eta_s"])))
            elif event.get("event") == "log":
                self.get_logger().info(f"training: {event.get('message')}")

        self.get_logger().info(f"training: {' '.join(argv[2:])}")
        job = TrainingJob(argv, on_event, memory_limit_mb=p["memory_limit_mb"], cwd=os.environ.get("VLA_WS") or None)
        self._job = job
        while job.running():
            if goal_handle.is_cancel_requested:
                self.get_logger().info("training goal cancelled: stopping the training process")
                job.cancel(p["cancel_grace"])
                break
            time.sleep(0.1)
        outcome = job.wait()
        self._job = None
        if outcome.cancelled:
            goal_handle.canceled()
            self.counts["cancelled"] += 1
            return TrainPolicy.Result(success=False, message="training cancelled")
        if not outcome.success:
            self.get_logger().error(outcome.message)
            goal_handle.abort()
            self.counts["failed"] += 1
            return TrainPolicy.Result(success=False, message=outcome.message)
        artifact = outcome.result["artifact"]
        final = outcome.result.get("final") or {}
        loss = float(final.get("val/loss", final.get("train/loss", float("nan"))))
        message = f"{outcome.message} in {outcome.result.get('train_seconds', 0):.1f} s: {artifact}"
        self.last["artifact"] = artifact
        if goal.deploy:
            ok, why = self._deploy(artifact)
            if not ok:
                goal_handle.abort()
                self.counts["failed"] += 1
                return TrainPolicy.Result(success=False, message=f"{message}; deploy failed: {why}",
                                          artifact=artifact, final_loss=loss)
            message += f"; deployed: {why}"
        goal_handle.succeed()
        self.counts["succeeded"] += 1
        self.get_logger().info(message)
        return TrainPolicy.Result(success=True, message=message, artifact=artifact, final_loss=loss)

    def _deploy(self, artifact: str) -> tuple[bool, str]:
        if not self.is_active:
            return False, "the trainer was deactivated during training; deploy with `vla deploy`"
        client = self._deploy_client
        try:
            response = call_and_wait(client, LoadPolicy.Request(artifact=artifact), self.params["deploy_timeout"],
                                     name=self.resolve_service_name(client.srv_name),
                                     unavailable_hint="is the policy node running?")
        except ServiceCallFailed as exc:
            return False, str(exc)
        if not response.success:
            return False, response.message
        self.counts["deployed"] += 1
        return True, f"{response.policy}/{response.version} loaded in {response.load_time:.2f} s"

    def _publish_diagnostics(self) -> None:
        running = self._job is not None and self._job.running()
        values = {**self.counts, "training": running, "epoch": self.last["epoch"],
                  "train_loss": f"{self.last['train_loss']:.4g}", "last_artifact": self.last["artifact"],
                  "last_message": self.last["message"]}
        status = DiagnosticStatus(level=DiagnosticStatus.OK, name=self.get_fully_qualified_name(),
                                  hardware_id="trainer", message="training" if running else "idle",
                                  values=[KeyValue(key=k, value=str(v)) for k, v in values.items()])
        self._diag_pub.publish(DiagnosticArray(status=[status]))


main = main_for(TrainerNode)
