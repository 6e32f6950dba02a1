"""Activations an edge could not send while its uplink was down: bounded, subsampled, counted.

During an outage the edge keeps training on its exit loss and appends each round's chunk to a
node-local backlog of at most ``backlog-mb``; past that bound, samples are dropped uniformly at
random (so every round of the outage stays represented) and counted. When the link is back, the
backlog rides along with the next chunk, subsampled again if both together would exceed
``max-chunk-mb``.
"""

from __future__ import annotations

import dataclasses
from pathlib import Path

import torch

from hierfl.boundary import LABEL_BYTES, EdgeChunk, RoundRequest
from hierfl.config import HierConfig
from hierfl.errors import UplinkDown
from hierfl.train.schedule import run_round, seed_for
from hierfl.util.storage import save_atomic

BACKLOG = "backlog.pt"


class Backlog:
    def __init__(self) -> None:
        self.activations: torch.Tensor | None = None
        self.labels = torch.zeros(0, dtype=torch.long)
        self.dropped = 0  # samples dropped to respect a bound, since the outage began

    def __len__(self) -> int:
        return int(self.labels.shape[0])

    def per_sample_bytes(self) -> int:
        if self.activations is None or not len(self):
            return 0
        return int(self.activations[0].numel() * self.activations.element_size()) + LABEL_BYTES

    def add(self, activations: torch.Tensor, labels: torch.Tensor) -> None:
        if not len(labels):
            return
        a, y = activations.detach().cpu(), labels.detach().cpu()
        self.activations = a if self.activations is None else torch.cat([self.activations, a])
        self.labels = torch.cat([self.labels, y])

    def trim(self, max_bytes: int, generator: torch.Generator) -> int:
        """Drop samples uniformly at random until the backlog fits ``max_bytes``; count them."""
        size = self.per_sample_bytes()
        if not size or len(self) * size <= max_bytes:
            return 0
        keep = max(max_bytes // size, 0)
        order = torch.randperm(len(self), generator=generator)[:keep].sort().values
        dropped = len(self) - keep
        assert self.activations is not None
        self.activations, self.labels = self.activations[order], self.labels[order]
        self.dropped += dropped
        return dropped

    def take(
        self, max_bytes: int, generator: torch.Generator
    ) -> tuple[torch.Tensor | None, torch.Tensor, int]:
        """Everything that fits ``max_bytes`` (a uniform subsample), and the total dropped."""
        self.trim(max_bytes, generator)
        out = (self.activations, self.labels, self.dropped)
        self.__init__()  # type: ignore[misc]
        return out

    # ---- node-local persistence ----------------------------------------------------------------
    @classmethod
    def load(cls, folder: Path) -> Backlog:
        backlog = cls()
        path = Path(folder) / BACKLOG
        if path.exists():
            saved = torch.load(path, weights_only=True)
            backlog.activations, backlog.labels = saved["activations"], saved["labels"]
            backlog.dropped = int(saved["dropped"])
        return backlog

    def save(self, folder: Path) -> None:
        path = Path(folder) / BACKLOG
        if not len(self) and not self.dropped:
            path.unlink(missing_ok=True)
            return
        save_atomic(
            {"activations": self.activations, "labels": self.labels, "dropped": self.dropped},
            path,
        )


def through_uplink(
    config: HierConfig,
    request: RoundRequest,
    partition_id: int,
    state_dir: Path,
    chunk: EdgeChunk,
) -> EdgeChunk:
    """Keep the chunk in the backlog while the uplink is down; add the backlog once it is up.

    Raises:
        UplinkDown: in a round of a ``link-down`` span (after training and saving the state),
            the way a real edge's reply would fail to leave it.
    """
    number = run_round(config, request)
    generator = torch.Generator().manual_seed(
        seed_for(config, partition_id, request.experience, request.round, 11)
    )
    backlog = Backlog.load(state_dir)
    if number in config.link_outages.get(partition_id, set()):
        backlog.add(chunk.activations, chunk.labels)
        backlog.trim(config.backlog_bytes, generator)
        backlog.save(state_dir)
        raise UplinkDown(
            f"uplink down in round {number}: {chunk.num_examples} samples kept in the backlog "
            f"({len(backlog)} waiting, {backlog.dropped} dropped to fit backlog-mb)"
        )
    if not len(backlog) and not backlog.dropped:
        return chunk
    a, y, dropped = backlog.take(config.max_chunk_bytes - chunk.nbytes, generator)
    backlog.save(state_dir)  # now empty: the file goes
    if a is None or not len(y):
        return dataclasses.replace(chunk, backlog_dropped=dropped)
    return dataclasses.replace(
        chunk,
        activations=torch.cat([chunk.activations if len(chunk.labels) else a[:0], a]),
        labels=torch.cat([chunk.labels, y]),
        backlog=len(y),
        backlog_dropped=dropped,
    )
