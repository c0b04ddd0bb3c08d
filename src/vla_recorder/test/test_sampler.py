"""FrameSampler: synchronisation on the fps grid, and every kind of loss counted, never hidden."""
import numpy as np
import pytest

from vla_recorder.sampler import FrameSampler

FPS = 10.0
DT = 0.1


def img(i):
    return np.full((4, 4, 3), i, dtype=np.uint8)


def run(sampler, steps, *, skip_images=(), skip_commands=(), state=None, t_start=100.0, cameras=("cam",)):
    """A robot at FPS: image+state stamped t, the command for it received at t + 0.02."""
    frames = []
    for i in range(steps):
        t = t_start + i * DT
        frames += sampler.poll(t)
        if i not in skip_images:
            for cam in cameras:
                sampler.offer_image(cam, t, img(i))
        sampler.offer_state(t, np.array([i, -i], float) if state is None else state(i))
        if i not in skip_commands:
            sampler.offer_command(t + 0.02, np.array([0.01 * i]))
        sampler.offer_intervention(t + 0.02, i in (3, 4))
    return frames


def make(**kw):
    s = FrameSampler(FPS, ["cam"], state_dim=2, action_dim=1, **kw)
    s.start(100.0)
    return s


def test_every_published_frame_is_recorded_with_its_own_action():
    s = make()
    frames = run(s, 20)
    frames += s.poll(100.0 + 20 * DT, flush=True)
    assert len(frames) == 20 and s.counters.dropped == 0 and s.counters.late == 0
    for i, f in enumerate(frames):
        assert f["timestamp"] == pytest.approx(i * DT)
        assert f["cam"][0, 0, 0] == i
        np.testing.assert_array_equal(f["observation.state"], [i, -i])
        assert f["action"][0] == pytest.approx(0.01 * i)  # the command sent after observation i
        assert f["valid"] and f["intervention"] == (i in (3, 4))


def test_missing_image_is_dropped_and_counted_not_invented():
    s = make()
    frames = run(s, 20, skip_images={5, 6})
    frames += s.poll(102.0, flush=True)
    assert len(frames) == 18 and s.counters.dropped == 2
    assert [round(f["timestamp"] / DT) for f in frames[4:7]] == [4, 7, 8]


def test_silent_camera_counts_every_lost_slot():
    s = make()
    frames = run(s, 5)
    frames += s.poll(100.0 + 15 * DT)  # no image for 10 periods: within the 2 s allowed a silent camera
    assert len(frames) == 5 and s.counters.dropped == 0
    frames += s.poll(100.0 + 25 * DT + 2.0)
    assert len(frames) == 5 and s.counters.dropped == 21  # slots 5..25 are 2 s old


def test_stale_command_marks_late_and_missing_state_invalid():
    s = make(command_timeout=0.25)
    frames = run(s, 12, skip_commands=set(range(5, 12)))
    assert any(f["late"] for f in frames[8:]) and not any(f["late"] for f in frames[:5])
    s2 = FrameSampler(FPS, ["cam"], 2, 1)
    s2.start(0.0)
    s2.offer_image("cam", 0.0, img(0))
    s2.offer_command(0.01, np.array([0.1]))
    [frame] = s2.poll(0.1)
    assert not frame["valid"] and np.isnan(frame["observation.state"]).all()


def test_non_finite_state_is_invalid_and_kept_as_is():
    s = make()
    frames = run(s, 6, state=lambda i: np.array([np.inf if i == 2 else i, 0.0]))
    assert [f["valid"] for f in frames[:4]] == [True, True, False, True]
    assert np.isinf(frames[2]["observation.state"][0]) and s.counters.invalid == 1
    assert s.counters.invalid_reasons == {"state_nonfinite": 1}


@pytest.mark.parametrize("value", [1e39, -3.5e38, 1e300])
def test_values_beyond_float32_are_invalid_not_infinite_and_valid(value):
    """A command of 1e39 m/s is finite as float64 but inf in the float32 dataset: the row is invalid (the trainer
    refuses a valid row with inf), counted under its reason, and nothing is warned about on stderr."""
    s = FrameSampler(FPS, ["cam"], 2, 1)
    s.start(0.0)
    for i, command in enumerate([0.1, value, 0.2]):
        s.offer_image("cam", i * DT, img(i))
        s.offer_state(i * DT, np.array([i, 0.0]))
        s.offer_command(i * DT + 0.01, np.array([command]))
    with np.errstate(over="raise"):  # an overflow warning would have been raised here
        frames = s.poll(0.35)
    assert [f["valid"] for f in frames] == [True, False, True]
    assert np.isinf(frames[1]["action"][0]) and frames[1]["action"].dtype == np.float32
    assert s.counters.invalid == 1 and s.counters.invalid_reasons == {"action_nonfinite": 1}


def test_wrong_sizes_and_missing_sources_are_counted_by_reason():
    s = FrameSampler(FPS, ["cam"], 2, 1)
    s.start(0.0)
    s.offer_image("cam", 0.0, img(0))
    s.offer_state(0.0, np.array([1.0, 2.0, 3.0]))
    [frame] = s.poll(0.15)
    assert not frame["valid"]
    assert s.counters.invalid_reasons == {"state_wrong_size": 1, "action_missing": 1}


def test_faster_camera_keeps_the_image_nearest_the_slot():
    s = make()
    for j in range(9):  # 30 Hz camera, 10 Hz recording
        t = 100.0 + j / 30
        s.offer_image("cam", t, img(j))
        s.offer_state(t, np.zeros(2))
        s.offer_command(t, np.zeros(1))
    frames = s.poll(100.3)
    assert [f["cam"][0, 0, 0] for f in frames] == [0, 3, 6]
    assert s.counters.duplicate_images == 5  # image 8 opens slot 3


def test_two_cameras_need_both_images():
    s = FrameSampler(FPS, ["a", "b"], 2, 1)
    s.start(0.0)
    frames = run(s, 6, t_start=0.0, cameras=("a", "b"))
    s.offer_image("a", 0.6, img(6))  # b lost slot 6: known once b's slot 7 arrives
    frames += s.poll(0.75)
    assert len(frames) == 6 and s.counters.dropped == 0
    s.offer_image("a", 0.7, img(7))
    s.offer_image("b", 0.7, img(7))
    frames += s.poll(0.8)
    assert len(frames) == 7 and s.counters.dropped == 1
    assert frames[-1]["timestamp"] == pytest.approx(0.7)


def test_images_before_start_or_after_stop_are_ignored():
    s = FrameSampler(FPS, ["cam"], 2, 1)
    s.start(1.0)
    s.offer_image("cam", 0.9, img(0))
    assert s.t0 is None
    s.offer_image("cam", 1.0, img(1))
    s.stop(1.0)
    s.offer_image("cam", 1.1, img(2))
    assert len(s.poll(5.0, flush=True)) == 1


def test_lost_state_uses_the_previous_one_flagged_late():
    s = make()
    frames = []
    for i in range(6):
        t = 100.0 + i * DT
        frames += s.poll(t)
        s.offer_image("cam", t, img(i))
        if i != 3:  # the joint state of step 3 never arrives
            s.offer_state(t, np.array([i, -i], float))
        s.offer_command(t + 0.02, np.array([0.0]))
    assert [f["late"] for f in frames] == [False, False, False, True, False]
    np.testing.assert_array_equal(frames[3]["observation.state"], [2, -2])  # real values, older, flagged


def test_same_stamp_state_pairs_with_the_image_that_arrived_with_it():
    """A reset does not advance time: the last frame and the next episode's first share a stamp."""
    s = FrameSampler(FPS, ["cam"], state_dim=2, action_dim=1)
    s.start(99.9)
    s.offer_image("cam", 99.9, img(0))
    s.offer_state(99.9, np.array([2.0, 2.0]))
    s.offer_image("cam", 100.0, img(1))
    s.offer_state(100.0, np.array([1.0, 1.0]))   # the episode's last state, arrived with image 1
    s.stop(100.0)
    s.offer_state(100.0, np.array([0.0, 0.0]))   # after the reset, same stamp
    s.offer_command(100.05, np.array([0.0]))
    frames = s.poll(100.1, flush=True)
    np.testing.assert_array_equal(frames[-1]["observation.state"], [1.0, 1.0])


def test_first_frame_is_the_reset_scene_when_the_frame_before_arrives_late():
    """The frame before a reset shares the episode's start stamp; if it reaches the recorder after the START
    event, the episode still begins with the reset scene (a camera's images arrive in order)."""
    s = FrameSampler(FPS, ["cam"], 2, 1)
    s.start(100.0)
    s.offer_image("cam", 100.0, img(9))              # the previous episode's last frame, arriving late
    s.offer_state(100.0, np.array([9.0, 9.0]))
    s.offer_image("cam", 100.0, img(0))              # the reset scene
    s.offer_state(100.0, np.array([0.0, 0.0]))
    s.offer_command(100.05, np.array([0.0]))
    [frame] = s.poll(100.1)
    assert frame["cam"][0, 0, 0] == 0 and s.counters.duplicate_images == 1
    np.testing.assert_array_equal(frame["observation.state"], [0.0, 0.0])


def test_images_stamped_ahead_of_the_node_clock_wait_for_their_window_not_dropped():
    """Under use_sim_time the node clock lags the robot's stamps: the next image can arrive before the clock
    reaches the end of the previous slot. A slot with every image is complete and waits for its window (its
    action); only a slot missing an image is given up when a later one has it."""
    s = make()
    lag = 0.25
    frames = []
    for i in range(10):
        t = 100.0 + i * DT
        s.offer_image("cam", t, img(i))
        s.offer_state(t, np.array([i, -i], float))
        s.offer_command(t + 0.02, np.array([0.01 * i]))
        frames += s.poll(t - lag)
    frames += s.poll(100.0 + 10 * DT, flush=True)
    assert s.counters.dropped == 0 and [int(f["cam"][0, 0, 0]) for f in frames] == list(range(10))
    assert [f["action"][0] for f in frames] == pytest.approx([0.01 * i for i in range(10)])


def test_environment_state_is_matched_by_stamp_and_a_missing_one_is_nan_counted_not_invalid():
    s = make(env_state_dim=3)
    frames = []
    for i in range(10):
        t = 100.0 + i * DT
        frames += s.poll(t)
        s.offer_image("cam", t, img(i))
        if i != 4:  # the sim's state for frame 4 never arrives
            s.offer_env_state(t, np.array([i, 2 * i, -i], float))
        s.offer_env_state(t + 0.5 * DT, np.array([99.0, 99.0, 99.0]))  # another instant: never taken
        s.offer_state(t, np.array([i, -i], float))
        s.offer_command(t + 0.02, np.array([0.01 * i]))
    frames += s.poll(100.0 + 10 * DT, flush=True)
    assert len(frames) == 10 and s.counters.env_state_missing == 1 and s.counters.invalid == 0
    for i, f in enumerate(frames):
        env = f["observation.environment_state"]
        assert env.dtype == np.float32 and f["valid"]
        if i == 4:
            assert np.isnan(env).all()
        else:
            np.testing.assert_array_equal(env, [i, 2 * i, -i])
    assert "observation.environment_state" not in run(make(), 3)[0]  # not asked for: not there


def _lockstep(sampler, steps, late_every=3):
    """A simulated robot in lockstep: frame i is published (sent at wall 1000 + i), then its clock tick; the
    answer to it is sent at wall 1000 + i + 0.5, before frame i + 1. Every ``late_every``-th answer is taken by
    the recorder after the clock's next tick (received at t + DT, as under load), and its intervention flag too."""
    frames = []
    for i in range(steps):
        t = 100.0 + i * DT
        for cam in ("cam",):
            sampler.offer_image(cam, t, img(i))
        sampler.offer_state(t, np.array([i, -i], float), sent=1000.0 + i)
        late = i % late_every == 1
        received = t + DT if late else t + 0.02
        if late:
            frames += sampler.poll(t + DT)  # the recorder's timer at the next tick, before the answer
        sampler.offer_command(received, np.array([0.01 * i]), sent=1000.0 + i + 0.5)
        sampler.offer_intervention(received, i in (4, 5), sent=1000.0 + i + 0.5)
        frames += sampler.poll(t + DT)
    return frames + sampler.poll(100.0 + steps * DT, flush=True)


def test_under_simulated_time_an_answer_taken_after_the_next_tick_labels_its_own_frame():
    causal = make(causal=True)
    frames = _lockstep(causal, 20)
    assert len(frames) == 20 and causal.counters.dropped == 0
    for i, f in enumerate(frames):
        assert f["action"][0] == pytest.approx(0.01 * i), f"frame {i}"
        assert f["intervention"] == (i in (4, 5)), f"frame {i}"
    # By receive time alone, each late answer became the next frame's action and its frame kept the one before.
    plain = make()
    frames = _lockstep(plain, 20)
    wrong = [i for i, f in enumerate(frames) if f["action"][0] != pytest.approx(0.01 * i)]
    assert wrong and all(i % 3 == 1 for i in wrong)


def test_under_simulated_time_a_silent_command_source_closes_frames_after_the_command_timeout():
    s = make(causal=True, command_timeout=0.5)
    s.offer_command(99.95, np.array([0.3]), sent=999.5)
    frames = []
    for i in range(3):  # no command answers these frames
        t = 100.0 + i * DT
        s.offer_image("cam", t, img(i))
        s.offer_state(t, np.array([i, -i], float), sent=1000.0 + i)
        frames += s.poll(t + DT)
    assert frames == []  # waiting: an answer may still be on its way
    frames += s.poll(100.0 + 0.1 + 0.5)
    assert len(frames) == 1 and frames[0]["action"][0] == pytest.approx(0.3, abs=1e-6)  # the one in force
