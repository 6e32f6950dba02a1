"""Cloud mode's uploads: the raw inputs of the current experience, kept and trained on each round.

Edges upload their experience's raw inputs once, in its first round; the cloud keeps them
for the experience and takes ``local-epochs`` shuffled passes over all of them every round,
as cloud-only training would. A checkpoint keeps them, so a resumed run trains on the same.
"""

from __future__ import annotations

import torch

from hierfl.boundary import RoundRequest
from hierfl.cloud.trainer import CloudTrainer

Upload = tuple[torch.Tensor, torch.Tensor]


class RawUploads:
    """The current experience's uploaded inputs and labels."""

    def __init__(self, uploads: list[Upload] | None = None) -> None:
        self.items: list[Upload] = list(uploads or [])

    def add(self, inputs: torch.Tensor, labels: torch.Tensor) -> None:
        self.items.append((inputs, labels))

    def clear(self) -> None:
        self.items = []

    def train(self, cloud: CloudTrainer, epochs: int, request: RoundRequest) -> None:
        """Queue ``epochs`` shuffled passes over everything uploaded so far."""
        if not self.items:
            return
        x = torch.cat([a for a, _ in self.items])
        y = torch.cat([b for _, b in self.items])
        for _ in range(epochs):
            order = torch.randperm(len(y), generator=cloud.generator)
            cloud.enqueue(x[order], y[order], experience=request.experience, round=request.round)
