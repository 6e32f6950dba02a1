"""The round's new edge weights: the strategy's aggregate, kept only when it is sound.

Updates clipped by ``centered-clip`` are events. Nothing usable this round leaves the weights
as they were; an aggregate that is not finite or
exceeds ``weight-bound`` is rolled back to the previous weights, with an event.
"""

from __future__ import annotations

import logging

from hierfl.boundary import EdgeState, RoundRequest
from hierfl.cloud.federation import Federation
from hierfl.cloud.robust import aggregate_ok
from hierfl.results.events import event, update_clipped
from hierfl.results.run_result import RunResult

log = logging.getLogger("hierfl")


def next_edge_state(
    federation: Federation,
    edge_state: EdgeState,
    request: RoundRequest,
    result: RunResult,
    *,
    weight_bound: float,
) -> EdgeState:
    """The round's aggregate, or ``edge_state`` when there is none or it is rolled back."""
    aggregated = federation.aggregate()
    for partition, distance, radius in federation.clipped():
        result.failures.append(
            update_clipped(request, partition, distance, radius, "centered-clip")
        )
    if aggregated is None:
        log.warning("round %d: no usable edge result; edge weights unchanged", request.round + 1)
        return edge_state
    why = aggregate_ok(aggregated, weight_bound)
    if why:
        log.warning("aggregate rolled back to the previous edge weights: %s", why)
        result.failures.append(event("aggregate-rolled-back", request, reason=why))
        return edge_state
    return aggregated
