"""Held-out accuracy of both exits, and the early-exit policy's accuracy/offload trade-off.

With ``classes`` given, both exits predict among those classes only (the classes the stream
has introduced so far: a fixed head's outputs for classes not yet seen are masked).
"""

from __future__ import annotations

from collections.abc import Sequence

import torch

from hierfl.masking import class_mask, mask_logits
from hierfl.models.base import SplitModel


@torch.no_grad()
def _logits(
    model: SplitModel, x: torch.Tensor, batch_size: int, classes: Sequence[int] | None = None
) -> tuple[torch.Tensor, torch.Tensor]:
    """Edge-exit and full-model logits for ``x``, on the model's device, returned on the CPU."""
    model.eval()
    device = next(model.parameters()).device
    edge, cloud = [], []
    for start in range(0, len(x), batch_size):
        out = model.forward_edge(x[start : start + batch_size].to(device))
        edge.append(out.exit_logits.cpu())
        cloud.append(model.forward_cloud(out.activations).cpu())
    empty = torch.zeros(0, model.num_classes)
    edge_logits = torch.cat(edge) if edge else empty
    cloud_logits = torch.cat(cloud) if cloud else empty
    if classes is None:
        return edge_logits, cloud_logits
    keep = class_mask(model.num_classes, classes)
    return mask_logits(edge_logits, keep), mask_logits(cloud_logits, keep)


def exit_accuracies(
    model: SplitModel,
    x: torch.Tensor,
    y: torch.Tensor,
    *,
    batch_size: int = 512,
    classes: Sequence[int] | None = None,
) -> dict[str, float]:
    """Fractions in [0, 1] of samples each exit classifies correctly."""
    edge, cloud = _logits(model, x, batch_size, classes)
    n = max(len(y), 1)
    return {
        "edge": int((edge.argmax(1) == y).sum()) / n,
        "cloud": int((cloud.argmax(1) == y).sum()) / n,
    }


def early_exit_sweep(
    model: SplitModel,
    x: torch.Tensor,
    y: torch.Tensor,
    thresholds: tuple[float, ...],
    *,
    batch_size: int = 512,
    classes: Sequence[int] | None = None,
) -> list[dict[str, float]]:
    """For each threshold t: answer at the edge when its max softmax >= t, else offload.

    Returns rows ``{"threshold", "accuracy", "offload_fraction", "edge_answered"}``; offloading
    costs a round trip to the cloud, so a lower offload fraction means less traffic and latency.
    """
    edge, cloud = _logits(model, x, batch_size, classes)
    confidence = edge.softmax(1).max(1).values
    rows = []
    n = max(len(y), 1)
    for t in thresholds:
        at_edge = confidence >= t
        prediction = torch.where(at_edge, edge.argmax(1), cloud.argmax(1))
        rows.append(
            {
                "threshold": float(t),
                "accuracy": int((prediction == y).sum()) / n,
                "offload_fraction": 1.0 - int(at_edge.sum()) / n,
                "edge_answered": int(at_edge.sum()),
            }
        )
    return rows
