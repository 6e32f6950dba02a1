"""What crosses the boundary between the cloud's round loop and its edges.

``Federation`` is how the cloud reaches its edges (Flower's Grid, or the in-process twin);
``EdgeFailure`` is an edge that did not deliver; ``RunResult`` is everything the report needs.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Protocol

import torch

from hierfl.edge_node import RoundRequest, RoundResult
from hierfl.metrics import AccuracyMatrix

EdgeState = dict[str, torch.Tensor]


@dataclass(frozen=True)
class EdgeFailure:
    """An edge that did not deliver a usable result this round."""

    node: str
    reason: str
    partition_id: int | None = None  # when known: the edge's data partition
    rejected: bool = False  # True: the edge replied, but its reply was refused (malformed)


class Federation(Protocol):
    """How the cloud reaches its edges."""

    def wait_for_edges(self, count: int, timeout: float) -> int: ...

    def expect(self, expected: Any) -> None:
        """What the next round's replies may hold (``hierfl.validation.Expected``)."""

    def dispatch(self, request: RoundRequest, edge_state: EdgeState) -> int: ...

    def poll(self) -> list[RoundResult | EdgeFailure]: ...

    def outstanding(self) -> int: ...

    def expire(self) -> list[EdgeFailure]: ...

    def discard(self, result: RoundResult) -> None: ...

    def aggregate(self) -> EdgeState | None: ...

    def traffic(self) -> tuple[int, int]: ...

    def state_dict(self) -> dict[str, Any]:
        """Server-side aggregation state a checkpoint keeps (e.g. FedAdam's moments)."""
        ...

    def load_state_dict(self, state: dict[str, Any]) -> None: ...

    def bind_split(self, cloud_step: Callable[[torch.Tensor, torch.Tensor], torch.Tensor]) -> None:
        """Split mode: how to get the cloud's gradient at the cut for a batch of activations."""


@dataclass
class RunResult:
    """Everything the report needs, gathered during the run."""

    matrix: AccuracyMatrix
    classes: list[list[int]]
    rounds: list[dict[str, float | int]] = field(default_factory=list)
    failures: list[dict[str, object]] = field(default_factory=list)
    rejected: int = 0
    edge_compute_s: float = 0.0
    cloud_compute_s: float = 0.0
    wall_s: float = 0.0
    uplink_bytes: int = 0
    downlink_bytes: int = 0
    raw_input_bytes_uplink: int = 0
    early_exit: list[dict[str, float]] = field(default_factory=list)
    early_exit_by_experience: list[dict[str, object]] = field(default_factory=list)
    clients: dict[int, AccuracyMatrix] = field(default_factory=dict)
    # Traffic per round and per client, from the federation's TrafficLog (hierfl.link).
    communication: dict[str, object] = field(default_factory=dict)
    emulated_link_s: float = 0.0
    status: str = "completed"  # or "failed" (``reason`` says why; hierfl.errors.RunFailed)
    reason: str = ""
