"""Edges at their own cuts against one cut for all: ResNet-18 on digits 3x32x32, three edges.

The fleet: edges ``--slowdowns`` times slower than this CPU (default 1, 4, 16) on uplinks of
``--bitrates`` bits/s (default 10, 1 and 0.25 Mbit/s; the downlink the same), each a
``hierfl-client`` of a Flower deployment on 127.0.0.1 (``hierfl.deploy.launch.run_local``), the
slowdown and the link emulated (``per-edge``). Rows: the planner's cut per edge, then every
single cut for all (``--cuts`` picks), for each ``--seeds``.

The runtime model (``predicted_s_per_round``) is hierfl's round as it runs: edge i trains its
round's batches (``step_s`` of its cut, measured here on one thread, times its slowdown), then
its reply waits for the emulated link (the request's weight change down, its codes and weight
update up, ``hierfl.analysis.weights`` for the update's bytes), plus Flower's fixed cost of a
message (``--overhead-s``, ``benchmarks.flower_overhead``'s figure for three edges on this
machine); the cloud trains each chunk as it arrives (its ``cloud_step_s`` a batch). So edge
i's chunk is done at ``own_i + cloud_i``, and the round takes

    max(max_i (own_i + cloud_i), sum_i cloud_i)

which is ``hierfl.analysis.fleet.round_seconds`` over ``own_i + cloud_i``; the planner's cuts
are ``best_cuts`` over the same measured tables. ``measured_s_per_round`` is the median wall
time of the rounds between the first (processes start, streams load) and the last (it
evaluates). Writes ``hetero.json`` and prints a Markdown table.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import statistics
import sys
import time
from pathlib import Path
from typing import Any

import torch

from benchmarks.harness import (
    config_from,
    markdown_table,
    number,
    parser,
    results_dir,
    write_rows,
)
from hierfl.analysis.fleet import best_cuts, per_edge_value, round_seconds
from hierfl.analysis.weights import message_bytes
from hierfl.api import edge_streams
from hierfl.config import HierConfig
from hierfl.data.streams import build_benchmark
from hierfl.models import model_for
from hierfl.registry import MODELS
from hierfl.train.exchange import averaged_names, exchanged_params

DEFAULTS: dict[str, Any] = {
    "model": "resnet18",
    "scenario": "digits",
    "input-shape": "3x32x32",
    "clients": 3,
    "experiences": 1,
    "rounds": 4,
    "local-epochs": 1,
}
LABEL_BYTES = 1  # labels travel as uint8
OVERHEAD_S = 2.15  # Flower's fixed cost of a message, three edges on 2 cores (docs/results.md)


def step_seconds(config: HierConfig, cut: str, num_classes: int, reps: int = 5) -> dict:
    """One batch at ``cut`` on this CPU, one thread: the edge's training step (segment and
    exit, forward, backward, optimizer), the cloud's from the cut; the wire bytes of a sample
    and the parameters the weight exchange moves."""
    shape = config.image_shape or (3, 32, 32)
    model = model_for(HierConfig.from_mapping({"cut": cut}, base=config), num_classes, shape)
    x = torch.rand(config.batch_size, *shape)
    y = torch.randint(0, num_classes, (config.batch_size,))
    edge_opt = torch.optim.Adam(model.edge.parameters(), lr=1e-3)
    cloud_opt = torch.optim.Adam(model.cloud.parameters(), lr=1e-3)
    loss = torch.nn.functional.cross_entropy

    def edge_step() -> torch.Tensor:
        out = model.forward_edge(x)
        edge_opt.zero_grad()
        loss(out.exit_logits, y).backward()
        edge_opt.step()
        return out.activations.detach()

    def cloud_step(a: torch.Tensor) -> None:
        cloud_opt.zero_grad()
        loss(model.forward_cloud(a), y).backward()
        cloud_opt.step()

    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        a = edge_step()  # warm-up
        cloud_step(a)
        edge_s, cloud_s = [], []
        for _ in range(reps):
            start = time.perf_counter()
            a = edge_step()
            edge_s.append(time.perf_counter() - start)
            start = time.perf_counter()
            cloud_step(a)
            cloud_s.append(time.perf_counter() - start)
    finally:
        torch.set_num_threads(threads)
    bits = model.bottleneck[1] if model.bottleneck else 32
    names = averaged_names(model.edge, config.averaged)
    return {
        "step_s": statistics.median(edge_s),
        "cloud_step_s": statistics.median(cloud_s),
        "wire_bytes": math.ceil(a[0].numel() * bits / 8),
        "params": exchanged_params(model.edge, names),
        "tensors": len(names),
    }


def tables(
    config: HierConfig, steps: dict[str, dict], samples: list[int], args: argparse.Namespace
) -> tuple[list[dict[str, float]], dict[str, float], list[float]]:
    """The runtime model's tables: per edge and cut, the edge's own seconds until its chunk
    is trained by the cloud (``own + cloud``); per cut the cloud's seconds for one edge's
    chunk (the mean edge's); and each edge's batches a round."""
    batches = [math.ceil(n / config.batch_size) * config.local_epochs for n in samples]
    mean_batches = statistics.mean(batches)
    own: list[dict[str, float]] = []
    for i, (slowdown, bps) in enumerate(zip(args.slowdowns, args.bitrates, strict=True)):
        row = {}
        for cut, s in steps.items():
            weights = message_bytes(s["params"], "topk", 0.0, config.weight_values, s["tensors"])
            up = samples[i] * config.local_epochs * (s["wire_bytes"] + LABEL_BYTES) + weights
            link = (up + weights) * 8 / bps
            compute = batches[i] * s["step_s"] * slowdown
            row[cut] = compute + link + args.overhead_s + batches[i] * s["cloud_step_s"]
        own.append(row)
    cloud = {cut: mean_batches * s["cloud_step_s"] for cut, s in steps.items()}
    return own, cloud, batches


def shared_cpu(works: list[float], cores: int) -> list[float]:
    """When each of ``works`` (CPU seconds, all starting at once) finishes on ``cores`` cores
    shared equally among the unfinished ones (processor sharing)."""
    left = dict(enumerate(works))
    done = [0.0] * len(works)
    now = 0.0
    while left:
        rate = min(1.0, cores / len(left))
        i = min(left, key=lambda j: left[j])
        step = left[i] / rate
        now += step
        for j in list(left):
            left[j] -= step * rate
            if left[j] <= 1e-12:
                done[j] = now
                del left[j]
    return done


def predict(
    cuts: tuple[str, ...],
    config: HierConfig,
    steps: dict[str, dict],
    samples: list[int],
    args: argparse.Namespace,
) -> dict[str, Any]:
    """The runtime model of one row, with the cores shared: at a round's start every edge
    computes, and so does the cloud (it trains the last round's chunks meanwhile), on
    ``--cores`` cores; an emulated slower edge then sleeps ``slowdown - 1`` times its compute's
    wall time (``hierfl.edge.link.slow_down``), so sharing the cores slows it as much again.
    Its reply then waits for the link. The round ends with the last reply; the cloud bounds
    it where its work on the round's chunks takes longer (back-pressure)."""
    batches = [math.ceil(n / config.batch_size) * config.local_epochs for n in samples]
    cloud = sum(b * steps[c]["cloud_step_s"] for b, c in zip(batches, cuts, strict=True))
    works = [b * steps[c]["step_s"] for b, c in zip(batches, cuts, strict=True)]
    walls = shared_cpu([*works, cloud], args.cores)[:-1]
    own = []
    for i, cut in enumerate(cuts):
        s = steps[cut]
        weights = message_bytes(s["params"], "topk", 0.0, config.weight_values, s["tensors"])
        up = samples[i] * config.local_epochs * (s["wire_bytes"] + LABEL_BYTES) + weights
        link = (up + weights) * 8 / args.bitrates[i]
        own.append(walls[i] * args.slowdowns[i] + link + args.overhead_s)
    return {"predicted_s_per_round": max(*own, cloud), "predicted_own_s": own, "cloud_s": cloud}


def fleet_config(base: HierConfig, cuts: tuple[str, ...], seed: int, out: Path, args) -> HierConfig:
    per_edge = per_edge_value(cuts, args.slowdowns, args.bitrates)
    return HierConfig.from_mapping(
        {"per-edge": per_edge, "seed": seed, "out": str(out)}, base=base
    ).validate()


def run_fleet(config: HierConfig, timeout: float) -> dict:
    """One deployment on loopback; its metrics.json."""
    from hierfl.deploy.launch import run_local

    run_local(config, echo=sys.stdout, timeout=timeout)
    return json.loads((Path(config.out) / "metrics.json").read_text())


def measured_round(metrics: dict) -> float:
    """The median wall time of the rounds between the first and the last."""
    walls = [r["wall_s"] for r in metrics["rounds"]]
    middle = walls[1:-1] or walls
    return statistics.median(middle)


def main(argv: list[str] | None = None) -> None:
    p = parser(__doc__, brief=True, overrides=True)
    p.add_argument("--seeds", type=int, nargs="+", default=[0, 1])
    p.add_argument("--slowdowns", type=float, nargs="+", default=[1.0, 4.0, 16.0])
    p.add_argument("--bitrates", type=float, nargs="+", default=[10e6, 1e6, 0.25e6])
    p.add_argument(
        "--cuts",
        nargs="+",
        default=["planner", "all"],
        help="planner, all, a single cut for every edge, or CUT,CUT,... (one per edge)",
    )
    p.add_argument("--overhead-s", type=float, default=OVERHEAD_S)
    p.add_argument("--cores", type=int, default=os.cpu_count() or 1, help="cores the run shares")
    p.add_argument("--repredict", metavar="JSON", help="an earlier hetero.json: predict its rows")
    p.add_argument("--timeout", type=float, default=3600.0)
    p.add_argument(
        "--plan-only", action="store_true", help="print the measured tables and predictions only"
    )
    args = p.parse_args(argv)
    base = config_from(DEFAULTS, args.overrides)
    if not len(args.slowdowns) == len(args.bitrates) == base.clients:
        raise SystemExit("give one --slowdowns and one --bitrates value per edge (clients)")
    if args.repredict:
        repredict(Path(args.repredict), base, args)
        return
    out = results_dir(args.out, resolve=True)
    bench = build_benchmark(base)
    # each edge's samples a round: its share of the (first) experience
    samples = [len(s.experiences[0]) for s in edge_streams(base, bench)]
    steps = {c: step_seconds(base, c, bench.num_classes) for c in MODELS.get(base.model).cut_points}
    own, cloud, batches = tables(base, steps, samples, args)
    _, planned = best_cuts(own, cloud)
    candidates: list[tuple[str, ...]] = []
    for name in args.cuts:
        if name == "planner":
            candidates.append(tuple(planned))
        elif name == "all":
            candidates += [(c,) * base.clients for c in steps]
        elif "," in name:  # a cut per edge, as given
            candidates.append(tuple(name.split(",")))
        else:
            candidates.append((name,) * base.clients)
    for cuts in dict.fromkeys(candidates):
        print(f"{', '.join(cuts)}: predicted {round_seconds(cuts, own, cloud):.1f} s a round")
    if args.plan_only:
        print(json.dumps({"steps": steps, "samples": samples, "own": own, "cloud": cloud}))
        return
    rows = []
    for seed in args.seeds:
        for cuts in dict.fromkeys(candidates):
            tag = "-".join(cuts)
            config = fleet_config(base, cuts, seed, out / f"hetero_{tag}_s{seed}", args)
            metrics = run_fleet(config, args.timeout)
            final, clients = metrics["final"], metrics["per_client"]
            rows.append(
                {
                    "cuts": list(cuts),
                    "planner": cuts == tuple(planned),
                    "slowdowns": args.slowdowns,
                    "bitrates": args.bitrates,
                    "seed": seed,
                    "cloud_accuracy": final["cloud_accuracy"],
                    "edge_accuracy": final["edge_accuracy"],
                    "edge_accuracies": [
                        clients[str(i)]["final"]["edge_accuracy"] for i in range(base.clients)
                    ],
                    "measured_s_per_round": measured_round(metrics),
                    "planner_s_per_round": round_seconds(cuts, own, cloud),
                    **predict(cuts, base, steps, samples, args),
                    "uplink_bytes": metrics["communication"].get("uplink_bytes"),
                    "per_depth": metrics.get("per_depth", {}),
                }
            )
            print(markdown(rows[-1:]), flush=True)
            write_rows(out / "hetero.json", base, rows, steps=steps, samples=samples, own=own)
    print(markdown(rows))


def repredict(path: Path, base: HierConfig, args: argparse.Namespace) -> None:
    """The runtime model again over an earlier run's rows and measured step times."""
    earlier = json.loads(path.read_text())
    for row in earlier["rows"]:
        row.update(predict(tuple(row["cuts"]), base, earlier["steps"], earlier["samples"], args))
    path.write_text(json.dumps(earlier, indent=2))
    print(markdown(earlier["rows"]))


def markdown(rows: list[dict]) -> str:
    lines = [
        f"{'planner: ' if r['planner'] else ''}{', '.join(r['cuts'])} | {r['seed']} | "
        f"{number(r['cloud_accuracy'])} | {number(r['edge_accuracy'])} | "
        f"{number(r['measured_s_per_round'])} | {number(r['predicted_s_per_round'])} | "
        f"{r['predicted_s_per_round'] / r['measured_s_per_round'] - 1:+.0%}"
        for r in rows
    ]
    return markdown_table(
        "cuts | seed | cloud | edge | measured s/round | predicted s/round | model error", lines
    )


if __name__ == "__main__":
    main()
