"""Scale: 10, 30 and 100 edges through Flower's Simulation Engine, a sample of them each round.

For each edge count and partition (IID, Dirichlet 0.3), one run of the same data
(``scenario=synthetic``, 1x8x8 images, 10 classes, enough samples that each of the most edges
holds at least 100) with ``clients-per-round`` edges per round (default 10). A background thread
samples the memory of every process below this one by role (``benchmarks.load.RssSampler``):
``server`` is the process that runs the ServerApp (``flwr-simulation`` in the simulation engine,
``flwr-serverapp`` in a deployment), ``total`` every process of the run (SuperLink, Ray, the
edges' actors or SuperNodes). Rows of ``scale.json``: ``engine``, ``edges``,
``clients_per_round``, ``partition``, ``rounds``, ``wall_s``, ``s_per_round`` (median of the
rounds after the first, which pays Ray's start-up), ``overhead_s_per_message`` (the run's fixed
overhead per round: reply latency beyond one edge's compute, the messages of a round running side
by side), ``server_peak_rss_mib``, ``total_peak_rss_mib``, ``uplink_bytes``, ``downlink_bytes``,
``cloud_accuracy``, ``edge_accuracy``; ``scale.png`` plots seconds per round and server memory
against edges. Linux only (``/proc``).
"""

from __future__ import annotations

import argparse
import json
import math
import os
import statistics
import sys
import threading
import time
from pathlib import Path
from typing import IO, Any, cast

from benchmarks.harness import (
    config_from,
    figure,
    markdown_table,
    parser,
    results_dir,
    write_rows,
)
from benchmarks.load import RssSampler, _Prefixed, survivors
from hierfl.config import HierConfig

DEFAULTS: dict[str, Any] = {
    "scenario": "synthetic",
    "input-shape": "1x8x8",
    "experiences": 1,
    "rounds": 10,
    "local-epochs": 2,
    "cl": "naive",
}
MIN_PER_EDGE = 100  # train samples each edge holds at the most edges
PARTITIONS: dict[str, dict[str, Any]] = {
    "iid": {"partition": "iid"},
    "dirichlet": {"partition": "dirichlet", "dirichlet.alpha": 0.3},
}


def samples_per_class(edges: int, num_classes: int, test_fraction: float) -> int:
    """Samples per class such that ``edges`` edges hold at least ``MIN_PER_EDGE`` train
    samples each on average.

    >>> samples_per_class(100, 10, 0.25)
    1334
    """
    train = edges * MIN_PER_EDGE
    return math.ceil(train / num_classes / (1 - test_fraction))


def run_one(base: HierConfig, edges: int, partition: str, args: argparse.Namespace) -> dict:
    """One run; its ``scale.json`` row."""
    from hierfl.deploy.launch import run_local
    from hierfl.deploy.simulate import run_simulated

    out = Path(args.out).resolve() / f"scale_{args.engine}_{partition}_{edges}"
    config = HierConfig.from_mapping(
        {
            **PARTITIONS[partition],
            "clients": edges,
            "clients-per-round": min(args.per_round, edges),
            "out": str(out),
        },
        base=base,
    ).validate()
    echo = _Prefixed(f"[{partition} {edges:>3}] ", sys.stdout, threading.Lock())
    launch = run_simulated if args.engine == "simulation" else run_local
    sampler = RssSampler(os.getpid(), args.interval)
    start = time.perf_counter()
    with sampler:
        try:
            launch(config, echo=cast(IO[str], echo), timeout=args.timeout)
        finally:
            for pid, cmd in survivors(os.getpid()):
                echo.write(f"warning: process {pid} outlived the run; stopping it: {cmd}")
                os.kill(pid, 9)
    metrics = json.loads((out / "metrics.json").read_text())
    return row_from(metrics, config, args.engine, sampler, time.perf_counter() - start)


def row_from(
    metrics: dict, config: HierConfig, engine: str, sampler: RssSampler, launch_s: float
) -> dict:
    rounds = metrics.get("rounds", [])
    later = [r["wall_s"] for r in rounds[1:]] or [r["wall_s"] for r in rounds]
    comm, final = metrics["communication"], metrics["final"]
    return {
        "engine": engine,
        "edges": config.clients,
        "clients_per_round": config.round_clients,
        "partition": config.partition,
        "rounds": len(rounds),
        "wall_s": metrics["time"]["wall_s"],
        "launch_s": launch_s,
        "s_per_round": statistics.median(later) if later else 0.0,
        "first_round_s": rounds[0]["wall_s"] if rounds else 0.0,
        "overhead_s_per_message": metrics["time"].get("fixed_overhead_per_round_s", 0.0),
        "server_peak_rss_mib": sampler.peak_mib("serverapp"),
        "total_peak_rss_mib": sum(sampler.peak_kib.values()) / 1024,
        "uplink_bytes": comm["uplink_bytes"],
        "downlink_bytes": comm["downlink_bytes"],
        "cloud_accuracy": final.get("cloud_accuracy"),
        "edge_accuracy": final.get("edge_accuracy"),
    }


def markdown(rows: list[dict]) -> str:
    header = (
        "engine | partition | edges | per round | s/round | overhead s | server MiB | total MiB"
        " | up MB | down MB | cloud | edge"
    )
    lines = [
        f"{r['engine']} | {r['partition']} | {r['edges']} | {r['clients_per_round']} | "
        f"{r['s_per_round']:.2f} | {r['overhead_s_per_message']:.2f} | "
        f"{r['server_peak_rss_mib']:.0f} | {r['total_peak_rss_mib']:.0f} | "
        f"{r['uplink_bytes'] / 1e6:.2f} | {r['downlink_bytes'] / 1e6:.2f} | "
        f"{r['cloud_accuracy']:.3f} | {r['edge_accuracy']:.3f}"
        for r in rows
    ]
    return markdown_table(header, lines)


def plot(rows: list[dict], path: Path) -> None:
    fig = figure(figsize=(9, 3.5))
    left, right = fig.add_subplot(1, 2, 1), fig.add_subplot(1, 2, 2)
    for partition in sorted({r["partition"] for r in rows}):
        mine = sorted((r for r in rows if r["partition"] == partition), key=lambda r: r["edges"])
        edges = [r["edges"] for r in mine]
        left.plot(edges, [r["s_per_round"] for r in mine], "o-", label=partition)
        right.plot(edges, [r["server_peak_rss_mib"] for r in mine], "o-", label=partition)
    left.set(xlabel="edges", ylabel="seconds per round", title="round time")
    right.set(xlabel="edges", ylabel="server peak RSS, MiB", title="server memory")
    left.legend()
    fig.tight_layout()
    fig.savefig(path, dpi=120)


def main(argv: list[str] | None = None) -> None:
    p = parser(__doc__, overrides=True, out_help="folder for scale.json, scale.png and the runs")
    p.add_argument("--edges", default="10,30,100", help="edge counts, comma-separated")
    p.add_argument("--per-round", type=int, default=10, help="edges sampled per round")
    p.add_argument("--partitions", default="iid,dirichlet", help="iid and/or dirichlet")
    p.add_argument("--engine", choices=("simulation", "flower"), default="simulation")
    p.add_argument("--interval", type=float, default=0.5, help="memory sampling period, s")
    p.add_argument("--timeout", type=float, default=1800.0, help="seconds per run at most")
    args = p.parse_args(argv)
    counts = [int(e) for e in args.edges.split(",")]
    partitions = [s.strip() for s in args.partitions.split(",")]
    if unknown := sorted(set(partitions) - set(PARTITIONS)):
        p.error(f"--partitions: unknown {', '.join(unknown)}; use iid and/or dirichlet")
    spc = samples_per_class(max(counts), 10, 0.25)
    base = config_from({**DEFAULTS, "samples-per-class": spc}, args.overrides)
    out = results_dir(args.out)
    rows = []
    for partition in partitions:
        for edges in counts:
            rows.append(run_one(base, edges, partition, args))
            write_rows(out / "scale.json", base, rows)  # after every run: a crash keeps them
    print(markdown(rows))
    plot(rows, out / "scale.png")
    print(f"wrote {out / 'scale.json'} and {out / 'scale.png'}")


if __name__ == "__main__":
    main()
