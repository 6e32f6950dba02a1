"""Every continual method in online mode, next to the same method in multi-epoch mode.

Class-incremental digits, 5 experiences, 3 edges, hierarchical mode, through ``hierfl.run`` in
process. Online, each sample arrives once, in one round; an edge trains ``online-passes``
passes over a round's new samples and ships them once. For each method and regime it records
both exits' final stream accuracy and forgetting, the early-exit curve after the last
experience (with the exit's and the full model's accuracy on the samples the edge answers) and
the uplink bytes per training sample. Writes ``online.json``, ``online.md`` and ``online.png``.
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

from benchmarks.harness import (
    figure,
    markdown_table,
    number,
    parser,
    results_dir,
    timed_run,
    write_rows,
)
from hierfl.config import HierConfig
from hierfl.data.streams import build_benchmark
from hierfl.options import parse_overrides

METHODS = (
    "naive",
    "edge-replay",
    "lwf",
    "ewc",
    "cloud-replay",
    "latent-replay",
    "edge-replay+cloud-replay",
)
REGIMES: dict[str, dict[str, Any]] = {
    "online": {"online": True, "batch-size": 16},
    "multi-epoch": {},
}
BASE = {"experiences": 5, "clients": 3, "seed": 0}


def run_one(config: HierConfig, bench: Any) -> dict[str, Any]:
    result, wall_s = timed_run(config, bench)
    final = result.final
    samples = sum(len(e) for e in bench.train)
    curve = result.metrics.get("early_exit") or []
    at_09 = next((r for r in curve if abs(r["threshold"] - 0.9) < 1e-9), None)
    return {
        "edge_accuracy": final.get("edge_accuracy"),
        "cloud_accuracy": final["cloud_accuracy"],
        "edge_forgetting": final.get("edge_forgetting"),
        "cloud_forgetting": final.get("cloud_forgetting"),
        "edge_matrix": result.accuracy.rows("edge") if "edge" in result.accuracy.exits() else [],
        "early_exit": curve,
        "answered_at_0.9": at_09["edge_answered"] / max(_test_size(bench), 1) if at_09 else None,
        "answered_edge_accuracy_at_0.9": at_09["answered_edge_accuracy"] if at_09 else None,
        "answered_cloud_accuracy_at_0.9": at_09["answered_cloud_accuracy"] if at_09 else None,
        "uplink_bytes_per_sample": result.communication["uplink_bytes"] / samples,
        "wall_s": round(wall_s, 1),
    }


def _test_size(bench: Any) -> int:
    return sum(len(e) for e in bench.test)


def _cell(value: Any, digits: int = 3) -> str:
    return number(value, digits, none="–")


TABLE = (
    "method | regime | edge acc | edge forgetting | cloud acc | cloud forgetting"
    " | answered at 0.9 | edge / full model there | uplink B/sample"
)


def table(rows: list[dict[str, Any]]) -> str:
    lines = []
    for r in rows:
        there = (
            f"{_cell(r['answered_edge_accuracy_at_0.9'])} / "
            f"{_cell(r['answered_cloud_accuracy_at_0.9'])}"
        )
        lines.append(
            f"{r['method']} | {r['regime']} | {_cell(r['edge_accuracy'])} "
            f"| {_cell(r['edge_forgetting'])} | {_cell(r['cloud_accuracy'])} "
            f"| {_cell(r['cloud_forgetting'])} | {_cell(r['answered_at_0.9'], 2)} | {there} "
            f"| {r['uplink_bytes_per_sample']:.0f}"
        )
    return markdown_table(TABLE, lines)


def plot(rows: list[dict[str, Any]], path: Path) -> None:
    methods = list(dict.fromkeys(r["method"] for r in rows))
    fig = figure(figsize=(11, 4))
    axes = fig.subplots(1, 2, sharey=True)
    width = 0.38
    for ax, exit_name in zip(axes, ("edge", "cloud"), strict=True):
        regimes = list(dict.fromkeys(r["regime"] for r in rows))  # those that ran
        for i, regime in enumerate(regimes):
            values = [
                next(
                    (
                        r[f"{exit_name}_accuracy"] or 0.0
                        for r in rows
                        if r["method"] == m and r["regime"] == regime
                    ),
                    0.0,
                )
                for m in methods
            ]
            ax.bar(
                [j + (i - 0.5) * width for j in range(len(methods))], values, width, label=regime
            )
        ax.set_xticks(range(len(methods)), methods, rotation=30, ha="right")
        ax.set_title(f"{exit_name} exit: final stream accuracy")
        ax.set_ylim(0, 1)
        ax.grid(axis="y", alpha=0.3)
    axes[0].legend()
    fig.tight_layout()
    fig.savefig(path)


def main(argv: list[str] | None = None) -> int:
    p = parser(__doc__, brief=True, overrides=True)
    p.add_argument("--methods", default=",".join(METHODS))
    p.add_argument("--regimes", default=",".join(REGIMES))
    args = p.parse_args(argv)
    out = results_dir(args.out)
    base = HierConfig.from_mapping({**BASE, **parse_overrides(args.overrides)})
    bench = build_benchmark(base.validate())
    rows = []
    for method in args.methods.split(","):
        for regime in args.regimes.split(","):
            config = HierConfig.from_mapping({**REGIMES[regime], "cl": method}, base=base)
            row = {"method": method, "regime": regime, **run_one(config, bench)}
            rows.append(row)
            print(
                f"{method:26s} {regime:12s} edge {_cell(row['edge_accuracy'])} "
                f"cloud {_cell(row['cloud_accuracy'])} answered@0.9 "
                f"{_cell(row['answered_at_0.9'], 2)} B/sample "
                f"{row['uplink_bytes_per_sample']:.0f} ({row['wall_s']} s)",
                flush=True,
            )
    write_rows(out / "online.json", base, rows)
    (out / "online.md").write_text(table(rows) + "\n")
    plot(rows, out / "online.png")
    print(table(rows))
    return 0


if __name__ == "__main__":
    sys.exit(main())
