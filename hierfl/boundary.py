"""What crosses the boundary between the cloud and its edges, in both directions.

The cloud asks each edge for a round (``RoundRequest``, with the aggregated ``EdgeState``);
an edge answers with its locally trained weights and the chunk it ships (``RoundResult``,
``EdgeChunk``), in split mode with one batch at a time (``SplitStep``), or not at all
(``EdgeFailure``). Edge and cloud code meet here and in ``hierfl.train``, never in each other.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import torch

EdgeState = dict[str, torch.Tensor]
LABEL_BYTES = 8  # labels are int64 in memory (the wire packs them as uint8 when they fit)


@dataclass(frozen=True)
class RoundRequest:
    """What the cloud asks of every edge in one round."""

    experience: int
    round: int


@dataclass
class EdgeChunk:
    """What one edge ships to the cloud for a chunk of mini-batches.

    ``activations`` are detached activations at the cut; only in ``cloud`` mode are they the
    raw inputs, and then ``raw`` is True. ``trained`` counts the samples the edge trained on
    (the aggregation weight); ``num_examples`` counts the samples shipped.
    """

    activations: torch.Tensor
    labels: torch.Tensor
    batches: int
    exit_loss: float
    exit_correct: int
    compute_s: float
    truncated: bool = False
    trained: int = -1  # -1: as many as shipped
    raw: bool = False
    backlog: int = 0  # shipped samples that waited out an uplink outage (after the new ones)
    backlog_dropped: int = 0  # samples of that outage dropped to respect the bounds
    wire_bytes: int = 0  # the tensors' bytes as they travelled (set by the receiver)
    # what cloud-only would have uploaded for the samples the edge met this round, as stored
    cloud_only_uint8: int = 0
    cloud_only_png: int = 0

    def __post_init__(self) -> None:
        if self.trained < 0:
            self.trained = self.num_examples

    @property
    def num_examples(self) -> int:
        return int(self.labels.shape[0])

    @property
    def nbytes(self) -> int:
        return int(self.activations.numel() * self.activations.element_size()) + int(
            self.labels.numel() * LABEL_BYTES
        )


@dataclass
class RoundResult:
    """One edge's answer: its locally trained edge weights and the chunk it ships."""

    partition_id: int
    experience: int
    round: int
    edge_state: EdgeState
    chunk: EdgeChunk
    clipped_from: float = 0.0  # the update's norm before the cloud clipped it (0: not clipped)
    eval_state: EdgeState = field(default_factory=dict)  # the weights the edge holds, to evaluate


@dataclass
class SplitStep:
    """Split mode: activations of batch ``step`` on their way to the cloud; the edge waits for
    the gradient at the cut before its backward pass."""

    partition_id: int
    experience: int
    round: int
    step: int
    activations: torch.Tensor
    labels: torch.Tensor


@dataclass(frozen=True)
class EdgeFailure:
    """An edge that did not deliver a usable result this round."""

    node: str
    reason: str
    partition_id: int | None = None  # when known: the edge's data partition
    rejected: bool = False  # True: the edge replied, but its reply was refused (malformed)
