"""Fixed-size heads in a class-incremental stream: mask the classes a node has not seen yet.

Every exit has one output per class of the whole benchmark from the start, so edges, the cloud
and FedAvg always agree on shapes. A node (an edge, or the cloud) trains on the logits of the
classes it has seen so far only: the others get ``-inf``, so their outputs receive no gradient
and are neither pushed down nor learnt. An edge that has not met a class yet therefore leaves
that class's weights to the edges that have, and its update does not undo theirs when the
cloud averages them. At evaluation, predictions are restricted to the classes that the stream
has introduced so far (see ``hierfl.train.evaluate``).
"""

from __future__ import annotations

from collections.abc import Iterable

import torch


class SeenClasses:
    """The classes one node has trained on so far, as a boolean mask over a fixed head."""

    def __init__(self, num_classes: int, classes: Iterable[int] = (), *, enabled: bool = True):
        self.enabled = enabled
        self.mask = torch.zeros(num_classes, dtype=torch.bool)
        self.add(torch.as_tensor(list(classes), dtype=torch.long))

    def add(self, labels: torch.Tensor) -> None:
        """Mark the classes present in ``labels`` as seen."""
        if labels.numel():
            self.mask[labels.detach().to("cpu", torch.long).unique()] = True

    def apply(self, logits: torch.Tensor) -> torch.Tensor:
        """``logits`` with unseen classes at ``-inf`` (unchanged when disabled or none seen)."""
        return mask_logits(logits, self.mask) if self.enabled and self.mask.any() else logits

    def classes(self) -> list[int]:
        return self.mask.nonzero().flatten().tolist()


def mask_logits(logits: torch.Tensor, keep: torch.Tensor) -> torch.Tensor:
    """Set the logits of classes outside the boolean ``keep`` mask to ``-inf``."""
    return logits.masked_fill(~keep.to(logits.device), float("-inf"))


def class_mask(num_classes: int, classes: Iterable[int]) -> torch.Tensor:
    """A boolean mask with ``classes`` set."""
    keep = torch.zeros(num_classes, dtype=torch.bool)
    keep[torch.as_tensor(list(classes), dtype=torch.long)] = True
    return keep
