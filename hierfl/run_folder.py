"""Turn a finished run into the run folder of DESIGN.md section 4."""

from __future__ import annotations

import logging
from pathlib import Path

from hierfl.config import HierConfig
from hierfl.orchestrator import RunResult
from hierfl.report import build_metrics, write_run_folder

log = logging.getLogger("hierfl")


def finish_run(config: HierConfig, result: RunResult, out: Path) -> dict:
    """Write metrics.json, metrics.csv and accuracy.png; return the metrics."""
    busy = result.cloud_compute_s / result.wall_s if result.wall_s else 0.0
    metrics = build_metrics(
        config=config.to_dict(),
        mode=config.mode,
        matrix=result.matrix,
        classes=result.classes,
        communication={
            "uplink_bytes": result.uplink_bytes,
            "downlink_bytes": result.downlink_bytes,
            "raw_input_bytes_uplink": 0,
        },
        time={
            "wall_s": result.wall_s,
            "edge_compute_s": result.edge_compute_s,
            "cloud_compute_s": result.cloud_compute_s,
            "emulated_link_s": 0.0,
            "cloud_busy_fraction": busy,
        },
        rounds=result.rounds,
        extra={"events": result.failures, "rejected_replies": result.rejected},
    )
    write_run_folder(out, metrics)
    final = metrics["final"]
    log.info(
        "done in %.1fs: stream accuracy edge %.3f cloud %.3f; cloud busy %.0f%% of wall time; "
        "run folder %s",
        result.wall_s,
        final["edge_accuracy"],
        final["cloud_accuracy"],
        100 * busy,
        out,
    )
    return metrics
