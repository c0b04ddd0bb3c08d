"""Camera health counters and the debug overlay (pure)."""
import numpy as np
from vla_interfaces.msg import PolicyStatus

from vla_perception.health import CameraHealth
from vla_perception.overlay import draw_overlay, status_lines


def test_rate_age_missed_and_levels():
    h = CameraHealth("top", fps=10.0, stale_after=0.5, window=2.0)
    assert h.level(0.0)[0] == 2 and "no frame" in h.level(0.0)[1]
    for i in range(10):
        h.frame(stamp=i * 0.1, wall=100 + i * 0.1)
    h.frame(stamp=1.3, wall=101.3)  # 0.9 -> 1.3: frames at 1.0, 1.1 and 1.2 never came
    assert h.missed == 3 and h.frames == 11
    assert h.rate(101.3) == 11 / 2.0
    assert h.level(1.4) == (0, "ok")
    level, message = h.level(2.0)
    assert level == 2 and "0.70 s old" in message
    h.drop("encoding", "image encoding 'yuv422' is not supported")
    assert h.level(1.4)[0] == 1 and "yuv422" in h.level(1.4)[1]
    values = h.values(1.4, 101.3)
    assert values["dropped"] == "1" and values["dropped_encoding"] == "1" and values["missed"] == "3"


def test_out_of_order_stamp_does_not_count_missed_or_rewind():
    h = CameraHealth("top", fps=10.0, stale_after=0.5)
    h.frame(1.0, 0.0)
    h.frame(0.9, 0.1)
    assert h.missed == 0 and h.last_stamp == 1.0


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
