"""The debug overlay: the model-ready frame, enlarged, with the policy's proposal drawn on it (no rclpy).

What is drawn comes from other nodes (a proposed command, a status message) and is never trusted: the arrow is
clamped to the image, non-finite values draw no arrow, and text is reduced to printable ASCII of bounded length
(OpenCV's fonts draw nothing else), so that no input can make drawing fail.
"""
from __future__ import annotations

import math

import cv2
import numpy as np

WHITE, GREEN, YELLOW, RED = (255, 255, 255), (40, 220, 40), (250, 210, 0), (230, 40, 40)
MAX_LINE_CHARS = 80
MAX_LINES = 8


def arrow_tip(centre: tuple[float, float], command: tuple[float, float] | None, max_speed: float,
              reach: float) -> tuple[int, int] | None:
    """Image point (column, row) of the arrow's tip for the planar ``command`` (vx, vy) in base_link, or None
    when there is nothing finite to draw. Full length ``reach`` px at ``max_speed``; a command beyond it is
    drawn at full length in its direction (the text line shows its real value)."""
    if command is None or len(command) != 2:
        return None
    vx, vy = (float(v) for v in command)
    if not (math.isfinite(vx) and math.isfinite(vy)) or not max_speed > 0:
        return None
    largest = max(abs(vx), abs(vy))
    if largest == 0:
        return int(round(centre[0])), int(round(centre[1]))
    ux, uy = vx / largest, vy / largest  # the direction, without overflow for huge values
    unit = math.hypot(ux, uy)
    length = reach * min(1.0, largest * unit / max_speed)  # inf for a huge command: min() keeps full length
    # On the top-down camera x forward points up the image and y left points left: (-vy, -vx) in (col, row).
    return int(round(centre[0] - length * uy / unit)), int(round(centre[1] - length * ux / unit))


def printable(text: object, limit: int = MAX_LINE_CHARS) -> str:
    """``text`` as printable ASCII (anything else becomes '?'), at most ``limit`` characters."""
    text = str(text)
    if len(text) > limit:
        text = text[:limit - 3] + "..."
    return "".join(ch if " " <= ch <= "~" else "?" for ch in text)


def draw_overlay(rgb: np.ndarray, width: int, command: tuple[float, float] | None, max_speed: float,
                 lines: list[str], ok: bool) -> np.ndarray:
    """(H, W, 3) uint8 RGB -> (width*H/W, width, 3) uint8 RGB with an arrow and text.

    ``command`` is the proposed planar velocity (vx, vy) in base_link (REP 103: x forward, y left); on the
    top-down camera x forward points up the image and y left points left, so the arrow is (-vy, -vx) in
    image (column, row) coordinates, full length at ``max_speed`` and never longer. ``ok`` colours the text
    green or yellow. At most :data:`MAX_LINES` lines of :data:`MAX_LINE_CHARS` printable characters are drawn."""
    h, w = rgb.shape[:2]
    height = max(1, round(width * h / w))
    out = cv2.resize(rgb, (width, height), interpolation=cv2.INTER_NEAREST)
    centre = (width // 2, height // 2)
    tip = arrow_tip(centre, command, max_speed, 0.45 * min(width, height))
    if tip is not None and tip != centre:
        cv2.arrowedLine(out, centre, tip, RED, 2, line_type=cv2.LINE_AA, tipLength=0.25)
    cv2.circle(out, centre, 3, WHITE, -1)
    scale = max(0.35, width / 900)
    for i, text in enumerate(lines[:MAX_LINES]):
        y = int(14 + i * 18 * scale / 0.45)
        text = printable(text)
        cv2.putText(out, text, (6, y), cv2.FONT_HERSHEY_SIMPLEX, scale, (0, 0, 0), 3, cv2.LINE_AA)
        cv2.putText(out, text, (6, y), cv2.FONT_HERSHEY_SIMPLEX, scale, GREEN if ok else YELLOW, 1, cv2.LINE_AA)
    return out


def status_lines(status, command: tuple[float, float] | None) -> tuple[list[str], bool]:
    """Text lines for a vla_interfaces/PolicyStatus (or None) and the proposed command; and whether all is well."""
    if status is None:
        lines, ok = ["policy: no status"], False
    else:
        ok = bool(status.proposing) and not status.stale_inputs
        lines = [f"{printable(status.policy, 30) or '?'} {printable(status.version, 20)} "
                 f"[{printable(status.engine, 24)}]",
                 f"{'proposing' if status.proposing else 'NOT proposing'}  chunk {status.chunk_index}/"
                 f"{status.chunk_size}  p99 {status.latency_p99_ms:.1f} ms"]
        if status.stale_inputs:
            lines.append(printable("stale: " + ", ".join(list(status.stale_inputs)[:8])))
        if status.last_event:
            lines.append(printable(status.last_event, 60))
    lines.append("cmd: none" if command is None else f"cmd: vx {command[0]:+.3f} vy {command[1]:+.3f} m/s")
    return lines, ok and command is not None
