"""The runtime benchmark's measuring side: workloads, the three modes' runners, the hand-off.

Used by ``benchmarks.runtime``; see its docstring for what is measured and why.
"""

from __future__ import annotations

import os
import queue
import statistics
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from functools import partial
from pathlib import Path
from typing import Any

import torch

from hierfl.analysis.performance import LABEL_BYTES, Link, StageCosts, predict
from hierfl.cloud.trainer import CloudTrainer
from hierfl.edge.link import LinkEmulator, LinkSpec, slow_down
from hierfl.edge.trainer import EdgeTrainer
from hierfl.models import SplitModel, create_model

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
    data: str  # "digits" (at input_shape) or "synthetic"
    bottleneck: int = 0  # channels of a learned bottleneck at the cut (0: none)
    code_bits: int = 8


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
        from hierfl.data.streams import build_benchmark

        shape = "x".join(map(str, w.input_shape)) if w.input_shape != (1, 8, 8) else ""
        bench = build_benchmark(HierConfig(experiences=1, seed=seed, input_shape=shape))
        x, y = bench.train[0].x[:n], bench.train[0].y[:n]
    else:
        gen = torch.Generator().manual_seed(seed)
        x = torch.randn(n, *w.input_shape, generator=gen)
        y = torch.randint(0, 10, (n,), generator=gen)
    return [(x[i : i + w.batch_size], y[i : i + w.batch_size]) for i in range(0, n, w.batch_size)]


def _nbytes(t: torch.Tensor) -> int:
    return t.numel() * t.element_size()


Sizer = Callable[[torch.Tensor], float]
"""Bytes a tensor takes on the link: fp32 values, a bottleneck's codes, stored images, ..."""


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


def run_hierarchical(
    model: SplitModel, batches: Batches, link: LinkSpec, k: float, sizer: Sizer = _nbytes
) -> Measured:
    """The project's trainers in ``pipeline``: edge compute (k x), emulated uplink, cloud.

    ``sizer`` gives the activations' bytes on the link (fp32, or a bottleneck's codes).
    """
    edge = EdgeTrainer(model.edge, lr=0.01, momentum=0.9)
    cloud = CloudTrainer(model.cloud, lr=0.01, momentum=0.9, batch_size=len(batches[0][1]))
    emulator = LinkEmulator(link)

    def edge_step(batch) -> tuple[object, float]:
        chunk = edge.train_chunk([batch], max_bytes=2**40)
        return (chunk.activations, chunk.labels), chunk.compute_s + slow_down(chunk.compute_s, k)

    def link_step(message) -> tuple[object, float]:
        a, y = message
        return message, emulator.transfer(sizer(a) + y.numel() * LABEL_BYTES, "up")

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


def run_cloud(
    model: SplitModel, batches: Batches, link: LinkSpec, k: float, sizer: Sizer = _nbytes
) -> Measured:
    """Upload every raw batch, then train the whole network on the cloud (k does not apply).

    ``sizer`` gives a raw batch's bytes as uploaded (fp32, uint8 pixels or image files).
    """
    full = model.full_network()
    cloud = CloudTrainer(full, lr=0.01, momentum=0.9, batch_size=len(batches[0][1]))
    emulator = LinkEmulator(link)
    stages: dict[str, list[float]] = {"cloud_full": []}
    start = time.perf_counter()
    for x, y in batches:
        emulator.transfer(sizer(x) + y.numel() * LABEL_BYTES, "up")
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
