"""The debug overlay: the model-ready frame, enlarged, with the policy's proposal drawn on it (no rclpy)."""
from __future__ import annotations

import cv2
import numpy as np

WHITE, GREEN, YELLOW, RED = (255, 255, 255), (40, 220, 40), (250, 210, 0), (230, 40, 40)


def draw_overlay(rgb: np.ndarray, width: int, command: tuple[float, float] | None, max_speed: float,
                 lines: list[str], ok: bool) -> np.ndarray:
    """(H, W, 3) uint8 RGB -> (width*H/W, width, 3) uint8 RGB with an arrow and text.

    ``command`` is the proposed planar velocity (vx, vy) in base_link (REP 103: x forward, y left); on the
    top-down camera x forward points up the image and y left points left, so the arrow is (-vy, -vx) in
    image (column, row) coordinates, full length at ``max_speed``. ``ok`` colours the text green or yellow."""
    h, w = rgb.shape[:2]
    height = max(1, round(width * h / w))
    out = cv2.resize(rgb, (width, height), interpolation=cv2.INTER_NEAREST)
    centre = np.array([width / 2, height / 2])
    if command is not None and all(np.isfinite(command)):
        vx, vy = command
        reach = 0.45 * min(width, height) / max(max_speed, 1e-9)
        tip = centre + reach * np.array([-vy, -vx])
        cv2.arrowedLine(out, tuple(int(v) for v in centre), tuple(int(v) for v in tip), RED, 2,
                        line_type=cv2.LINE_AA, tipLength=0.25)
    cv2.circle(out, tuple(int(v) for v in centre), 3, WHITE, -1)
    scale = max(0.35, width / 900)
    for i, text in enumerate(lines):
        y = int(14 + i * 18 * scale / 0.45)
        cv2.putText(out, text, (6, y), cv2.FONT_HERSHEY_SIMPLEX, scale, (0, 0, 0), 3, cv2.LINE_AA)
        cv2.putText(out, text, (6, y), cv2.FONT_HERSHEY_SIMPLEX, scale, GREEN if ok else YELLOW, 1, cv2.LINE_AA)
    return out


def status_lines(status, command: tuple[float, float] | None) -> tuple[list[str], bool]:
    """Text lines for a vla_interfaces/PolicyStatus (or None) and the proposed command; and whether all is well."""
    if status is None:
        lines, ok = ["policy: no status"], False
    else:
        ok = bool(status.proposing) and not status.stale_inputs
        lines = [f"{status.policy or '?'} {status.version} [{status.engine}]",
                 f"{'proposing' if status.proposing else 'NOT proposing'}  chunk {status.chunk_index}/"
                 f"{status.chunk_size}  p99 {status.latency_p99_ms:.1f} ms"]
        if status.stale_inputs:
            lines.append("stale: " + ", ".join(status.stale_inputs))
        if status.last_event:
            lines.append(status.last_event[:60])
    lines.append("cmd: none" if command is None else f"cmd: vx {command[0]:+.3f} vy {command[1]:+.3f} m/s")
    return lines, ok and command is not None
