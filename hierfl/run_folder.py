"""Turn a finished run into the run folder of DESIGN.md section 4."""

from __future__ import annotations

import logging
from pathlib import Path

from hierfl.config import HierConfig
from hierfl.orchestrator import RunResult
from hierfl.overhead import round_overhead
from hierfl.report import build_metrics, write_run_folder

log = logging.getLogger("hierfl")
_TOTALS = ("uplink_bytes", "downlink_bytes")  # written from RunResult's own totals


def finish_run(config: HierConfig, result: RunResult, out: Path) -> dict:
    """Write metrics.json, metrics.csv and accuracy.png; return the metrics."""
    busy = result.cloud_compute_s / result.wall_s if result.wall_s else 0.0
    link_of = {
        (t["experience"], t["round"]): t.get("emulated_link_s", 0.0)
        for t in result.communication.get("per_round", [])
    }
    links = [link_of.get((r["experience"], r["round"]), 0.0) for r in result.rounds]
    overhead = round_overhead(result.rounds, links, config.clients)
    metrics = build_metrics(
        config=config.to_dict(),
        mode=config.mode,
        matrix=result.matrix,
        classes=result.classes,
        communication={
            "uplink_bytes": result.uplink_bytes,
            "downlink_bytes": result.downlink_bytes,
            "raw_input_bytes_uplink": result.raw_input_bytes_uplink,
            # Payload bytes: tensors only (activations after the codec, labels, weights,
            # gradients); message framing and config/metric records are not counted.
            "codec": config.codec,
            **{k: v for k, v in result.communication.items() if k not in _TOTALS},
        },
        time={
            "wall_s": result.wall_s,
            "edge_compute_s": result.edge_compute_s,
            "cloud_compute_s": result.cloud_compute_s,
            "emulated_link_s": result.emulated_link_s,
            "edge_slowdown": config.edge_slowdown,
            "cloud_busy_fraction": busy,
            "fixed_overhead_per_round_s": overhead.overhead_s if overhead else 0.0,
            "fixed_overhead_share": overhead.share if overhead else 0.0,
        },
        rounds=result.rounds,
        clients=result.clients,
        extra={
            "events": result.failures,
            "rejected_replies": result.rejected,
            "early_exit": result.early_exit,
            "early_exit_by_experience": result.early_exit_by_experience,
        },
    )
    write_run_folder(out, metrics)
    final = metrics["final"]
    accuracy = ", ".join(
        f"{k.removesuffix('_accuracy')} {v:.3f}"
        for k, v in final.items()
        if k.endswith("_accuracy")
    )
    log.info(
        "done in %.1fs: stream accuracy %s; cloud busy %.0f%% of wall time; run folder %s",
        result.wall_s,
        accuracy,
        100 * busy,
        out,
    )
    advice = overhead.advice(config.local_epochs) if overhead else None
    if advice:
        log.info(advice)
    return metrics
