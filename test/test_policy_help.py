"""The policy node in a real process publishes its uncertainty with every proposal and asks for help on
/policy/help when it crosses help_threshold (a run-time parameter), clearing it below the hysteresis; the safety
shield, in its own process, slows the policy's commands meanwhile (rule help.slow, help_scale 0.5).

The artifact's uncertainty output is |first joint position| (vla_policy.fixtures), so the test steers it
through the joint states it publishes."""
from __future__ import annotations

import threading
import time
from pathlib import Path

import pytest
from diagnostic_msgs.msg import DiagnosticArray
from geometry_msgs.msg import Twist
from sensor_msgs.msg import JointState

from vla_interfaces.msg import HelpRequest, InstructionEmbedding, PolicyStatus, ShieldState
from vla_policy.fixtures import make_artifact
from vla_ros import node_qos

pytestmark = pytest.mark.ros
WS = Path(__file__).resolve().parents[1]


def policy_profile(tmp_path) -> list[str]:
    path = tmp_path / "policy_help.yaml"
    path.write_text(f"""
description: the shield and the policy node, fed by the test
use_sim_time: false
manager: {{params: {WS / 'params' / 'lifecycle_manager.yaml'}}}
nodes:
  - name: safety_shield
    package: vla_safety
    executable: safety_shield
    params: [{WS / 'params' / 'safety_shield.yaml'}]
  - name: policy
    package: vla_policy
    executable: policy
    params: [{WS / 'params' / 'policy.yaml'}]
""")
    return [str(path), "--quiet", "--set", f"policy.models_dir={tmp_path / 'models'}", "--set",
            "policy.artifact=tiny/u", "--set", "policy.engines=[onnxruntime-cpu]", "--set", "policy.help_threshold=0.5"]


def _double(name: str, value: float):
    from rcl_interfaces.msg import Parameter, ParameterType, ParameterValue
    return Parameter(name=name, value=ParameterValue(type=ParameterType.PARAMETER_DOUBLE, double_value=value))


def test_help_request_follows_the_uncertainty_and_the_run_time_threshold(probe, vla, tmp_path):
    from rcl_interfaces.srv import SetParameters
    make_artifact(tmp_path / "models", "u", bias=0.05, uncertainty=True)
    helps = probe.collect(HelpRequest, "/policy/help", node_qos.LATCHED)
    status = probe.collect(PolicyStatus, "/policy/status", 10)
    diags = probe.collect(DiagnosticArray, "/diagnostics", 10)
    commands = probe.collect(Twist, "/cmd_vel", node_qos.COMMAND)
    shield = probe.collect(ShieldState, "/safety_shield/state", 10)

    def sent_after(t0: float) -> set:
        probe.wait_for(lambda: sum(t > t0 for t, _ in commands) >= 5, 10, "commands through the shield")
        with probe.lock:
            return {round(m.linear.x, 4) for t, m in commands if t > t0}
    embedding = probe.node.create_publisher(InstructionEmbedding, "/instruction/embedding", node_qos.LATCHED)
    embedding.publish(InstructionEmbedding(text="push the red block", encoder_id="minilm", embedding=[0.0] * 384))
    joints = probe.node.create_publisher(JointState, "/joint_states", node_qos.SENSOR_PUB)
    position = [0.1]
    running = True

    def feed():
        while running:
            msg = JointState(name=["gantry_x", "gantry_y"], position=[position[0], 0.0], velocity=[0.0, 0.0])
            msg.header.stamp = probe.node.get_clock().now().to_msg()
            joints.publish(msg)
            time.sleep(0.02)

    up = vla("up", *policy_profile(tmp_path))
    up.wait_line(r"all \d+ nodes active", 90)
    feeder = threading.Thread(target=feed, daemon=True)
    feeder.start()
    try:
        probe.wait_for(lambda: status and status[-1][1].proposed > 5, 20, "proposals")
        s = status[-1][1]
        assert s.uncertainty == pytest.approx(0.1, abs=1e-5) and s.help_threshold == 0.5 and not s.help_requested
        assert s.recent_uncertainty and all(abs(u - 0.1) < 1e-5 for u in s.recent_uncertainty)
        assert not [m for _, m in helps if m.active]
        assert sent_after(time.monotonic()) == {0.05}  # the policy's action, unscaled

        position[0] = 0.8  # above the threshold: the request goes out
        probe.wait_for(lambda: helps and helps[-1][1].active, 10, "a help request")
        raised = helps[-1][1]
        assert raised.uncertainty == pytest.approx(0.8, abs=1e-5) and raised.threshold == 0.5
        assert raised.policy == "tiny/u" and "0.8 > help_threshold 0.5" in raised.reason
        probe.wait_for(lambda: status[-1][1].help_requested, 5, "a status saying help is requested")
        probe.wait_for(lambda: probe.diagnostic_values(diags, "policy: policy").get("help_requested") == "True",
                       5, "diagnostics saying help is requested")
        assert probe.count(diags, "policy: policy", "help_requests") == 1
        time.sleep(0.3)  # the shield's rate limits take it down within a few ticks
        assert sent_after(time.monotonic()) == {0.025}  # help_scale 0.5
        with probe.lock:
            assert "help.slow" in shield[-1][1].rules
        probe.wait_for(lambda: int(probe.diagnostic_values(diags, "safety_shield: shield").get("rule help.slow", 0))
                       > 5, 5, "the shield counting help.slow")

        position[0] = 0.45  # below the threshold, above the hysteresis (0.4): still asking
        time.sleep(0.6)
        assert helps[-1][1].active
        position[0] = 0.1
        probe.wait_for(lambda: not helps[-1][1].active, 10, "the help request cleared")
        assert sum(m.active for _, m in helps) == 1
        time.sleep(0.3)
        assert sent_after(time.monotonic()) == {0.05}

        # A run-time change of the threshold applies from the next proposal.
        result = probe.call(SetParameters, "/policy/set_parameters",
                            SetParameters.Request(parameters=[_double("help_threshold", 0.05)]))
        assert result.results[0].successful, result.results[0].reason
        probe.wait_for(lambda: helps[-1][1].active, 10, "a help request under the lowered threshold")
        assert helps[-1][1].threshold == pytest.approx(0.05)
        refused = probe.call(SetParameters, "/policy/set_parameters",
                             SetParameters.Request(parameters=[_double("help_threshold", -1.0)]))
        assert not refused.results[0].successful
        # A request with a non-finite value (not the policy's: any publisher's) is dropped and counted.
        bad = probe.node.create_publisher(HelpRequest, "/policy/help", node_qos.LATCHED)
        bad.publish(HelpRequest(active=False, uncertainty=float("nan"), threshold=0.05))
        probe.wait_for(lambda: probe.diagnostic_values(diags, "safety_shield: shield").get("dropped_help_requests")
                       == "1", 5, "the shield counting the bad request")
        assert probe.diagnostic_values(diags, "safety_shield: shield")["help_requested"] == "True"
        for node in ("policy", "safety_shield"):  # raising and clearing never failed a callback
            probe.wait_for(lambda n=node: probe.diagnostic_values(diags, f"{n}: node"), 5, f"{node}'s node status")
            assert probe.count(diags, f"{node}: node", "callback_errors") == 0
    finally:
        running = False
        feeder.join()
    n = len(helps)
    up.interrupt()
    assert up.wait(30) == 0, up.output
    # Deactivation withdraws the standing request, so a latched "asking for help" never outlives the node.
    probe.wait_for(lambda: len(helps) > n and not helps[-1][1].active, 5, "the request withdrawn at shutdown")
