"""How the cloud reaches its edges: the ``Federation`` protocol its round loop is written against.

Implemented by ``hierfl.app.grid_federation.GridFederation`` over a Flower Grid (a ServerApp's,
or the in-process twin); tests may pass their own.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Any, Protocol

import torch

from hierfl.boundary import EdgeFailure, EdgeState, RoundRequest, RoundResult
from hierfl.cloud.exchange import FleetExchange, WeightExchange
from hierfl.cloud.validation import Expected
from hierfl.errors import HierflError

CloudStep = Callable[[torch.Tensor, torch.Tensor], torch.Tensor]


class Federation(Protocol):
    """How the cloud reaches its edges."""

    def wait_for_edges(self, count: int, timeout: float) -> int:
        """Wait until ``count`` edges are connected (at most ``timeout`` s); return how many."""
        ...

    def expect(self, expected: Expected) -> None:
        """What the next round's replies may hold."""

    def dispatch(self, request: RoundRequest, edge_state: EdgeState) -> int:
        """Send ``request`` with the aggregated weights to the edges; return how many."""
        ...

    def poll(self) -> list[RoundResult | EdgeFailure]:
        """The replies (or failures) that arrived since the last poll."""
        ...

    def outstanding(self) -> int:
        """Replies still awaited this round."""
        ...

    def expire(self) -> list[EdgeFailure]:
        """Give up on the outstanding replies; one failure each."""
        ...

    def discard(self, result: RoundResult) -> None:
        """Leave a refused reply out of the aggregate."""

    def aggregate(self) -> EdgeState | None:
        """The round's aggregate of the usable replies (None: none was usable)."""
        ...

    def clipped(self) -> list[tuple[int, float, float]]:
        """The edges whose updates the last aggregate clipped (``centered-clip``): partition,
        distance from the median update, radius."""
        ...

    def traffic(self) -> tuple[int, int]:
        """Payload bytes sent up and down so far."""
        ...

    def communication(self) -> dict[str, Any]:
        """Traffic per round and per edge, for metrics.json's ``communication`` block."""
        ...

    def state_dict(self) -> dict[str, Any]:
        """Server-side aggregation state a checkpoint keeps (e.g. FedAdam's moments)."""
        ...

    def load_state_dict(self, state: dict[str, Any]) -> None:
        """Restore what ``state_dict`` returned before the server restarted."""

    def bind_split(self, cloud_step: CloudStep) -> None:
        """Split mode: how to get the cloud's gradient at the cut for a batch of activations."""

    def bind_exchange(self, exchange: WeightExchange | FleetExchange) -> None:
        """A compressed weight exchange: requests carry coded changes, replies coded updates
        (``hierfl.cloud.exchange``)."""


def connect(federation: Federation, clients: int, timeout: float) -> None:
    """Wait for ``clients`` edges; fewer after ``timeout`` seconds is an error saying what to do.

    Raises:
        HierflError: not every edge connected within ``node-wait-timeout``.
    """
    connected = federation.wait_for_edges(clients, timeout)
    if connected < clients:
        raise HierflError(
            f"only {connected} of {clients} edges connected within node-wait-timeout="
            f"{timeout:g}s; start the missing hierfl-client processes or lower clients"
        )
    logging.getLogger("hierfl").info("%d of %d edges connected", connected, clients)
