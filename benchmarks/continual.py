"""Continual-learning strategies x modes on class-incremental digits, 3 edges, 5 experiences.

Runs through ``hierfl.run`` in process (the same orchestrator, strategy and edge code as
``hierfl run``),
writes ``continual.json``, ``continual_accuracy.png`` (accuracy after each experience, per exit),
``continual_final.png`` (the final table as bars) and ``continual.md``, and prints the table.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import sys
import time
from pathlib import Path
from typing import Any

import hierfl
from hierfl.config import HierConfig
from hierfl.data.streams import build_benchmark
from hierfl.errors import ConfigError
from hierfl.options import parse_overrides
from hierfl.results.accuracy import summarize

# Cloud latent replay needs stable edge features: its runs freeze the edge segment after the
# first experience, and a lower cloud learning rate keeps the cloud from collapsing on the
# mix of old and new activations (Adam at 0.003 did, at 0.0005 it did not).
STRATEGIES: dict[str, dict[str, Any]] = {
    "naive": {},
    "edge-replay": {},
    "lwf": {},
    "ewc": {},
    "cloud-replay": {"freeze_edge_after": 0, "cloud_lr": 0.0005},
    "edge-replay+cloud-replay": {"freeze_edge_after": 0, "cloud_lr": 0.0005},
}
MODES = ("hierarchical", "split", "cloud", "edge")


def run_one(config: HierConfig, bench: Any) -> dict[str, Any]:
    start = time.perf_counter()
    result = hierfl.run(config, benchmark=bench)
    return {
        "final": result.final,
        "matrix": {e: result.accuracy.rows(e) for e in result.accuracy.exits()},
        "per_client": {
            str(pid): summarize(matrix) for pid, matrix in sorted(result.clients.items())
        },
        "early_exit_by_experience": result.metrics["early_exit_by_experience"],
        "uplink_bytes": result.communication["uplink_bytes"],
        "wall_s": time.perf_counter() - start,
    }


def table(rows: list[dict[str, Any]]) -> str:
    lines = [
        "| strategy | mode | cloud acc | cloud forgetting | edge acc | edge forgetting "
        "| edge acc per client (min-max) | wall s |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for r in rows:
        f = r["final"]

        def cell(key: str, f: dict[str, float] = f) -> str:
            return f"{f[key]:.3f}" if key in f else "-"

        clients = [
            c["edge_accuracy"]
            for c in r.get("per_client", {}).values()
            if c.get("edge_accuracy") is not None
        ]
        spread = f"{min(clients):.3f}-{max(clients):.3f}" if clients else "-"
        lines.append(
            f"| {r['strategy']} | {r['mode']} | {cell('cloud_accuracy')} | "
            f"{cell('cloud_forgetting')} | {cell('edge_accuracy')} | {cell('edge_forgetting')} "
            f"| {spread} | {r['wall_s']:.0f} |"
        )
    return "\n".join(lines)


def plot(rows: list[dict[str, Any]], path: Path) -> None:
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    figure = Figure(figsize=(10, 4), layout="constrained")
    FigureCanvasAgg(figure)
    axes = {name: figure.add_subplot(1, 2, i + 1) for i, name in enumerate(("edge", "cloud"))}
    for r in rows:
        for name, matrix in r["matrix"].items():
            seen = [sum(row) / len(row) for row in matrix]
            axes[name].plot(
                range(len(seen)), seen, marker="o", label=f"{r['strategy']} ({r['mode']})"
            )
    for name, ax in axes.items():
        ax.set_title(f"{name} exit: mean accuracy over experiences seen")
        ax.set_xlabel("after experience")
        ax.set_ylim(-0.02, 1.02)
        ax.grid(alpha=0.3)
        ax.legend(fontsize=7)
    figure.savefig(path)


def plot_final(rows: list[dict[str, Any]], path: Path) -> None:
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    figure = Figure(figsize=(max(6, 1.6 * len(rows)), 4), layout="constrained")
    FigureCanvasAgg(figure)
    ax = figure.add_subplot()
    labels = [f"{r['strategy']}\n({r['mode']})" for r in rows]
    for i, name in enumerate(("edge", "cloud")):
        values = [r["final"].get(f"{name}_accuracy", 0.0) for r in rows]
        ax.bar([x + 0.4 * i for x in range(len(rows))], values, width=0.4, label=f"{name} exit")
    ax.set_xticks([x + 0.2 for x in range(len(rows))], labels, fontsize=7)
    ax.set_ylabel("final stream accuracy")
    ax.set_ylim(0, 1)
    ax.legend()
    ax.grid(alpha=0.3, axis="y")
    figure.savefig(path)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__)
    p.add_argument("--out", default="benchmarks/results")
    p.add_argument("--strategies", default=",".join(STRATEGIES))
    p.add_argument(
        "--modes",
        default="hierarchical",
        help=f"comma-separated, or 'all' ({', '.join(MODES)}); pairs a mode cannot run "
        "(e.g. edge-replay in cloud mode) are skipped",
    )
    p.add_argument("overrides", nargs="*", metavar="key=value")
    args = p.parse_args(argv)
    base = HierConfig.from_mapping(parse_overrides(args.overrides)).validate()
    bench = build_benchmark(base)
    rows = []
    modes = MODES if args.modes == "all" else tuple(args.modes.split(","))
    for strategy in args.strategies.split(","):
        for mode in modes:
            config = dataclasses.replace(
                base, cl=strategy, mode=mode, **STRATEGIES.get(strategy, {})
            )
            try:
                config.validate()
            except ConfigError as exc:
                print(f"{strategy} / {mode}: skipped ({exc})", flush=True)
                continue
            row = {"strategy": strategy, "mode": mode, **run_one(config, bench)}
            rows.append(row)
            print(f"{strategy} / {mode}: {row['final']}", flush=True)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    result = {"benchmark": "continual", "config": base.to_dict(), "runs": rows}
    (out / "continual.json").write_text(json.dumps(result, indent=2))
    plot(rows, out / "continual_accuracy.png")
    plot_final(rows, out / "continual_final.png")
    markdown = table(rows)
    (out / "continual.md").write_text(markdown + "\n")
    print(markdown)
    return 0


if __name__ == "__main__":
    sys.exit(main())
