"""Plots people would rather look at than read: the loss curve of a run (PNG, matplotlib's Agg backend)."""
from __future__ import annotations

from pathlib import Path


def loss_curve_png(history: list[dict], path: Path, title: str = "training") -> Path:
    """Train and validation loss per epoch (log scale), and the validation action error per dimension."""
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    epochs = [row["epoch"] for row in history]
    mae_keys = sorted({k for row in history for k in row if k.startswith("val/action_mae/")})
    fig, axes = plt.subplots(1, 2 if mae_keys else 1, figsize=(10 if mae_keys else 5.5, 3.6), squeeze=False)
    ax = axes[0][0]
    for key, label in (("train/loss", "train"), ("val/loss", "validation")):
        values = [row.get(key) for row in history]
        if any(v is not None for v in values):
            ax.plot(epochs, values, marker="." if len(epochs) < 40 else None, label=label)
    ax.set_yscale("log")
    ax.set_xlabel("epoch")
    ax.set_ylabel("loss")
    ax.set_title(title)
    ax.grid(alpha=0.3)
    ax.legend()
    if mae_keys:
        ax = axes[0][1]
        for key in mae_keys:
            ax.plot(epochs, [row.get(key) for row in history], label=key.rsplit("/", 1)[-1])
        ax.set_xlabel("epoch")
        ax.set_ylabel("validation |error| (action units)")
        ax.set_title("action error per dimension")
        ax.grid(alpha=0.3)
        ax.legend()
    fig.tight_layout()
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path
