"""A round's record in ``metrics.json`` ``rounds``, and the one progress line the cloud logs per
round, with accuracies at an experience's end."""

from __future__ import annotations

import logging
from collections.abc import Mapping
from typing import Any

from hierfl.boundary import RoundRequest
from hierfl.config import HierConfig
from hierfl.results.run_result import RunResult

log = logging.getLogger("hierfl")


def round_record(
    request: RoundRequest,
    *,
    wall_s: float,
    edge_compute_s: float,
    cloud_compute_s: float,
    reply_latency_s: float,
    examples: int,
    cloud_by_depth: Mapping[str, Mapping[str, float | int]] | None = None,
) -> dict[str, Any]:
    """One round's figures; ``waiting_s`` is the round's time the cloud did not compute;
    ``cloud_by_depth`` (edges at several depths): what the cloud trained on from each cut."""
    record: dict[str, Any] = {
        "experience": request.experience,
        "round": request.round,
        "wall_s": wall_s,
        "edge_compute_s": edge_compute_s,
        "cloud_compute_s": cloud_compute_s,
        "reply_latency_s": reply_latency_s,
        "examples": examples,
        "waiting_s": max(wall_s - cloud_compute_s, 0.0),
    }
    if cloud_by_depth:
        record["cloud_by_depth"] = {d: dict(f) for d, f in cloud_by_depth.items()}
    return record


def log_round(
    config: HierConfig,
    request: RoundRequest,
    stats: Mapping[str, Any],
    result: RunResult | None,
) -> None:
    """Log round ``request``'s figures; with ``result``, also the accuracies just evaluated."""
    log.info(
        "exp %d/%d round %d/%d: %d examples; replies in %.1fs; edge compute %.2fs, "
        "cloud %.2fs, wall %.1fs%s",
        request.experience + 1,
        config.experiences,
        request.round + 1,
        config.rounds,
        stats["examples"],
        stats["reply_latency_s"],
        stats["edge_compute_s"],
        stats["cloud_compute_s"],
        stats["wall_s"],
        accuracy_suffix(result, request) if result is not None else "",
    )


def accuracy_suffix(result: RunResult, request: RoundRequest) -> str:
    k = request.experience
    rows = {name: result.matrix.row(name, k) for name in result.matrix.exits()}
    newest = " ".join(f"{name} {row[-1]:.3f}" for name, row in rows.items())
    seen = " ".join(f"{name} {sum(row) / len(row):.3f}" for name, row in rows.items())
    return f" | newest classes: {newest}; seen so far: {seen}"
