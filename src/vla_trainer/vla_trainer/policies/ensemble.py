"""Ensemble action heads: K small heads on one shared trunk, and the uncertainty their disagreement gives.

A policy trained with ``ensemble_heads: K`` (K >= 2; 0, the default, is one plain head) predicts the normalised
action chunk K times from the same trunk features, each head from its own random initialisation, all trained on
the same targets. Where the training data pinned the trunk's features down the heads agree; on features the data
never produced (an unseen scene, a state far from the demonstrations) each head extrapolates from its own
initialisation and they disagree. The policy serves the heads' mean; the uncertainty is their standard deviation
in normalised action units (that is, in action standard deviations of the training data, or of the offset for
relative actions), averaged over the chunk's steps and the action dimensions: one scalar per sample.

Why heads rather than MC dropout: one deterministic pass of the trunk (the heads are a few percent of it), so the
exported ONNX stays deterministic, reproduces its golden outputs and matches torch; MC dropout would need K passes
of the whole network with random masks inside the graph, K times the tick's latency and outputs no golden pair can
check.
"""
from __future__ import annotations

from typing import Callable

import torch
from torch import nn


def check_ensemble_heads(n: int) -> None:
    """ValueError naming the fix unless ``n`` is 0 (one plain head) or at least 2."""
    if isinstance(n, bool) or not isinstance(n, int) or n < 0 or n == 1:
        raise ValueError(f"ensemble_heads {n!r}: use 0 (one head, no uncertainty) or K >= 2 heads (e.g. 5)")


def small_head(width: int, hidden: int, out: int) -> nn.Module:
    """One ensemble member: a two-layer MLP (a nonlinear head extrapolates off the data in its own way)."""
    return nn.Sequential(nn.Linear(width, hidden), nn.GELU(), nn.Linear(hidden, out))


class EnsembleHeads(nn.Module):
    """K heads on the same features: (..., width) -> (K, ..., out)."""

    def __init__(self, n: int, make: Callable[[], nn.Module]):
        super().__init__()
        check_ensemble_heads(n)
        self.heads = nn.ModuleList([make() for _ in range(n)])

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.stack([head(x) for head in self.heads])


def disagreement(preds: torch.Tensor) -> torch.Tensor:
    """(K, B, ...) normalised predictions -> (B,) the heads' standard deviation, averaged over everything after
    the batch (written with plain ops so that it exports to ONNX as it is)."""
    spread = (preds - preds.mean(dim=0, keepdim=True)).pow(2).mean(dim=0).sqrt()
    return spread.reshape(spread.shape[0], -1).mean(dim=1)


def mean_of_heads(loss: Callable[[torch.Tensor], torch.Tensor], preds: torch.Tensor) -> torch.Tensor:
    """The heads' mean loss (each head trained on the whole batch; the trunk gets their average gradient)."""
    return torch.stack([loss(p) for p in preds]).mean()
