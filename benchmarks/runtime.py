"""Measured wall time of hierarchical, split and cloud training next to the runtime model.

Workloads: the small CNN on digits, ResNet-18 and VGG-16 on synthetic CIFAR-shaped data, a few
batches each, one edge. Sweep: uplink bit rate {0.5, 1, 5, 20, 100} Mbit/s x edge slowdown
{1, 10}. Every point runs all three modes in this process with the project's trainers
(``EdgeTrainer``, ``CloudTrainer``), the emulated link of ``hierfl.link`` (a sleep per message)
and the emulated slower edge (a sleep of (k-1) x each measured edge step):

- hierarchical: a real pipeline of three threads, edge -> link -> cloud, so edge compute, the
  uplink and cloud compute overlap as they would on three devices (torch uses one thread per
  op, so edge and cloud each get a core of this 2-core machine);
- split: per batch edge forward, uplink, cloud forward+backward, gradient downlink, edge
  backward, strictly in turn;
- cloud: upload every raw batch, then train the whole network on the cloud.

``hierfl.runtime.predict`` is fed with the per-batch stage times measured in the same run (and
the link's bit rate and latency, not measured) and with the hand-off between stages (queue put
and get, thread wake-up, the GIL) measured once per run on a calibration pipeline
(``measure_handoff``), and ``ideal_bound`` gives the hierarchical pipeline's lower bound. The
cloud is this CPU: a faster cloud cannot be emulated on one machine, and the runtime model
(``hierfl plan --cloud-flops``) covers that case. A second section compares hierarchical with
cloud-only per cut, from activation bytes versus raw-input bytes.

Writes ``runtime.json``, ``runtime_time_vs_bitrate.png`` and ``runtime_crossover.png`` into
``--out`` and prints Markdown tables.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import queue
import statistics
import sys
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, replace
from functools import partial
from pathlib import Path
from typing import Any

import torch

from hierfl.cloud import CloudTrainer
from hierfl.edge import LABEL_BYTES, EdgeTrainer
from hierfl.link import LinkEmulator, LinkSpec, slow_down
from hierfl.models import SplitModel, create_model
from hierfl.runtime import Link, StageCosts, costs_from_flops, ideal_bound, predict

BITRATES = (0.5e6, 1e6, 5e6, 20e6, 100e6)
SLOWDOWNS = (1.0, 10.0)
MODES = ("hierarchical", "split", "cloud")
Batches = list[tuple[torch.Tensor, torch.Tensor]]


@dataclass(frozen=True)
class Workload:
    """One model cut at one point, trained on ``batches`` batches of ``batch_size``."""

    name: str
    model: str
    cut: str
    input_shape: tuple[int, int, int]
    batch_size: int
    batches: int
    data: str  # "digits" or "synthetic"


WORKLOADS = (
    Workload("small-cnn/digits", "small-cnn", "block3", (1, 8, 8), 16, 16, "digits"),
    Workload("resnet18/cifar-shaped", "resnet18", "layer4", (3, 32, 32), 4, 8, "synthetic"),
    Workload("vgg16/cifar-shaped", "vgg16", "block3", (3, 32, 32), 4, 10, "synthetic"),
)


@dataclass
class Measured:
    """Wall time of one run and the per-batch stage seconds measured in it."""

    wall_s: float
    stages: dict[str, list[float]]
    other_cores: float | None = None  # cores other processes kept busy meanwhile (Linux)

    def mean(self, key: str) -> float:
        values = self.stages.get(key, [])
        return statistics.fmean(values) if values else 0.0


def make_batches(w: Workload, seed: int = 0) -> Batches:
    n = w.batch_size * w.batches
    if w.data == "digits":
        from hierfl.config import HierConfig
        from hierfl.streams import build_benchmark

        bench = build_benchmark(HierConfig(experiences=1, seed=seed))
        x, y = bench.train[0].x[:n], bench.train[0].y[:n]
    else:
        gen = torch.Generator().manual_seed(seed)
        x = torch.randn(n, *w.input_shape, generator=gen)
        y = torch.randint(0, 10, (n,), generator=gen)
    return [(x[i : i + w.batch_size], y[i : i + w.batch_size]) for i in range(0, n, w.batch_size)]


def _nbytes(t: torch.Tensor) -> int:
    return t.numel() * t.element_size()


def _timed(fn: Callable[[], object]) -> tuple[object, float]:
    start = time.perf_counter()
    out = fn()
    return out, time.perf_counter() - start


Step = Callable[[object], tuple[object, float]]
"""One pipeline stage on one message: the message it passes on and the seconds of its work."""


def pipeline(items: list, edge: Step, link: Step, cloud: Step) -> Measured:
    """Edge thread -> link thread -> cloud thread, joined by queues; the wall ends with the cloud.

    Records, per stage and batch, the work its step reports (``edge``, ``link``, ``cloud``) and
    the time its thread spends on the batch beyond that work, waits for input excluded
    (``edge_handoff``, ...): its own side of the hand-offs, measured directly.
    """
    to_link: queue.Queue = queue.Queue()
    to_cloud: queue.Queue = queue.Queue()
    names = ("edge", "link", "cloud")
    stages: dict[str, list[float]] = {n: [] for n in names} | {f"{n}_handoff": [] for n in names}

    def record(name: str, began: float, work: float) -> None:
        stages[name].append(work)
        stages[f"{name}_handoff"].append(time.perf_counter() - began - work)

    def edge_loop() -> None:
        torch.set_num_threads(1)  # per thread: OpenMP's thread count is a per-thread setting
        for item in items:
            began = time.perf_counter()
            message, work = edge(item)
            to_link.put(message)
            record("edge", began, work)
        to_link.put(None)

    def link_loop() -> None:
        while (item := to_link.get()) is not None:
            began = time.perf_counter()
            message, work = link(item)
            to_cloud.put(message)
            record("link", began, work)
        to_cloud.put(None)

    def cloud_loop() -> None:
        torch.set_num_threads(1)
        while (item := to_cloud.get()) is not None:
            began = time.perf_counter()
            record("cloud", began, cloud(item)[1])

    threads = [threading.Thread(target=f) for f in (edge_loop, link_loop, cloud_loop)]
    start = time.perf_counter()
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    return Measured(time.perf_counter() - start, stages)


def run_hierarchical(model: SplitModel, batches: Batches, link: LinkSpec, k: float) -> Measured:
    """The project's trainers in ``pipeline``: edge compute (k x), emulated uplink, cloud."""
    edge = EdgeTrainer(model.edge, lr=0.01, momentum=0.9)
    cloud = CloudTrainer(model.cloud, lr=0.01, momentum=0.9, batch_size=len(batches[0][1]))
    emulator = LinkEmulator(link)

    def edge_step(batch) -> tuple[object, float]:
        chunk = edge.train_chunk([batch], max_bytes=2**40)
        return (chunk.activations, chunk.labels), chunk.compute_s + slow_down(chunk.compute_s, k)

    def link_step(message) -> tuple[object, float]:
        a, y = message
        return message, emulator.transfer(_nbytes(a) + y.numel() * LABEL_BYTES, "up")

    def cloud_step(message) -> tuple[object, float]:
        return None, _timed(lambda: cloud.train_batch(*message))[1]

    return pipeline(batches, edge_step, link_step, cloud_step)


def run_split(model: SplitModel, batches: Batches, link: LinkSpec, k: float) -> Measured:
    """Classic split learning, one batch at a time; the edge keeps its graph for the backward."""
    optimizer = torch.optim.SGD(model.edge.segment.parameters(), lr=0.01, momentum=0.9)
    cloud = CloudTrainer(model.cloud, lr=0.01, momentum=0.9, batch_size=len(batches[0][1]))
    emulator = LinkEmulator(link)
    stages: dict[str, list[float]] = {"edge_fwd": [], "edge_bwd": [], "cloud": []}
    start = time.perf_counter()
    for x, y in batches:
        model.edge.train()
        a, fwd = _timed(lambda x=x: model.edge.segment(x))
        stages["edge_fwd"].append(fwd + slow_down(fwd, k))
        emulator.transfer(_nbytes(a) + y.numel() * LABEL_BYTES, "up")  # type: ignore[arg-type]
        grad, c = _timed(lambda a=a, y=y: cloud.train_batch_grad(a.detach(), y))  # type: ignore[union-attr]
        stages["cloud"].append(c)
        emulator.transfer(_nbytes(grad), "down")  # type: ignore[arg-type]

        def backward(a=a, grad=grad) -> None:
            optimizer.zero_grad(set_to_none=True)
            a.backward(grad)  # type: ignore[union-attr]
            optimizer.step()

        bwd = _timed(backward)[1]
        stages["edge_bwd"].append(bwd + slow_down(bwd, k))
    return Measured(time.perf_counter() - start, stages)


def run_cloud(model: SplitModel, batches: Batches, link: LinkSpec, k: float) -> Measured:
    """Upload every raw batch, then train the whole network on the cloud (k does not apply)."""
    full = model.full_network()
    cloud = CloudTrainer(full, lr=0.01, momentum=0.9, batch_size=len(batches[0][1]))
    emulator = LinkEmulator(link)
    stages: dict[str, list[float]] = {"cloud_full": []}
    start = time.perf_counter()
    for x, y in batches:
        emulator.transfer(_nbytes(x) + y.numel() * LABEL_BYTES, "up")
    for x, y in batches:
        stages["cloud_full"].append(_timed(lambda x=x, y=y: cloud.train_batch(x, y))[1])
    return Measured(time.perf_counter() - start, stages)


RUNNERS = {"hierarchical": run_hierarchical, "split": run_split, "cloud": run_cloud}


def stage_costs(
    mode: str, m: Measured, act_bytes: float, raw_bytes: float, labels: float, handoff_s: float
) -> StageCosts:
    """The runtime model's inputs from one run's measured per-batch means and the hand-off."""
    seconds = dict.fromkeys(
        ("edge_fwd_s", "edge_bwd_s", "exit_s", "cloud_fwd_s", "cloud_bwd_s", "cloud_edge_s"), 0.0
    )
    if mode == "hierarchical":
        seconds.update(edge_fwd_s=m.mean("edge"), cloud_fwd_s=m.mean("cloud"))
    elif mode == "split":
        seconds.update(
            edge_fwd_s=m.mean("edge_fwd"),
            edge_bwd_s=m.mean("edge_bwd"),
            cloud_fwd_s=m.mean("cloud"),
        )
    else:
        seconds.update(cloud_edge_s=m.mean("cloud_full"))
    return StageCosts(
        **seconds,
        activation_bytes=act_bytes,
        gradient_bytes=act_bytes,
        raw_bytes=raw_bytes,
        label_bytes=labels,
        handoff_s=handoff_s,
    )


SHORT_RUN_S = 0.5
SHORT_RUNS = 5


def _busy_ticks() -> tuple[int, int] | None:
    """CPU clock ticks used so far by the whole machine and by this process; None off Linux."""
    try:
        cpu = [int(v) for v in Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:9]]
        own = Path("/proc/self/stat").read_text().rsplit(")", 1)[1].split()
    except (OSError, ValueError):
        return None
    return sum(cpu) - cpu[3] - cpu[4], int(own[11]) + int(own[12])  # idle, iowait; utime, stime


def with_other_load(run: Callable[[], Measured]) -> Measured:
    """``run()``, noting the cores that other processes kept busy during it (``other_cores``).

    The pipeline assumes edge and cloud threads each have a core of this 2-core machine; when
    another process takes one, they share the other and the stages no longer overlap.
    """
    before = _busy_ticks()
    m = run()
    after = _busy_ticks()
    if before and after:
        ticks = (after[0] - before[0]) - (after[1] - before[1])
        m.other_cores = max(0.0, ticks / os.sysconf("SC_CLK_TCK") / m.wall_s)
    return m


def median_run(run: Callable[[], Measured]) -> tuple[Measured, list[float]]:
    """One run, or the median-wall one of ``SHORT_RUNS`` if the first is under ``SHORT_RUN_S``.

    A run of a tenth of a second on this shared 2-core machine can lose a scheduler time slice
    or two (milliseconds each) to another process at any moment, outside the stages it times;
    runs of seconds average that out on their own. The prediction uses the stage times of the
    run it is compared with. Returns that run and the walls of all runs.
    """
    runs = [with_other_load(run)]
    if runs[0].wall_s < SHORT_RUN_S:
        runs += [with_other_load(run) for _ in range(SHORT_RUNS - 1)]
    walls = [m.wall_s for m in runs]
    return sorted(runs, key=lambda m: m.wall_s)[len(runs) // 2], walls


CALIBRATION = Workload("handoff-calibration", "small-cnn", "block3", (1, 8, 8), 16, 64, "synthetic")


def measure_handoff(repeats: int = 5) -> dict[str, Any]:
    """The hand-off between pipeline stages, in seconds per batch: measured once per run.

    Runs ``run_hierarchical`` (the sweep's own threads and queues) on ``CALIBRATION``, 64
    synthetic batches of the small CNN, with the link not emulated and k = 1: the edge and
    cloud threads train and contend for the GIL as in the sweep, and only the hand-offs come on
    top of their measured work. Without hand-offs the run would take the model's time for that
    work (``predict`` with ``handoff_s`` 0); the rest of its wall time, over the batches + 2
    hand-offs on its critical path (one per batch at the slowest stage, two to fill), is the
    hand-off. Median of ``repeats`` runs, each after the same warm-up as the sweep.
    """
    w = CALIBRATION
    model = create_model(w.model, cut=w.cut, num_classes=10, input_shape=w.input_shape, seed=0)
    batches = make_batches(w)
    warm_up(model, batches)
    runs = []
    for _ in range(repeats):
        m = with_other_load(partial(run_hierarchical, model, batches, LinkSpec(), 1.0))
        costs = stage_costs("hierarchical", m, 0.0, 0.0, 0.0, 0.0)
        work_s = predict("hierarchical", costs, Link(1.0, 1.0), len(batches)).total_s
        runs.append(
            {
                "wall_s": m.wall_s,
                "predicted_without_handoff_s": work_s,
                "handoff_s": max(0.0, (m.wall_s - work_s) / (len(batches) + 2)),
                "stage_means_s": {key: m.mean(key) for key in m.stages},
                "other_processes_cores": m.other_cores,
            }
        )
    return {
        "handoff_s": statistics.median(r["handoff_s"] for r in runs),
        "workload": f"{w.model} cut {w.cut}, {w.batches} synthetic batches of {w.batch_size}",
        "runs": runs,
    }


def warm_up(model: SplitModel, batches: Batches) -> None:
    """One untimed pass of every mode, so that first-call costs stay out of the figures."""
    off = LinkSpec()
    for runner in RUNNERS.values():
        runner(model, batches[:2], off, 1.0)


def sweep_workload(
    w: Workload, latency: float, handoff_s: float, log: Callable[[str], None]
) -> list[dict]:
    model = create_model(w.model, cut=w.cut, num_classes=10, input_shape=w.input_shape, seed=0)
    batches = make_batches(w)
    warm_up(model, batches)
    act_bytes = float(math.prod(model.activation_shape()) * 4 * w.batch_size)
    raw_bytes = float(math.prod(w.input_shape) * 4 * w.batch_size)
    labels = float(w.batch_size * LABEL_BYTES)
    rows = []
    for k in SLOWDOWNS:
        for bps in BITRATES:
            spec = LinkSpec(bps, bps, latency)
            link = Link(bps, bps, latency)
            for mode in MODES:
                m, walls = median_run(partial(RUNNERS[mode], model, batches, spec, k))
                costs = stage_costs(mode, m, act_bytes, raw_bytes, labels, handoff_s)
                p = predict(mode, costs, link, len(batches))
                p0 = predict(mode, replace(costs, handoff_s=0.0), link, len(batches))
                row = {
                    "workload": w.name,
                    "model": w.model,
                    "cut": w.cut,
                    "mode": mode,
                    "bitrate_bps": bps,
                    "latency_s": latency,
                    "edge_slowdown": k,
                    "batches": len(batches),
                    "batch_size": w.batch_size,
                    "measured_s": m.wall_s,
                    "measured_runs_s": walls,
                    "other_processes_cores": m.other_cores,
                    "predicted_s": p.total_s,
                    "predicted_over_measured": p.total_s / m.wall_s,
                    "predicted_without_handoff_s": p0.total_s,
                    "predicted_handoff_s": p.handoff_s,
                    "handoff_per_batch_s": handoff_s,
                    "bound_s": None,
                    "measured_over_bound": None,
                    "bottleneck": p.bottleneck,
                    "fill_s": p.fill_s,
                    "stage_means_s": {key: m.mean(key) for key in m.stages},
                    "uplink_bytes_per_batch": raw_bytes + labels
                    if mode == "cloud"
                    else act_bytes + labels,
                }
                if mode == "hierarchical":
                    bound = ideal_bound(costs, link, len(batches))
                    row.update(bound_s=bound, measured_over_bound=m.wall_s / bound)
                rows.append(row)
                log(
                    f"{w.name:22} k={k:<4g} {bps / 1e6:>5g} Mbit/s {mode:>12}: "
                    f"measured {m.wall_s:7.2f}s predicted {p.total_s:7.2f}s"
                )
    return rows


# ---- hierarchical versus cloud-only, per cut ----------------------------------------------------


def _crossover(f: Callable[[float], float], lo: float = 1e3, hi: float = 1e11) -> float | None:
    """Bit rate where ``f`` (hierarchical minus cloud seconds) changes sign, by bisection."""
    a, b = math.log10(lo), math.log10(hi)
    fa, fb = f(10**a), f(10**b)
    if fa == 0 or fb == 0 or (fa > 0) == (fb > 0):
        return None
    for _ in range(60):
        mid = (a + b) / 2
        if (f(10**mid) > 0) == (fa > 0):
            a = mid
        else:
            b = mid
    return 10 ** ((a + b) / 2)


def cut_comparison(w: Workload, cpu_flops: float, latency: float) -> list[dict]:
    """Every cut of ``w.model``: bytes per sample and where hierarchical and cloud-only cross.

    Compute from FLOPs at ``cpu_flops`` (this CPU's rate measured on the workload; the edge
    ``k`` times slower, the cloud this CPU), the same samples as the measured workload.
    """
    from hierfl.planner import measure_cuts

    out = []
    for cut in measure_cuts(w.model, w.input_shape, 10):
        for k in SLOWDOWNS:
            costs = costs_from_flops(cut, w.batch_size, cpu_flops / k, cpu_flops)

            def gap(bps: float, costs: StageCosts = costs) -> float:
                link = Link(bps, bps, latency)
                h = predict("hierarchical", costs, link, w.batches).total_s
                return h - predict("cloud", costs, link, w.batches).total_s

            cross = _crossover(gap)
            low = "hierarchical" if gap(1e3) < 0 else "cloud"
            out.append(
                {
                    "model": w.model,
                    "cut": cut.cut,
                    "edge_slowdown": k,
                    "activation_bytes_per_sample": cut.activation_bytes,
                    "raw_bytes_per_sample": cut.input_bytes,
                    "activation_over_raw": cut.activation_bytes / cut.input_bytes,
                    "crossover_bps": cross,
                    "faster_at_low_bitrate": low,
                    "faster_at_high_bitrate": "hierarchical" if gap(1e11) < 0 else "cloud",
                }
            )
    return out


def measured_crossovers(rows: list[dict]) -> list[dict]:
    """Between sweep points, where measured hierarchical and cloud swap (log interpolation)."""
    out = []
    keys = sorted({(r["workload"], r["edge_slowdown"]) for r in rows})
    for workload, k in keys:
        pts = {}
        for r in rows:
            if (r["workload"], r["edge_slowdown"]) == (workload, k):
                pts.setdefault(r["bitrate_bps"], {})[r["mode"]] = r["measured_s"]
        rates = sorted(pts)
        gaps = [math.log(pts[b]["hierarchical"] / pts[b]["cloud"]) for b in rates]
        found = []
        for i in range(len(rates) - 1):
            (b0, g0), (b1, g1) = (rates[i], gaps[i]), (rates[i + 1], gaps[i + 1])
            if (g0 < 0) != (g1 < 0):
                t = g0 / (g0 - g1)
                found.append(10 ** (math.log10(b0) + t * (math.log10(b1) - math.log10(b0))))
        out.append(
            {
                "workload": workload,
                "edge_slowdown": k,
                "crossover_bps": found,
                "hierarchical_faster_at": [b for b, g in zip(rates, gaps, strict=True) if g < 0],
            }
        )
    return out


def cpu_rate(w: Workload, rows: list[dict]) -> float:
    """This CPU's training FLOP/s on ``w``: cloud-mode full-network steps at k = 1."""
    from hierfl.planner import measure_cuts

    cut = next(c for c in measure_cuts(w.model, w.input_shape, 10) if c.cut == w.cut)
    per_batch = statistics.median(
        r["stage_means_s"]["cloud_full"]
        for r in rows
        if r["workload"] == w.name and r["mode"] == "cloud"
    )
    flops = 3.0 * w.batch_size * (cut.edge_flops + cut.cloud_flops)  # forward + 2x backward
    return flops / per_batch


# ---- output ---------------------------------------------------------------------------------


def where_the_time_goes(r: dict) -> str:
    """A hierarchical row's wall time beyond its bound: fill and drain, hand-offs, the rest."""
    keys = ("measured_s", "bound_s", "fill_s", "predicted_handoff_s", "handoff_per_batch_s")
    wall, bound, fill, handoff, per_batch = (1e3 * r[key] for key in keys)
    measured = r.get("stage_means_s", {}).get(f"{r['bottleneck']}_handoff")
    in_run = f"; measured in the run: {1e3 * measured:.2f} ms per batch" if measured else ""
    return (
        f"{r['measured_over_bound']:.2f}x: {wall:.1f} ms = bound {bound:.1f} "
        f"({r['batches']} x {r['bottleneck']}) + fill/drain {fill:.1f} + hand-off {handoff:.1f} "
        f"(({r['batches']} + 2) x {per_batch:.2f}) + rest {wall - bound - fill - handoff:.1f}"
        f"{in_run}{_other_load(r)}"
    )


OTHER_LOAD_CORES = 0.5
"""Other processes' load above which a row's timing is suspect: edge and cloud lose a core."""


def _other_load(r: dict) -> str:
    cores = r.get("other_processes_cores")
    return f" (other processes busy on {cores:.1f} cores)" if cores is not None else ""


def checks(rows: list[dict]) -> dict[str, object]:
    off = [r for r in rows if abs(r["predicted_over_measured"] - 1) > 0.15]
    over = [r for r in rows if r["mode"] == "hierarchical" and r["measured_over_bound"] > 1.2]
    by_point: dict[tuple, dict[str, float]] = {}
    for r in rows:
        key = (r["workload"], r["edge_slowdown"], r["bitrate_bps"])
        by_point.setdefault(key, {})[r["mode"]] = r["measured_s"]
    lost = [k for k, v in by_point.items() if k[2] <= 5e6 and v["hierarchical"] >= v["split"]]

    def name(r: dict) -> str:
        return f"{r['workload']} k={r['edge_slowdown']:g} {r['bitrate_bps'] / 1e6:g} Mbit/s"

    return {
        "prediction_within_15pct": not off,
        "prediction_misses": [
            f"{name(r)} {r['mode']}: predicted/measured {r['predicted_over_measured']:.2f}"
            f"{_other_load(r)}"
            for r in off
        ],
        "hierarchical_within_1.2x_bound": not over,
        "bound_misses": [f"{name(r)}: {where_the_time_goes(r)}" for r in over],
        "hierarchical_beats_split_at_5mbps_and_below": not lost,
        "split_wins": [f"{w} k={k:g} {b / 1e6:g} Mbit/s" for w, k, b in lost],
        "measured_while_other_processes_busy": [
            f"{name(r)} {r['mode']}{_other_load(r)}"
            for r in rows
            if (r.get("other_processes_cores") or 0.0) > OTHER_LOAD_CORES
        ],
    }


def markdown(rows: list[dict]) -> str:
    head = (
        "| workload | cut | k | Mbit/s | mode | measured s | predicted s | pred/meas "
        "| of which hand-off s | bound s | meas/bound |\n" + "|---" * 11 + "|"
    )
    lines = [head]
    for r in rows:
        bound = f"{r['bound_s']:.2f}" if r["bound_s"] else ""
        ratio = f"{r['measured_over_bound']:.2f}" if r["measured_over_bound"] else ""
        lines.append(
            f"| {r['workload']} | {r['cut']} | {r['edge_slowdown']:g} | "
            f"{r['bitrate_bps'] / 1e6:g} | {r['mode']} | {r['measured_s']:.2f} | "
            f"{r['predicted_s']:.2f} | {r['predicted_over_measured']:.2f} | "
            f"{r['predicted_handoff_s']:.3f} | {bound} | {ratio} |"
        )
    return "\n".join(lines)


def markdown_cuts(cuts: list[dict]) -> str:
    lines = [
        "| model | cut | k | act KiB/sample | raw KiB/sample | act/raw | faster at low rate "
        "| crossover Mbit/s | faster at high rate |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    for c in cuts:
        cross = f"{c['crossover_bps'] / 1e6:.3g}" if c["crossover_bps"] else "none"
        lines.append(
            f"| {c['model']} | {c['cut']} | {c['edge_slowdown']:g} | "
            f"{c['activation_bytes_per_sample'] / 1024:.1f} | "
            f"{c['raw_bytes_per_sample'] / 1024:.1f} | {c['activation_over_raw']:.2f} | "
            f"{c['faster_at_low_bitrate']} | {cross} | {c['faster_at_high_bitrate']} |"
        )
    return "\n".join(lines)


def plot(rows: list[dict], measured_cross: list[dict], cuts: list[dict], out: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    workloads = list(dict.fromkeys(r["workload"] for r in rows))
    fig, axes = plt.subplots(
        len(workloads), len(SLOWDOWNS), figsize=(11, 3.4 * len(workloads)), squeeze=False
    )
    colors = {"hierarchical": "tab:blue", "split": "tab:red", "cloud": "tab:green"}
    for i, w in enumerate(workloads):
        for j, k in enumerate(SLOWDOWNS):
            ax = axes[i][j]
            for mode in MODES:
                pts = sorted(
                    (r["bitrate_bps"] / 1e6, r["measured_s"], r["predicted_s"], r["bound_s"])
                    for r in rows
                    if r["workload"] == w and r["edge_slowdown"] == k and r["mode"] == mode
                )
                x = [p[0] for p in pts]
                ax.plot(x, [p[1] for p in pts], "o-", color=colors[mode], label=f"{mode} measured")
                ax.plot(x, [p[2] for p in pts], "--", color=colors[mode], label=f"{mode} model")
                if mode == "hierarchical":
                    ax.plot(x, [p[3] for p in pts], ":", color="k", label="hierarchical bound")
            ax.set(xscale="log", yscale="log", xlabel="uplink Mbit/s", ylabel="wall s")
            ax.set_title(f"{w}, edge slowdown {k:g}", fontsize=9)
            ax.grid(alpha=0.3)
    axes[0][0].legend(fontsize=6)
    fig.tight_layout()
    fig.savefig(out / "runtime_time_vs_bitrate.png", dpi=110)
    plt.close(fig)

    fig, (ax1, ax2) = plt.subplots(1, 2, figsize=(12, 4))
    for i, w in enumerate(workloads):
        for k, style in zip(SLOWDOWNS, ("o-", "s--"), strict=True):
            pts = {}
            for r in rows:
                if r["workload"] == w and r["edge_slowdown"] == k:
                    pts.setdefault(r["bitrate_bps"], {})[r["mode"]] = r["measured_s"]
            rates = sorted(pts)
            ratio = [pts[b]["hierarchical"] / pts[b]["cloud"] for b in rates]
            ax1.plot([b / 1e6 for b in rates], ratio, style, color=f"C{i}", label=f"{w} k={k:g}")
        for c in measured_cross:
            if c["workload"] == w:
                for b in c["crossover_bps"]:
                    ax1.axvline(b / 1e6, color=f"C{i}", alpha=0.3)
    ax1.axhline(1.0, color="k", lw=0.8)
    ax1.set(xscale="log", yscale="log", xlabel="uplink Mbit/s", ylabel="hierarchical / cloud")
    ax1.set_title("measured: below 1 hierarchical wins; vertical lines: crossovers", fontsize=9)
    ax1.legend(fontsize=6)
    for k, marker in zip(SLOWDOWNS, ("o", "s"), strict=True):
        sel = [c for c in cuts if c["edge_slowdown"] == k and c["crossover_bps"]]
        ax2.scatter(
            [c["activation_over_raw"] for c in sel],
            [c["crossover_bps"] / 1e6 for c in sel],
            marker=marker,
            label=f"edge slowdown {k:g}",
        )
        for c in sel:
            ax2.annotate(
                f"{c['model']}:{c['cut']}",
                (c["activation_over_raw"], c["crossover_bps"] / 1e6),
                fontsize=6,
            )
    ax2.axvline(1.0, color="k", lw=0.8)
    ax2.set(xscale="log", yscale="log", xlabel="activation bytes / raw-input bytes per sample")
    ax2.set(ylabel="crossover Mbit/s (model)")
    ax2.set_title("per cut: left of 1 hierarchical wins below the crossover", fontsize=9)
    ax2.legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(out / "runtime_crossover.png", dpi=110)
    plt.close(fig)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--out", default="benchmarks/results")
    p.add_argument("--latency", type=float, default=0.0, help="one-way seconds per message")
    p.add_argument(
        "--workloads", default=",".join(w.name for w in WORKLOADS), help="comma-separated names"
    )
    args = p.parse_args(argv)
    torch.set_num_threads(1)  # one core per stage: edge and cloud threads then use both cores
    chosen = [w for w in WORKLOADS if w.name in args.workloads.split(",")]
    start = time.perf_counter()
    calibration = measure_handoff()
    handoff_s = calibration["handoff_s"]
    print(f"hand-off between pipeline stages: {1e3 * handoff_s:.3f} ms per batch", flush=True)
    rows: list[dict] = []
    for w in chosen:
        rows += sweep_workload(w, args.latency, handoff_s, lambda s: print(s, flush=True))
    cuts = []
    for w in chosen:
        cuts += cut_comparison(w, cpu_rate(w, rows), args.latency)
    cross = measured_crossovers(rows)
    result = {
        "benchmark": "runtime",
        "assumptions": {
            "clients": 1,
            "cloud": "this CPU (a faster cloud is not emulated; see hierfl plan --cloud-flops)",
            "edge_slowdown": "sleep (k-1) x each measured edge step",
            "link": "sleep latency + 8 * bytes / bitrate per message (hierfl.link)",
            "prediction_inputs": "per-batch stage means measured in the same run; hand-off per "
            "batch measured once per run (handoff_calibration)",
            "repeats": f"runs under {SHORT_RUN_S} s: median wall of {SHORT_RUNS} (measured_runs_s)",
            "torch_threads": 1,
        },
        "handoff_calibration": calibration,
        "rows": rows,
        "measured_crossovers": cross,
        "cuts": cuts,
        "checks": checks(rows),
        "elapsed_s": time.perf_counter() - start,
    }
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    (out / "runtime.json").write_text(json.dumps(result, indent=2))
    plot(rows, cross, cuts, out)
    print(markdown(rows))
    print()
    print(markdown_cuts(cuts))
    print()
    for c in cross:
        found = ", ".join(f"{b / 1e6:.3g}" for b in c["crossover_bps"]) or "none in the sweep"
        faster = ", ".join(f"{b / 1e6:g}" for b in c["hierarchical_faster_at"]) or "none"
        print(
            f"- {c['workload']} k={c['edge_slowdown']:g}: hierarchical faster than cloud at "
            f"{faster} Mbit/s; measured crossover(s) at {found} Mbit/s"
        )
    print(json.dumps(result["checks"], indent=2))
    print(f"elapsed {result['elapsed_s']:.0f}s; wrote {out / 'runtime.json'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
