"""Held-out accuracy of both exits: the edge exit ``h_e(f_e(x))`` and the full model."""

from __future__ import annotations

import torch

from hierfl.models.base import SplitModel


@torch.no_grad()
def exit_accuracies(
    model: SplitModel, x: torch.Tensor, y: torch.Tensor, *, batch_size: int = 512
) -> dict[str, float]:
    """Fractions in [0, 1] of samples each exit classifies correctly."""
    model.eval()
    correct = {"edge": 0, "cloud": 0}
    for start in range(0, len(y), batch_size):
        xb, yb = x[start : start + batch_size], y[start : start + batch_size]
        out = model.forward_edge(xb)
        correct["edge"] += int((out.exit_logits.argmax(1) == yb).sum())
        correct["cloud"] += int((model.forward_cloud(out.activations).argmax(1) == yb).sum())
    n = max(len(y), 1)
    return {k: v / n for k, v in correct.items()}
