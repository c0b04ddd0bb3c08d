"""The trainer node end to end: real TrainPolicy goals from another process train in a child process (feedback,
result, artifact), a cancel stops the child, a killed child (what the OOM killer does) aborts the goal with the
reason while the node keeps serving, and a deploy with no policy node fails with why. With retrain_every the node
starts runs itself every K saved episodes, each fine-tuning the last."""
import json
import subprocess
import threading
import time
from pathlib import Path

import pytest
from rclpy.action import ActionClient

from vla_core.artifact import verify_artifact
from vla_core.contract import RobotContract
from vla_interfaces.action import TrainPolicy
from vla_sim.demos import record_scripted_demos

WS = Path(__file__).resolve().parents[1]
STATUS_CANCELED, STATUS_ABORTED, STATUS_SUCCEEDED = 5, 6, 4


@pytest.fixture(scope="module")
def demos(tmp_path_factory):
    root = tmp_path_factory.mktemp("trainer") / "demos"
    record_scripted_demos(root, RobotContract.from_yaml(WS / "params/robots/tabletop_sim.yaml"), episodes=4)
    return root


def _profile(one_node_profile) -> Path:
    return one_node_profile("trainer", "vla_trainer", WS / "params" / "trainer.yaml", "the trainer alone")


class Goals:
    def __init__(self, probe):
        self.client = ActionClient(probe.node, TrainPolicy, "/trainer/train_policy")
        assert self.client.wait_for_server(timeout_sec=60), "no /trainer/train_policy action"
        self.feedback: list = []

    def send(self, datasets, overrides, deploy=False):
        self.feedback = []
        done = threading.Event()
        future = self.client.send_goal_async(
            TrainPolicy.Goal(datasets=[str(d) for d in datasets], policy_type="mlp", overrides=overrides,
                             deploy=deploy), feedback_callback=lambda m: self.feedback.append(m.feedback))
        future.add_done_callback(lambda _: done.set())
        assert done.wait(30), "no goal response"
        assert future.result().accepted, "goal rejected"
        return future.result()

    @staticmethod
    def result(handle, timeout=240.0):
        done = threading.Event()
        future = handle.get_result_async()
        future.add_done_callback(lambda _: done.set())
        assert done.wait(timeout), "no TrainPolicy result"
        return future.result()

    def wait_feedback(self, timeout=120.0):
        deadline = time.monotonic() + timeout
        while not self.feedback and time.monotonic() < deadline:
            time.sleep(0.1)
        assert self.feedback, "no feedback from the training run"


def _overrides(tmp_path, name, epochs=2):
    return [f"output.name={name}", f"output.models_dir={tmp_path / 'models'}", f"data.cache_dir={tmp_path / 'cache'}",
            "policy.hidden=32", "policy.channels=16", "policy.chunk_size=4", f"train.epochs={epochs}",
            "train.batch_size=8", "train.bf16=off", "data.val_fraction=0.25"]


def _children(marker: str) -> list[int]:
    out = subprocess.run(["pgrep", "-f", f"vla_trainer.cli.*{marker}"], capture_output=True, text=True).stdout
    return [int(p) for p in out.split()]


def test_train_cancel_crash_and_deploy_through_the_action(probe, vla, demos, tmp_path, one_node_profile):
    up = vla("up", str(_profile(one_node_profile)), "--quiet", "--set", "trainer.deploy_timeout=2.0",
             "--set", "trainer.cancel_grace=5.0")
    up.wait_line(r"all 1 nodes active", 90)
    goals = Goals(probe)

    # 1. A run that finishes: feedback per epoch, then the artifact.
    handle = goals.send([demos], _overrides(tmp_path, "done"))
    outcome = goals.result(handle)
    assert outcome.status == STATUS_SUCCEEDED, outcome.result.message
    assert outcome.result.success and Path(outcome.result.artifact).parent.name == "done"
    verify_artifact(Path(outcome.result.artifact))
    assert [f.epoch for f in goals.feedback] == [1, 2] and goals.feedback[-1].epochs == 2
    assert goals.feedback[-1].progress == pytest.approx(1.0)
    assert outcome.result.final_loss > 0

    # 2. Cancel: the goal ends CANCELED and the training process is gone.
    handle = goals.send([demos], _overrides(tmp_path, "cancelme", epochs=500))
    goals.wait_feedback()
    assert _children("cancelme"), "the training process should be running"
    done = threading.Event()
    handle.cancel_goal_async().add_done_callback(lambda _: done.set())
    assert done.wait(10)
    outcome = goals.result(handle, timeout=60)
    assert outcome.status == STATUS_CANCELED, outcome.result.message
    assert not _children("cancelme")
    assert not (tmp_path / "models" / "cancelme").exists()

    # 3. The training process is killed (as by the out-of-memory killer): the goal aborts with the reason.
    handle = goals.send([demos], _overrides(tmp_path, "killed", epochs=500))
    goals.wait_feedback()
    for pid in _children("killed"):
        subprocess.run(["kill", "-9", str(pid)])
    outcome = goals.result(handle, timeout=60)
    assert outcome.status == STATUS_ABORTED
    assert "killed by SIGKILL" in outcome.result.message and "out-of-memory" in outcome.result.message

    # 4. Bad input aborts with the trainer's own message; 5. the node still trains, and a deploy with no policy
    # node running fails with the reason while keeping the artifact.
    handle = goals.send([tmp_path / "no_such_dataset"], _overrides(tmp_path, "bad"))
    outcome = goals.result(handle, timeout=120)
    assert outcome.status == STATUS_ABORTED and "info.json is missing" in outcome.result.message
    handle = goals.send([demos], _overrides(tmp_path, "deploy", epochs=1), deploy=True)
    outcome = goals.result(handle)
    assert outcome.status == STATUS_ABORTED
    assert "deploy failed: /policy/load_policy is not available" in outcome.result.message
    verify_artifact(Path(outcome.result.artifact))
    up.interrupt()
    assert up.wait(60) == 0, up.output


def _versions(models: Path, timeout: float, count: int) -> list[Path]:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        # '.'-prefixed: a version still being written (staged, then renamed into place).
        done = sorted(p for p in models.glob("*") if not p.name.startswith(".") and (p / "manifest.json").is_file()) \
            if models.is_dir() else []
        if len(done) >= count:
            return done
        time.sleep(0.5)
    raise AssertionError(f"{count} artifact(s) expected in {models} within {timeout:g} s")


def test_trainer_retrains_on_its_own_every_k_saved_episodes(vla, tmp_path, one_node_profile):
    robot = tmp_path / "robot"
    contract = RobotContract.from_yaml(WS / "params/robots/tabletop_sim.yaml")
    record_scripted_demos(robot, contract, episodes=2)  # there before the node: not counted
    overrides = _overrides(tmp_path, "auto", epochs=1) + ["algorithm.type=hg_dagger"]
    up = vla("up", str(_profile(one_node_profile)), "--quiet", "--set", "trainer.retrain_every=2",
             "--set", f"trainer.retrain_datasets={json.dumps([str(robot)])}",
             "--set", f"trainer.retrain_overrides={json.dumps(overrides)}", "--set", "trainer.retrain_deploy=false",
             "--set", "trainer.retrain_check_period=0.2", "--set", "trainer.default_policy_type=mlp")
    up.wait_line(r"all 1 nodes active", 90)
    models = tmp_path / "models" / "auto"
    record_scripted_demos(robot, contract, episodes=1, seed_start=10)
    time.sleep(2.0)  # ten checks
    assert not models.exists(), "one new episode of two started a run"
    record_scripted_demos(robot, contract, episodes=1, seed_start=20)
    (first,) = _versions(models, 240, 1)
    verify_artifact(first)
    training = json.loads((first / "manifest.json").read_text())["training"]
    assert training["episodes"] == 4 and not training["config"]["train"]["init_from"]
    record_scripted_demos(robot, contract, episodes=2, seed_start=30)
    second = next(v for v in _versions(models, 240, 2) if v != first)
    verify_artifact(second)
    # The second run fine-tuned the first, on all 6 episodes.
    training = json.loads((second / "manifest.json").read_text())["training"]
    assert training["episodes"] == 6 and Path(training["config"]["train"]["init_from"]).resolve() == first.resolve()
    up.interrupt()
    assert up.wait(60) == 0, up.output
