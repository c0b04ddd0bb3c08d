"""RL on the graph in real processes: the learner reads transitions from the running sim graph, updates, exports,
and the policy node (exploring within the contract's limits) swaps to each new version while it keeps ticking."""
from __future__ import annotations

import time
from pathlib import Path

import numpy as np
import pytest
from diagnostic_msgs.msg import DiagnosticArray
from geometry_msgs.msg import Twist
from rcl_interfaces.msg import Parameter, ParameterType, ParameterValue
from rcl_interfaces.srv import SetParameters

from vla_interfaces.msg import InstructionEmbedding, Intervention, PolicyStatus
from vla_ros import node_qos

pytestmark = [pytest.mark.ros, pytest.mark.slow]  # bring-up, torch in the learner, exports: about 60 s on 2 cores
WS = Path(__file__).resolve().parents[1]
LEARNER = "rl_learner: learner"


def profile(tmp_path: Path) -> list[str]:
    path = tmp_path / "rl_test.yaml"
    params = WS / "params"
    path.write_text(f"""
description: rl graph test, no shield or teleop (the policy proposal is the command)
use_sim_time: false
manager: {{params: {params / 'lifecycle_manager.yaml'}}}
nodes:
  - name: sim_robot
    package: vla_sim
    executable: sim_robot
    params: [{params / 'sim_robot.yaml'}]
  - name: perception
    package: vla_perception
    executable: perception
    params: [{params / 'perception.yaml'}]
  - name: rl_learner
    package: vla_trainer
    executable: rl_learner
    params: [{params / 'rl_learner.yaml'}]
  - name: policy
    package: vla_policy
    executable: policy
    params: [{params / 'policy.yaml'}, {params / 'rl_policy.yaml'}]
    remap: {{policy/cmd_vel: cmd_vel}}
""")
    models = tmp_path / "models"
    sets = {"sim_robot.publish_clock": "false", "sim_robot.max_episode_steps": "40", "perception.overlay": "false",
            "policy.models_dir": str(models), "policy.exploration_std": "0.3", "rl_learner.models_dir": str(models),
            "rl_learner.hidden": "16", "rl_learner.channels": "8", "rl_learner.image_downsample": "4",
            "rl_learner.batch_size": "8", "rl_learner.warmup": "8", "rl_learner.updates_per_step": "1.0",
            "rl_learner.export_every": "40", "rl_learner.diagnostics_period": "0.5"}
    return [str(path), "--quiet", *[a for k, v in sets.items() for a in ("--set", f"{k}={v}")]]


def _is(version: str, number: int, later: bool = False) -> bool:
    return version.isdigit() and (int(version) >= number if later else int(version) == number)


def test_the_learner_trains_on_the_running_graph_and_the_policy_swaps_its_versions_without_a_missed_tick(
        probe, vla, tmp_path):
    diags = probe.collect(DiagnosticArray, "/diagnostics", 50)
    status = probe.collect(PolicyStatus, "/policy/status", 50)
    commands = probe.collect(Twist, "/cmd_vel", node_qos.SENSOR_SUB)
    emb = probe.node.create_publisher(InstructionEmbedding, "/instruction/embedding", node_qos.LATCHED)
    emb.publish(InstructionEmbedding(text="push the red block into the purple zone", encoder_id="test-encoder",
                                     embedding=[0.01] * 384))
    flag = probe.node.create_publisher(Intervention, "/teleop/intervention", 10)
    up = vla("up", *profile(tmp_path))
    up.wait_line(r"all \d+ nodes active", 120)

    def learner():
        return probe.diagnostic_values(diags, LEARNER)

    def serving(version, later=False):
        """Whether a status said the policy serves sac_online/``version`` (or, ``later``, a later version: an
        export takes a fraction of a second, and a version can be replaced within one status period)."""
        return any(m.policy == "sac_online" and m.proposing and _is(m.version, version, later) for _, m in status)

    probe.wait_for(lambda: serving(1), 90, "the policy serving the learner's first actor (sac_online/1)")
    # The operator takes over for a second: those transitions are flagged (and become demonstrations).
    probe.publish_until(flag, Intervention(active=True, device="test"),
                        lambda: int(learner().get("interventions", 0)) > 0, 20, "an intervention transition")
    for _ in range(3):
        flag.publish(Intervention(active=False, device="test"))
    try:
        probe.wait_for(lambda: serving(2, later=True), 120,
                       "the policy serving sac_online/2 (or later) after export_every updates")
    except AssertionError as exc:
        raise AssertionError(f"{exc}; the learner says {learner()}") from None
    swapped = time.monotonic()  # within a status period (0.5 s) after the swap
    time.sleep(1.0)
    # The status window around the swap: the last one serving version 1 and the first serving a later version.
    before = [m for t, m in status if _is(m.version, 1) and m.proposing][-1]
    after = next(m for t, m in status if _is(m.version, 2, later=True))
    received = [t for t, _ in commands if swapped - 1.5 < t < swapped + 0.5]
    swap_gap_ms = 1e3 * max(np.diff(received)) if len(received) > 1 else float("nan")
    values = learner()
    assert int(values["transitions"]) >= 8 and int(values["updates"]) >= 3, values
    assert int(values["deployed"]) >= 2 and values["refused_transitions"] == "0", values
    assert int(values["interventions"]) > 0 and int(values["demo_replay"]) > 0, values
    # The swap from version 1 to 2: every tick of the window proposed a command (unless an input was stale), none
    # skipped or dropped.
    assert (after.missed_ticks - before.missed_ticks, after.dropped_outputs - before.dropped_outputs) == (0, 0)
    assert after.proposed - before.proposed == (after.ticks - before.ticks) - (after.stale_ticks - before.stale_ticks)
    assert after.proposed > before.proposed
    print(f"largest interval between commands received around the swap: {swap_gap_ms:.0f} ms; policy: ticks "
          f"{after.ticks}, proposed {after.proposed}, max gap {after.max_command_gap_ms:.0f} ms; learner: {values}")
    # The exploring actor: noisy, and every proposal inside the contract's limits (0.25 m/s).
    xs = np.array([[m.linear.x, m.linear.y] for _, m in commands])
    assert len(xs) > 20 and np.abs(xs).max() <= 0.25 + 1e-9 and xs[:, 0].std() > 0.01
    # exploration_std is bounded by the read-only max_exploration_std (0.3 in rl_policy.yaml).
    too_much = Parameter(name="exploration_std", value=ParameterValue(type=ParameterType.PARAMETER_DOUBLE,
                                                                     double_value=0.5))
    result = probe.call(SetParameters, "/policy/set_parameters", SetParameters.Request(parameters=[too_much]))
    assert not result.results[0].successful and "max_exploration_std" in result.results[0].reason
