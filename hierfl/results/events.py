"""The events a run records in ``metrics.json`` ``events`` (and logs): one builder per kind.

Each returns the record; the orchestrator appends it. Every record names its ``event``, the
``experience`` and the ``round``; the rest depends on the kind (docs/reference.md).
"""

from __future__ import annotations

import logging

from hierfl.boundary import EdgeFailure, RoundRequest, RoundResult

log = logging.getLogger("hierfl")


def event(name: str, request: RoundRequest, **fields: object) -> dict:
    return {"event": name, "experience": request.experience, "round": request.round, **fields}


def update_clipped(
    request: RoundRequest, partition: int, norm: float, bound: float, setting: str
) -> dict:
    """An edge's update bounded before aggregation: ``max-update-norm`` scales its L2 norm
    ``norm`` down to ``bound``; ``centered-clip`` replaces it by the round's median update
    (``norm``: its distance from it, ``bound``: the radius)."""
    log.warning("edge %d: update bounded by %s (%.3g above %.3g)", partition, setting, norm, bound)
    return event(
        "update-clipped",
        request,
        partition=partition,
        node=f"partition {partition}",
        rule=setting,
        norm=norm,
        bound=bound,
    )


def edge_excluded(
    item: RoundResult, request: RoundRequest, *, reason: str, agreement: float, expected: float
) -> dict:
    """``label-screen`` left an edge's round out: its chunk and its weights."""
    log.warning("edge %d: round left out by label-screen: %s", item.partition_id, reason)
    return event(
        "edge-excluded",
        request,
        partition=item.partition_id,
        node=f"partition {item.partition_id}",
        rule="label-screen",
        reason=reason,
        agreement=round(agreement, 4),
        expected=round(expected, 4),
    )


def backlog_shipped(item: RoundResult, request: RoundRequest) -> dict:
    chunk = item.chunk
    log.warning(
        "edge %d: link back; %d backlog samples shipped, %d dropped to respect the bounds",
        item.partition_id,
        chunk.backlog,
        chunk.backlog_dropped,
    )
    return event(
        "backlog-shipped",
        request,
        partition=item.partition_id,
        node=f"partition {item.partition_id}",
        shipped=chunk.backlog,
        dropped=chunk.backlog_dropped,
    )


def edge_failed(failure: EdgeFailure, request: RoundRequest) -> dict:
    """An edge failed (``edge-failed``) or its reply was refused (``reply-rejected``)."""
    return event(
        "reply-rejected" if failure.rejected else "edge-failed",
        request,
        partition=failure.partition_id,
        node=failure.node,
        reason=failure.reason,
    )
