"""``RunResult``: everything a run gathers for its report, filled in as the run goes."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from hierfl.results.accuracy import AccuracyMatrix


@dataclass
class RunResult:
    """Everything the report needs, gathered during the run."""

    matrix: AccuracyMatrix
    classes: list[list[int]]
    rounds: list[dict[str, Any]] = field(default_factory=list)  # progress.round_record's
    failures: list[dict[str, object]] = field(default_factory=list)
    rejected: int = 0
    edge_compute_s: float = 0.0
    cloud_compute_s: float = 0.0
    wall_s: float = 0.0
    uplink_bytes: int = 0
    downlink_bytes: int = 0
    raw_input_bytes_uplink: int = 0
    # what cloud-only would have uploaded for the samples the edges met, as stored
    cloud_only_uint8_bytes: int = 0
    cloud_only_png_bytes: int = 0
    early_exit: list[dict[str, float]] = field(default_factory=list)
    early_exit_by_experience: list[dict[str, object]] = field(default_factory=list)
    clients: dict[int, AccuracyMatrix] = field(default_factory=dict)
    # edges at several depths: what the cloud trained on from each (CloudTrainer.depth_figures)
    cloud_by_depth: dict[str, dict[str, float | int]] = field(default_factory=dict)
    # Traffic per round and per client, from the federation's TrafficLog (hierfl.results.traffic).
    communication: dict[str, object] = field(default_factory=dict)
    emulated_link_s: float = 0.0
    status: str = "completed"  # or "failed" (``reason`` says why; hierfl.errors.RunFailed)
    reason: str = ""
