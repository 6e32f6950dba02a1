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


def update_clipped(item: RoundResult, request: RoundRequest, max_update_norm: float) -> dict:
    log.warning(
        "edge %d: update norm %.3g clipped to max-update-norm=%g",
        item.partition_id,
        item.clipped_from,
        max_update_norm,
    )
    name = f"partition {item.partition_id}"
    return event(
        "update-clipped", request, partition=item.partition_id, node=name, norm=item.clipped_from
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
