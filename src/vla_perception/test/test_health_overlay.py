"""Camera health counters and the debug overlay (pure)."""
import numpy as np
import pytest
from vla_interfaces.msg import PolicyStatus

from vla_perception.health import CameraHealth
from vla_perception.overlay import MAX_LINE_CHARS, arrow_tip, draw_overlay, status_lines


def test_rate_silence_missed_and_levels():
    h = CameraHealth("top", fps=10.0, stale_after=0.5, window=2.0)
    assert h.level(0.0)[0] == 2 and "no frame" in h.level(0.0)[1]
    for i in range(10):
        h.frame(stamp=i * 0.1, wall=100 + i * 0.1, now=i * 0.1 + 0.01)
    h.frame(stamp=1.3, wall=101.3, now=1.31)  # 0.9 -> 1.3: frames at 1.0, 1.1 and 1.2 never came
    assert h.missed == 3 and h.frames == 11
    assert h.rate(101.3) == 11 / 2.0
    assert h.level(101.4) == (0, "ok")
    level, message = h.level(102.0)  # judged on arrivals: nothing for 0.7 s of the steady clock
    assert level == 2 and "no frame for 0.70 s" in message
    h.drop("encoding", "image encoding 'yuv422' is not supported")
    assert h.level(101.4)[0] == 1 and "yuv422" in h.level(101.4)[1]
    values = h.values(101.4)
    assert values["dropped"] == "1" and values["dropped_encoding"] == "1" and values["missed"] == "3"
    assert values["age_s"] == "0.100" and values["lag_s"] == "0.010"


def test_out_of_order_stamp_does_not_count_missed_or_rewind():
    h = CameraHealth("top", fps=10.0, stale_after=0.5)
    h.frame(1.0, 0.0)
    h.frame(0.9, 0.1)
    assert h.missed == 0 and h.last_stamp == 1.0


def test_a_future_stamp_is_refused_and_cannot_silence_the_stale_alarm():
    h = CameraHealth("top", fps=10.0, stale_after=0.5, max_future=1.0)
    h.frame(stamp=10.0, wall=50.0, now=10.0)
    problem = h.admit(stamp=10.0 + 1e6, now=10.1)  # one frame from a broken clock, far ahead
    assert "in the future" in problem and h.dropped["future_stamp"] == 1
    assert h.admit(stamp=10.9, now=10.1) is None  # within max_future: clocks of two machines differ a little
    # Nothing else arrives: the camera is reported stale (before, the future stamp made it look fresh forever).
    level, message = h.level(wall=51.0)
    assert level == 2 and "stale" in message
    assert h.admit(stamp=1e9, now=0.0) is None  # use_sim_time before the first /clock: nothing to judge by


def test_frames_that_arrive_old_are_stale():
    h = CameraHealth("top", fps=10.0, stale_after=0.5)
    h.frame(stamp=1234.0, wall=50.0, now=1_700_000_000.0)  # a camera clock set to 1970
    level, message = h.level(wall=50.05)
    assert level == 2 and "old when it arrived" in message


def red_rows(img):
    red = (img[..., 0] > 200) & (img[..., 1] < 80) & (img[..., 2] < 80)
    return np.nonzero(red)


def test_overlay_arrow_points_along_the_command():
    frame = np.full((96, 96, 3), 60, np.uint8)
    forward = draw_overlay(frame, 384, (0.25, 0.0), 0.25, ["x"], True)
    assert forward.shape == (384, 384, 3)
    rows, cols = red_rows(forward)
    assert rows.size and rows.mean() < 192 - 40 and abs(cols.mean() - 192) < 10  # +x forward = image up
    left = draw_overlay(frame, 384, (0.0, 0.25), 0.25, ["x"], True)
    rows, cols = red_rows(left)
    assert cols.mean() < 192 - 40 and abs(rows.mean() - 192) < 10  # +y left = image left
    none = draw_overlay(frame, 384, None, 0.25, ["x"], True)
    assert red_rows(none)[0].size == 0


def test_status_lines_show_the_policy_state():
    lines, ok = status_lines(None, None)
    assert not ok and "no status" in lines[0] and "cmd: none" in lines[-1]
    status = PolicyStatus(policy="bc", version="3", engine="onnxruntime-cpu", proposing=True,
                          stale_inputs=["observation.images.top"], latency_p99_ms=4.2, chunk_index=2, chunk_size=8)
    lines, ok = status_lines(status, (0.1, -0.05))
    text = "\n".join(lines)
    assert not ok and "bc 3 [onnxruntime-cpu]" in text and "observation.images.top" in text and "p99 4.2" in text
    assert "vx +0.100 vy -0.050" in text


@pytest.mark.parametrize("command", [(1e7, 0.0), (0.0, -1e7), (1e308, 1e308), (-1e308, 5.0), (1e-300, 0.0),
                                     (float("nan"), 0.1), (float("inf"), 0.0), (0.1, float("-inf"))])
def test_overlay_draws_any_command_without_raising(command):
    """A proposal of 1e7 m/s used to make OpenCV fail ("Can't parse 'pt2'") and took the node down."""
    frame = np.full((96, 96, 3), 60, np.uint8)
    lines, ok = status_lines(None, command)
    out = draw_overlay(frame, 384, command, 0.25, lines, ok)
    assert out.shape == (384, 384, 3)
    rows, cols = red_rows(out)
    if all(np.isfinite(command)) and max(abs(v) for v in command) > 1:
        # Clamped to full length in the command's direction: inside the image, reaching 0.45 of it.
        assert rows.size and (np.hypot(rows - 192, cols - 192).max() == pytest.approx(0.45 * 384, abs=6))
    elif not all(np.isfinite(command)):
        assert rows.size == 0  # nothing finite to draw


def test_arrow_tip_is_clamped_and_keeps_direction():
    assert arrow_tip((100, 100), (0.5, 0.0), 0.25, 50.0) == (100, 50)  # twice max speed: full length, up
    assert arrow_tip((100, 100), (0.0, 0.125), 0.25, 50.0) == (75, 100)  # half max speed to the left
    assert arrow_tip((100, 100), (1e308, -1e308), 0.25, 50.0) == (135, 65)  # huge: direction kept
    assert arrow_tip((100, 100), (0.1, 0.1), 0.0, 50.0) is None
    assert arrow_tip((100, 100), (0.1,), 0.25, 50.0) is None


def test_status_text_from_other_nodes_is_bounded_and_printable():
    status = PolicyStatus(policy="bc\x1b[31m\u202e" + "x" * 5000, version="\x00", engine="e",
                          stale_inputs=["s"] * 10000, last_event="\n" * 100)
    lines, _ = status_lines(status, (0.0, 0.0))
    assert all(len(line) <= MAX_LINE_CHARS and all(" " <= ch <= "~" for ch in line) for line in lines)
    draw_overlay(np.zeros((96, 96, 3), np.uint8), 384, (0.0, 0.0), 0.25, lines * 5, True)  # many lines: no raise
