"""Ending a recorded episode so that what the recorder reports is what the dataset holds (no rclpy).

A save either commits the whole episode or leaves the dataset as it was (the writer rolls back a save that fails
before its commit point, a full disk included); the summary says which, from the writer's state after the
attempt, never from the attempt's intent. A saved episode also gets a small sidecar,
``meta/recorder/episode-NNNNNN.json``, with why its rows were invalid and which inputs were refused while it was
recorded (LeRobot's readers ignore it; the episodes table keeps the counts).
"""
from __future__ import annotations

import time
from pathlib import Path

from vla_core.dataset import layout as L

SIDECAR_PATH = "meta/recorder/episode-{episode_index:06d}.json"


def close_episode(writer, episode, how: str, why: str, label: bool | None, counters, rejects: dict) -> dict:
    """Save (``how`` == "save", labelled ``label``) or discard ``episode`` of ``writer``'s dataset.

    ``counters`` are the sampler's counters of the episode; ``rejects`` the inputs refused while it was recorded
    (reason -> count). Returns the summary: episode_index, frames, late, dropped, invalid, achieved_fps, saved
    (whether the dataset holds the episode now), message, invalid_reasons, rejects, finalize_s.
    """
    summary = {"episode_index": episode.episode_index, "frames": episode.frames, "late": episode.late,
               "dropped": episode.dropped, "invalid": episode.invalid, "achieved_fps": 0.0, "saved": False,
               "invalid_reasons": dict(counters.invalid_reasons), "rejects": dict(rejects)}
    t0 = time.monotonic()
    if how != "save":
        episode.discard()
        summary["message"] = f"episode {episode.episode_index} discarded ({why}); re-record it"
    else:
        try:
            row = episode.save(success=label)
        except Exception as exc:  # noqa: BLE001 - a full disk, a failed encoder, no frames: say so, keep running
            episode.discard()  # the staging area (a no-op once the save closed the episode)
            if writer.num_episodes > episode.episode_index:  # committed before the failure
                summary.update(saved=True, message=(
                    f"episode {episode.episode_index} saved ({why}), but the dataset's statistics and info could "
                    f"not be rewritten ({type(exc).__name__}: {exc}); they are repaired when the dataset is next "
                    "written or opened"))
            else:
                summary["message"] = (f"episode {episode.episode_index} not saved: {exc} ({why}); the dataset is "
                                      "as it was before this episode")
        else:
            summary.update(saved=True, achieved_fps=row["achieved_fps"], message=(
                f"episode {episode.episode_index} saved: {episode.frames} frames, {row['achieved_fps']:.2f} fps "
                f"achieved, {episode.late} late, {episode.dropped} dropped ({counters.stale_images} images arrived "
                f"after their frame closed), {episode.invalid} invalid{_reasons(counters.invalid_reasons)}"
                f"{_refused(rejects)}{_env_missing(counters)} ({why}; finalized in {time.monotonic() - t0:.2f} s, of which "
                f"{episode.encode_flush_s:.2f} s encoding the last {episode.backlog_at_save} frames)"))
    if summary["saved"]:
        problem = write_sidecar(writer.root, summary, counters)
        if problem:
            summary["message"] += f"; {problem}"
    summary["finalize_s"] = time.monotonic() - t0
    return summary


def write_sidecar(root: Path, summary: dict, counters) -> str:
    """Write the episode's sidecar; '' on success, else what failed (the episode itself is committed)."""
    record = {key: summary[key] for key in ("episode_index", "frames", "late", "dropped", "invalid",
                                            "invalid_reasons", "rejects")}
    record.update(stale_images=counters.stale_images, duplicate_images=counters.duplicate_images,
                  interventions=counters.interventions, env_state_missing=counters.env_state_missing)
    try:
        L.atomic_write_json(Path(root) / SIDECAR_PATH.format(episode_index=summary["episode_index"]), record)
    except OSError as exc:
        return f"its reject counts were not written ({exc})"
    return ""


def _env_missing(counters) -> str:
    n = getattr(counters, "env_state_missing", 0)
    return f", {n} without the environment state" if n else ""


def _reasons(reasons) -> str:
    return f" ({', '.join(f'{k} {v}' for k, v in sorted(reasons.items()))})" if reasons else ""


def _refused(rejects: dict) -> str:
    total = sum(rejects.values())
    return f", {total} inputs refused ({', '.join(f'{k} {v}' for k, v in sorted(rejects.items()))})" if total else ""
