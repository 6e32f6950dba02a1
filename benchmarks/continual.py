"""Continual-learning strategies x modes on class-incremental digits, 3 edges, 5 experiences.

Runs through ``hierfl.run`` in process (the same orchestrator, strategy and edge code as
``hierfl run``),
writes ``continual.json``, ``continual_accuracy.png`` (accuracy after each experience, per exit),
``continual_final.png`` (the final table as bars) and ``continual.md``, and prints the table.
"""

from __future__ import annotations

import dataclasses
import sys
from pathlib import Path
from typing import Any

from benchmarks.harness import (
    config_from,
    figure,
    markdown_table,
    number,
    parser,
    results_dir,
    timed_run,
    write_json,
)
from hierfl.config import HierConfig
from hierfl.data.streams import build_benchmark
from hierfl.errors import ConfigError
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
    result, wall_s = timed_run(config, bench)
    return {
        "final": result.final,
        "matrix": {e: result.accuracy.rows(e) for e in result.accuracy.exits()},
        "per_client": {
            str(pid): summarize(matrix) for pid, matrix in sorted(result.clients.items())
        },
        "early_exit_by_experience": result.metrics["early_exit_by_experience"],
        "uplink_bytes": result.communication["uplink_bytes"],
        "wall_s": wall_s,
    }


TABLE = (
    "strategy | mode | cloud acc | cloud forgetting | edge acc | edge forgetting"
    " | edge acc per client (min-max) | wall s"
)


def table(rows: list[dict[str, Any]]) -> str:
    lines = []
    for r in rows:
        f = r["final"]
        clients = [
            c["edge_accuracy"]
            for c in r.get("per_client", {}).values()
            if c.get("edge_accuracy") is not None
        ]
        spread = f"{min(clients):.3f}-{max(clients):.3f}" if clients else "-"
        lines.append(
            f"{r['strategy']} | {r['mode']} | {number(f.get('cloud_accuracy'))} | "
            f"{number(f.get('cloud_forgetting'))} | {number(f.get('edge_accuracy'))} | "
            f"{number(f.get('edge_forgetting'))} | {spread} | {r['wall_s']:.0f}"
        )
    return markdown_table(TABLE, lines)


def plot(rows: list[dict[str, Any]], path: Path) -> None:
    fig = figure(figsize=(10, 4), layout="constrained")
    axes = {name: fig.add_subplot(1, 2, i + 1) for i, name in enumerate(("edge", "cloud"))}
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
    fig.savefig(path)


def plot_final(rows: list[dict[str, Any]], path: Path) -> None:
    fig = figure(figsize=(max(6, 1.6 * len(rows)), 4), layout="constrained")
    ax = fig.add_subplot()
    labels = [f"{r['strategy']}\n({r['mode']})" for r in rows]
    for i, name in enumerate(("edge", "cloud")):
        values = [r["final"].get(f"{name}_accuracy", 0.0) for r in rows]
        ax.bar([x + 0.4 * i for x in range(len(rows))], values, width=0.4, label=f"{name} exit")
    ax.set_xticks([x + 0.2 for x in range(len(rows))], labels, fontsize=7)
    ax.set_ylabel("final stream accuracy")
    ax.set_ylim(0, 1)
    ax.legend()
    ax.grid(alpha=0.3, axis="y")
    fig.savefig(path)


def main(argv: list[str] | None = None) -> int:
    p = parser(__doc__, overrides=True)
    p.add_argument("--strategies", default=",".join(STRATEGIES))
    p.add_argument(
        "--modes",
        default="hierarchical",
        help=f"comma-separated, or 'all' ({', '.join(MODES)}); pairs a mode cannot run "
        "(e.g. edge-replay in cloud mode) are skipped",
    )
    args = p.parse_args(argv)
    base = config_from({}, args.overrides)
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
    out = results_dir(args.out)
    result = {"benchmark": "continual", "config": base.to_dict(), "runs": rows}
    write_json(out / "continual.json", result)
    plot(rows, out / "continual_accuracy.png")
    plot_final(rows, out / "continual_final.png")
    markdown = table(rows)
    (out / "continual.md").write_text(markdown + "\n")
    print(markdown)
    return 0


if __name__ == "__main__":
    sys.exit(main())
