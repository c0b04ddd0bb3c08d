"""Requested interventions: the sampler flags the frames in which the policy asked for help (its latched
~/help), and the dataset keeps per episode how many there were and in how many the operator took over."""
import numpy as np
import pytest

from vla_core.dataset import DatasetReader, DatasetWriter
from vla_recorder.sampler import FrameSampler

FPS, DT = 10.0, 0.1
FEATURES = {
    "observation.images.top": {"dtype": "video", "shape": [16, 16, 3], "names": ["height", "width", "channels"]},
    "observation.state": {"dtype": "float32", "shape": [2], "names": ["x", "y"]},
    "action": {"dtype": "float32", "shape": [2], "names": ["vx", "vy"]},
}
HELP = (4, 5, 6, 7)       # ticks at whose start the policy's request is in force (raised at 4, cleared at 8)
OPERATOR = (6, 7, 8, 12)  # ticks in which the operator commands


def sampled_frames() -> tuple[list[dict], FrameSampler]:
    s = FrameSampler(FPS, ["observation.images.top"], state_dim=2, action_dim=2)
    s.start(100.0)
    frames = []
    s.offer_help(99.0, False)  # the latched state received before recording: no request
    for i in range(15):
        t = 100.0 + i * DT
        frames += s.poll(t)
        s.offer_image("observation.images.top", t, np.full((16, 16, 3), 10 * i, np.uint8))
        s.offer_state(t, np.array([i, -i], float))
        s.offer_command(t + 0.02, np.array([0.01 * i, 0.0]))
        s.offer_intervention(t + 0.02, i in OPERATOR)
        if i in (HELP[0], HELP[-1] + 1):  # latched: sent once when raised, once when cleared
            s.offer_help(t + 0.01, i == HELP[0])
    frames += s.poll(100.0 + 15 * DT, flush=True)
    return frames, s


def test_frames_carry_the_help_request_in_force_and_requested_interventions_are_counted():
    frames, s = sampled_frames()
    assert len(frames) == 15
    assert [i for i, f in enumerate(frames) if f["help_requested"]] == list(HELP)
    assert [i for i, f in enumerate(frames) if f["intervention"]] == list(OPERATOR)
    assert s.counters.help_frames == 4 and s.counters.requested_interventions == 2  # frames 6 and 7


def test_the_dataset_keeps_each_episodes_help_and_requested_intervention_frames(tmp_path):
    frames, _ = sampled_frames()
    writer = DatasetWriter(tmp_path, FPS, FEATURES)
    ep = writer.begin_episode("push", contract="robot: test")
    for f in frames:
        ep.add_frame(f)
    ep.save(success=True)
    ep = writer.begin_episode("push", contract="robot: test")  # an episode recorded without a help topic
    for f in frames:
        ep.add_frame({k: v for k, v in f.items() if k != "help_requested"})
    ep.save(success=True)
    reader = DatasetReader(tmp_path)
    first, second = reader.episode(0), reader.episode(1)
    assert (first["help_frames"], first["requested_intervention_frames"]) == (4, 2)
    assert (second["help_frames"], second["requested_intervention_frames"]) == (0, 0)
    assert first["intervention_frames"] == second["intervention_frames"] == 4
    assert "help_requested" not in reader[0]  # not a frame column: the LeRobot layout is unchanged
