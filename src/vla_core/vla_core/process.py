"""Process-wide settings that entry points choose (a node's process, ``vla``, ``vla-train``), never library imports.

Thread counts and offline flags change the whole process, so library modules leave them alone and each entry
point calls :func:`configure_process` once, before it builds anything.
"""
from __future__ import annotations

import os


def configure_process(opencv_threads: int = 1) -> None:
    """OpenCV on ``opencv_threads`` threads (1: deterministic and cheapest on model-size images; callers
    parallelise across cameras if at all), and model loaders offline: weights come from local directories only,
    never from a model hub (set only where the user has not chosen otherwise)."""
    import cv2
    cv2.setNumThreads(opencv_threads)
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")


def set_torch_threads(threads: int) -> None:
    """torch's intra-op threads for this process (torch is imported here, only by callers that use it)."""
    import torch
    torch.set_num_threads(threads)
