"""The sim robot as a robot: its topics, its reset service, and commands it must refuse (real processes)."""
from __future__ import annotations

import time
from pathlib import Path

import numpy as np
import pytest
from diagnostic_msgs.msg import DiagnosticArray
from geometry_msgs.msg import Twist
from sensor_msgs.msg import CameraInfo, Image, JointState
from std_msgs.msg import Float64MultiArray, String

from vla_interfaces.msg import EpisodeEvent
from vla_interfaces.srv import ResetEpisode
from vla_ros import node_qos

WS = Path(__file__).resolve().parents[1]

pytestmark = pytest.mark.ros


def sim_only_profile(one_node_profile, command_type: str):
    profile = one_node_profile("sim_robot", "vla_sim", WS / "params" / "sim_robot.yaml",
                               "the sim robot alone, commanded by the test", file="sim_only.yaml")
    # The tabletop contract's action is a Twist: a sim robot taking another command does not satisfy it.
    contract = ["--set", f"sim_robot.contract={WS / 'params' / 'robots' / 'tabletop_sim.yaml'}"]
    return [str(profile), "--quiet", "--set", f"sim_robot.command_type={command_type}",
            "--set", "sim_robot.publish_clock=false", "--set", "sim_robot.diagnostics_period=0.2",
            *(contract if command_type == "twist" else [])]


def test_topics_commands_and_rejections_twist(probe, vla, one_node_profile):
    images = probe.collect(Image, "/camera/top/image_raw", node_qos.SENSOR_SUB)
    infos = probe.collect(CameraInfo, "/camera/top/camera_info", node_qos.SENSOR_SUB)
    joints = probe.collect(JointState, "/joint_states", node_qos.SENSOR_SUB)
    diags = probe.collect(DiagnosticArray, "/diagnostics", 10)
    up = vla("up", *sim_only_profile(one_node_profile, "twist"))
    up.wait_line("all 1 nodes active", 90)
    probe.wait_for(lambda: len(images) > 3 and len(joints) > 3 and infos, 20, "camera and joint states")
    image, info = images[-1][1], infos[-1][1]
    assert (image.height, image.width, image.encoding) == (96, 96, "rgb8")
    assert image.header.frame_id == info.header.frame_id == "camera_top_optical_frame"
    assert list(joints[-1][1].name) == ["gantry_x", "gantry_y"]

    # A late subscriber still gets the current instruction (latched).
    instruction = probe.collect(String, "/instruction", node_qos.LATCHED)
    probe.wait_for(lambda: instruction, 10, "latched instruction")
    assert "block" in instruction[-1][1].data or "cube" in instruction[-1][1].data

    pub = probe.node.create_publisher(Twist, "/cmd_vel", node_qos.COMMAND)
    probe.wait_for(lambda: pub.get_subscription_count() > 0, 10, "the sim robot's cmd_vel subscription")
    bad = Twist()
    bad.linear.x = float("nan")
    probe.publish_until(pub, [bad], lambda: probe.count(diags, "sim_robot: simulation", "rejected_nonfinite") >= 5, 15,
                        "5 rejected NaN commands")
    assert all(np.all(np.isfinite(j.position)) for _, j in joints)

    # A valid command moves the gantry at the commanded velocity (m/s, base_link: +x forward).
    good = Twist()
    good.linear.x = 0.05
    t_end = time.monotonic() + 1.5
    while time.monotonic() < t_end:
        pub.publish(good)
        time.sleep(0.05)
    recent = [j for t, j in joints if t > t_end - 0.5]
    assert recent and np.mean([j.velocity[0] for j in recent]) == pytest.approx(0.05, abs=0.02)
    assert probe.count(diags, "sim_robot: simulation", "accepted") > 10


def test_wrong_dimension_is_rejected_and_reset_service(probe, vla, one_node_profile):
    diags = probe.collect(DiagnosticArray, "/diagnostics", 10)
    events = probe.collect(EpisodeEvent, "/episode/events", node_qos.EVENTS)
    up = vla("up", *sim_only_profile(one_node_profile, "float64_multiarray"))
    up.wait_line("all 1 nodes active", 90)
    pub = probe.node.create_publisher(Float64MultiArray, "/cmd", node_qos.COMMAND)
    probe.wait_for(lambda: pub.get_subscription_count() > 0, 10, "the sim robot's cmd subscription")
    bad = [Float64MultiArray(data=[0.1]), Float64MultiArray(data=[0.1, 0.2, 0.3])]
    probe.publish_until(pub, bad, lambda: probe.count(diags, "sim_robot: simulation", "rejected_dimension") >= 2, 15,
                        "2 rejected commands")
    assert probe.count(diags, "sim_robot: simulation", "accepted") == 0

    ok = probe.call(ResetEpisode, "/sim_robot/reset", ResetEpisode.Request(seed=7, instruction=""))
    assert ok.success and ok.seed == 7 and ok.instruction
    probe.wait_for(lambda: any(e.event == EpisodeEvent.START and e.seed == 7 for _, e in events), 10, "START seed 7")
    bad = probe.call(ResetEpisode, "/sim_robot/reset", ResetEpisode.Request(seed=8, instruction="dance a jig"))
    assert not bad.success and "dance a jig" in bad.message


def test_reset_refuses_seeds_and_instructions_it_cannot_keep(probe, vla, one_node_profile):
    """A reset with seed 2**63-1 used to be accepted, and the sim died when the next seed (2**63) went out."""
    events = probe.collect(EpisodeEvent, "/episode/events", node_qos.EVENTS)
    images = probe.collect(Image, "/camera/top/image_raw", node_qos.SENSOR_SUB)
    up = vla("up", *sim_only_profile(one_node_profile, "twist"), "--set", "sim_robot.max_episode_steps=5")
    up.wait_line("all 1 nodes active", 90)
    for seed in (2**63 - 1, 2**32):
        bad = probe.call(ResetEpisode, "/sim_robot/reset", ResetEpisode.Request(seed=seed, instruction=""))
        assert not bad.success and "out of range" in bad.message and "4294967295" in bad.message, bad.message
    bad = probe.call(ResetEpisode, "/sim_robot/reset",
                     ResetEpisode.Request(seed=1, instruction="push the red block\x1b[2J onto the purple zone"))
    assert not bad.success and "U+001B" in bad.message, bad.message
    assert not any(e.event == EpisodeEvent.ABORTED for _, e in events), "a refused reset aborted the episode"

    # The last seed in range is accepted, and the sequence wraps to 0 for the next (5-step) episode.
    ok = probe.call(ResetEpisode, "/sim_robot/reset", ResetEpisode.Request(seed=2**32 - 1, instruction=""))
    assert ok.success and ok.seed == 2**32 - 1, ok.message
    probe.wait_for(lambda: any(e.event == EpisodeEvent.START and e.seed == 0 and e.episode_index > ok.episode_index
                               for _, e in events), 20, "the next episode with seed 0")
    n = len(images)
    time.sleep(3.0)  # where the simulator used to die
    assert len(images) > n + 10 and up.proc.poll() is None, up.output


def test_domain_randomization_from_the_preset_file_and_at_run_time(probe, vla, one_node_profile):
    """The preset file layered on sim_robot.yaml randomises the scene as the env does in-process; a run-time
    randomization_scale of 0 gives the nominal scene from the next episode; an out-of-range range is refused."""
    from rcl_interfaces.msg import Parameter, ParameterType, ParameterValue
    from rcl_interfaces.srv import SetParameters

    from vla_sim.envs.tabletop import TabletopPushEnv

    def double(name, value):
        return Parameter(name=name, value=ParameterValue(type=ParameterType.PARAMETER_DOUBLE, double_value=value))

    def image_after_reset(seed):
        ok = probe.call(ResetEpisode, "/sim_robot/reset", ResetEpisode.Request(seed=seed, instruction=""))
        assert ok.success, ok.message
        t0 = time.monotonic()
        time.sleep(0.5)
        probe.wait_for(lambda: any(t > t0 for t, _ in images), 10, "an image after the reset")
        last = images[-1][1]
        return np.asarray(last.data, np.uint8).reshape(last.height, last.width, 3)

    def env_image(seed, randomization):
        return TabletopPushEnv(randomization=randomization).reset(seed=seed)[0]["pixels"]

    images = probe.collect(Image, "/camera/top/image_raw", node_qos.SENSOR_SUB)
    params = f"{WS / 'params' / 'sim_robot.yaml'}, {WS / 'params' / 'sim_robot_randomization.yaml'}"
    profile = one_node_profile("sim_robot", "vla_sim", params, "the randomised sim robot alone")
    up = vla("up", str(profile), "--quiet", "--set", "sim_robot.publish_clock=false")
    up.wait_line("all 1 nodes active", 90)
    np.testing.assert_array_equal(image_after_reset(7), env_image(7, "full"))

    result = probe.call(SetParameters, "/sim_robot/set_parameters",
                        SetParameters.Request(parameters=[double("randomization_scale", 0.0)]))
    assert result.results[0].successful, result.results[0].reason
    np.testing.assert_array_equal(image_after_reset(7), env_image(7, None))
    refused = probe.call(SetParameters, "/sim_robot/set_parameters",
                         SetParameters.Request(parameters=[double("randomization_brightness", 2.0)]))
    assert not refused.results[0].successful and "randomization_brightness" in refused.results[0].reason


def test_lockstep_steps_on_the_answer_to_each_frame(probe, vla, one_node_profile):
    """In lockstep the sim waits for the command that answers its last frame: with nobody commanding it steps
    once per lockstep_timeout; answered, it applies the answer to frame k at step k (velocity k+1 == answer k),
    however long the answer takes, at up to real_time_factor."""
    joints = probe.collect(JointState, "/joint_states", node_qos.SENSOR_SUB)
    diags = probe.collect(DiagnosticArray, "/diagnostics", 10)
    up = vla("up", *sim_only_profile(one_node_profile, "twist"), "--set", "sim_robot.lockstep=true",
             "--set", "sim_robot.lockstep_timeout=0.4", "--set", "sim_robot.real_time_factor=20",
             "--set", "sim_robot.max_episode_steps=100000")
    up.wait_line("all 1 nodes active", 90)
    probe.wait_for(lambda: len(joints) >= 2, 20, "joint states")
    n, t0 = len(joints), time.monotonic()
    time.sleep(2.0)  # nobody commands: a step per timeout (about 5), not 20 x 10 Hz x 2 s = 400
    unanswered = len(joints) - n
    assert 2 <= unanswered <= 8, unanswered
    probe.wait_for(lambda: probe.count(diags, "sim_robot: simulation", "lockstep_timeouts") >= 2, 5,
                   "lockstep timeouts counted")

    # Answer each frame with a velocity that names it; answers sometimes come late (30 ms, a busy machine).
    answers: dict[int, float] = {}
    pub = probe.node.create_publisher(Twist, "/cmd_vel", node_qos.COMMAND)
    probe.wait_for(lambda: pub.get_subscription_count() > 0, 10, "the sim robot's cmd_vel subscription")

    def answer(msg: JointState) -> None:
        k = msg.header.stamp.sec * 1_000_000_000 + msg.header.stamp.nanosec
        if k in answers:
            return
        answers[k] = 0.01 * (len(answers) % 20) * (1 if len(answers) % 2 else -1)  # back and forth: no wall
        if len(answers) % 7 == 0:
            time.sleep(0.03)
        cmd = Twist()
        cmd.linear.x = answers[k]
        pub.publish(cmd)

    probe.node.create_subscription(JointState, "/joint_states", answer, node_qos.SENSOR_SUB)
    n, t0 = len(joints), time.monotonic()
    probe.wait_for(lambda: len(joints) >= n + 60, 20, "60 answered steps")
    rate = (len(joints) - n) / (time.monotonic() - t0)
    frames = [j for _, j in joints[n:]]
    pairs = 0
    for before, after in zip(frames, frames[1:]):
        k = before.header.stamp.sec * 1_000_000_000 + before.header.stamp.nanosec
        if after.header.stamp == before.header.stamp:  # an episode ended: the reset's frame shares the stamp
            continue
        if k in answers:
            assert after.velocity[0] == pytest.approx(answers[k], abs=1e-6), (k, answers[k], after.velocity[0])
            pairs += 1
    assert pairs >= 50, pairs
    assert rate > 10.0, f"{rate:.1f} steps/s answered: lockstep should run far faster than its timeout"
