"""Held-out accuracy of both exits, and the early-exit policy's accuracy/offload trade-off.

With ``classes`` given, both exits predict among those classes only (the classes the stream
has introduced so far: a fixed head's outputs for classes not yet seen are masked).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import torch

from hierfl.data.containers import ExperienceData
from hierfl.models.base import SplitModel
from hierfl.results.accuracy import AccuracyMatrix
from hierfl.train.masking import class_mask, mask_logits


@torch.no_grad()
def _logits(
    model: SplitModel,
    x: torch.Tensor,
    batch_size: int,
    classes: Sequence[int] | None = None,
    edges: Sequence[Mapping[str, torch.Tensor]] = (),
) -> tuple[torch.Tensor, torch.Tensor]:
    """Edge-exit and full-model logits for ``x``, on the model's device, returned on the CPU;
    with ``edges``, ``x`` through each of those edge weights in turn, concatenated."""
    if edges:
        each = []
        for state in edges:
            model.edge.load_state_dict(state)
            each.append(_logits(model, x, batch_size, classes))
        return torch.cat([e for e, _ in each]), torch.cat([c for _, c in each])
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
    edges: Sequence[Mapping[str, torch.Tensor]] = (),
) -> dict[str, float]:
    """Fractions in [0, 1] of samples each exit classifies correctly (with ``edges``: averaged
    over those edge weights)."""
    edge, cloud = _logits(model, x, batch_size, classes, edges)
    y = y.repeat(max(len(edges), 1))
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
    edges: Sequence[Mapping[str, torch.Tensor]] = (),
) -> list[dict[str, float]]:
    """For each threshold t: answer at the edge when its max softmax >= t, else offload.

    Returns rows ``{"threshold", "accuracy", "offload_fraction", "edge_answered",
    "answered_edge_accuracy", "answered_cloud_accuracy"}``: the last two are the edge's and the
    full model's accuracy on the samples the edge answered (what answering early costs there).
    Offloading costs a round trip to the cloud, so a lower offload fraction means less traffic
    and latency.
    """
    edge, cloud = _logits(model, x, batch_size, classes, edges)
    y = y.repeat(max(len(edges), 1))
    confidence = edge.softmax(1).max(1).values
    edge_right, cloud_right = edge.argmax(1) == y, cloud.argmax(1) == y
    rows = []
    n = max(len(y), 1)
    for t in thresholds:
        at_edge = confidence >= t
        answered = int(at_edge.sum())
        correct = torch.where(at_edge, edge_right, cloud_right)
        rows.append(
            {
                "threshold": float(t),
                "accuracy": int(correct.sum()) / n,
                "offload_fraction": 1.0 - answered / n,
                "edge_answered": answered,
                "answered_edge_accuracy": int(edge_right[at_edge].sum()) / max(answered, 1),
                "answered_cloud_accuracy": int(cloud_right[at_edge].sum()) / max(answered, 1),
            }
        )
    return rows


def evaluate_experience(
    model: SplitModel,
    test: Sequence[ExperienceData],
    experience: int,
    *,
    exits: tuple[str, ...],
    masked: bool,
    thresholds: tuple[float, ...],
    client_states: Mapping[int, Mapping[str, torch.Tensor]],
    edge_states: Sequence[Mapping[str, torch.Tensor]],
    result: Any,
) -> None:
    """Fill row ``experience`` of ``result``'s accuracy matrices, then the early-exit sweep.

    Each edge's own matrix uses the weights it trained locally in the experience's last round
    (``client_states``) under the same cloud; the overall one ``edge_states`` (the aggregate,
    or the edges' own weights, the accuracy averaged over them; none: the model's own edge, as
    in cloud mode). With ``masked`` both exits predict among the classes introduced so far.
    """
    seen = test[: experience + 1]
    classes = sorted({int(c) for e in seen for c in e.classes}) if masked else None

    def record(matrix: AccuracyMatrix, edges: Sequence[Mapping[str, torch.Tensor]] = ()) -> None:
        for j, exp in enumerate(seen):
            accs = exit_accuracies(model, exp.x, exp.y, classes=classes, edges=edges)
            for exit_name in exits:
                matrix.record(exit_name, experience, j, accs[exit_name])

    for partition_id, state in sorted(client_states.items()):
        model.edge.load_state_dict(state)
        record(result.clients.setdefault(partition_id, AccuracyMatrix()))
    record(result.matrix, edge_states)
    if exits == ("edge", "cloud"):  # the early-exit policy on everything seen
        x, y = torch.cat([e.x for e in seen]), torch.cat([e.y for e in seen])
        rows = early_exit_sweep(model, x, y, thresholds, classes=classes, edges=edge_states)
        result.early_exit_by_experience.append({"experience": experience, "sweep": rows})
        result.early_exit = rows
