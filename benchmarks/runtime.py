"""Measured wall time of hierarchical, split and cloud training next to the runtime model.

Workloads: the small CNN on digits, ResNet-18 and VGG-16 on synthetic CIFAR-shaped data, a few
batches each, one edge. Sweep: uplink bit rate {0.5, 1, 5, 20, 100} Mbit/s x edge slowdown
{1, 10}. Every point runs all three modes in this process with the project's trainers
(``EdgeTrainer``, ``CloudTrainer``), the emulated link of ``hierfl.edge.link`` (a sleep per message)
and the emulated slower edge (a sleep of (k-1) x each measured edge step):

- hierarchical: a real pipeline of three threads, edge -> link -> cloud, so edge compute, the
  uplink and cloud compute overlap as they would on three devices (torch uses one thread per
  op, so edge and cloud each get a core of this 2-core machine);
- split: per batch edge forward, uplink, cloud forward+backward, gradient downlink, edge
  backward, strictly in turn;
- cloud: upload every raw batch, then train the whole network on the cloud.

``hierfl.analysis.performance.predict`` is fed with the per-batch stage times measured in the same
run (and the link's bit rate and latency, not measured) and with the hand-off between stages
(queue put and get, thread wake-up, the GIL) measured once per run on a calibration pipeline
(``measure_handoff``), and ``ideal_bound`` gives the hierarchical pipeline's lower bound. The
cloud is this CPU: a faster cloud cannot be emulated on one machine, and the runtime model
(``hierfl plan --cloud-flops``) covers that case. A second section compares hierarchical with
cloud-only per cut, from activation bytes versus raw-input bytes.

Writes ``runtime.json``, ``runtime_time_vs_bitrate.png`` and ``runtime_crossover.png`` into
``--out`` and prints Markdown tables.
"""

from __future__ import annotations

import json
import math
import statistics
import sys
import time
from collections.abc import Callable
from dataclasses import replace
from functools import partial
from pathlib import Path

import torch

from benchmarks.harness import parser, results_dir, write_json
from benchmarks.runtime_pipeline import (
    BITRATES,
    MODES,
    RUNNERS,
    SHORT_RUN_S,
    SHORT_RUNS,
    SLOWDOWNS,
    WORKLOADS,
    Workload,
    make_batches,
    measure_handoff,
    median_run,
    stage_costs,
    warm_up,
)
from benchmarks.runtime_report import (
    checks,
    checks_coded,
    markdown,
    markdown_coded,
    markdown_cuts,
    plot,
)
from hierfl.analysis.performance import (
    LABEL_BYTES,
    Link,
    StageCosts,
    costs_from_flops,
    ideal_bound,
    predict,
)
from hierfl.edge.link import LinkSpec
from hierfl.models import create_model

# The bottleneck rows: digits upscaled to 3x32x32 (real images, so PNG sizes are real), the
# model cut where edge and cloud share the work, a bottleneck of at most 512 B per sample;
# hierarchical against split at the same cut and cloud-only uploading uint8 pixels or PNGs.
CODED = (
    Workload("resnet18/digits+bottleneck", "resnet18", "layer3", (3, 32, 32), 4, 8, "digits", 8, 4),
    Workload("vgg16/digits+bottleneck", "vgg16", "block3", (3, 32, 32), 4, 10, "digits", 16, 8),
)
CODED_BITRATES = (1e6,)


def code_bytes(bits: int) -> Callable[[torch.Tensor], float]:
    return lambda a: float(math.ceil(a.numel() * bits / 8))


def png_bytes(x: torch.Tensor) -> float:
    from hierfl.codecs.images import image_file

    pixels = torch.round(x.clamp(0, 1) * 255).to(torch.uint8).numpy()
    return float(sum(len(image_file(p, "png")) for p in pixels))


RAW_SIZERS: dict[str, Callable[[torch.Tensor], float]] = {
    "uint8": lambda x: float(x.numel()),
    "png": png_bytes,
}


def _row(w: Workload, mode: str, bps: float, latency: float, k: float, m, p, extra: dict) -> dict:
    return {
        "workload": w.name,
        "model": w.model,
        "cut": w.cut,
        "mode": mode,
        "bitrate_bps": bps,
        "latency_s": latency,
        "edge_slowdown": k,
        "batches": w.batches,
        "batch_size": w.batch_size,
        "online": True,  # one pass: each sample is shipped once
        "measured_s": m.wall_s,
        "other_processes_cores": m.other_cores,
        "predicted_s": p.total_s,
        "predicted_over_measured": p.total_s / m.wall_s,
        "predicted_handoff_s": p.handoff_s,
        "bottleneck": p.bottleneck,
        "fill_s": p.fill_s,
        "stage_means_s": {key: m.mean(key) for key in m.stages},
        **extra,
    }


def sweep_coded(
    w: Workload, latency: float, handoff_s: float, log: Callable[[str], None]
) -> list[dict]:
    """Hierarchical with a bottleneck, split at the same cut (fp32 activations and gradients),
    and cloud-only uploading uint8 pixels and PNG files, side by side."""
    coded = create_model(
        w.model,
        cut=w.cut,
        num_classes=10,
        input_shape=w.input_shape,
        seed=0,
        bottleneck=w.bottleneck,
        code_bits=w.code_bits,
    )
    plain = create_model(w.model, cut=w.cut, num_classes=10, input_shape=w.input_shape, seed=0)
    batches = make_batches(w)
    warm_up(coded, batches)
    warm_up(plain, batches)
    labels = float(w.batch_size * LABEL_BYTES)
    codes = code_bytes(w.code_bits)(torch.zeros(w.batch_size, *coded.activation_shape()))
    fp32 = float(math.prod(plain.activation_shape()) * 4 * w.batch_size)
    raws = {c: statistics.fmean(f(x) for x, _ in batches) for c, f in RAW_SIZERS.items()}
    runs = [
        ("hierarchical", coded, code_bytes(w.code_bits), codes, {"raw_codec": None}),
        ("split", plain, None, fp32, {"raw_codec": None}),
        *(
            ("cloud", plain, RAW_SIZERS[c], fp32, {"raw_codec": c, "raw_bytes_per_batch": raws[c]})
            for c in RAW_SIZERS
        ),
    ]
    rows = []
    for k in SLOWDOWNS:
        for bps in CODED_BITRATES:
            spec, link = LinkSpec(bps, bps, latency), Link(bps, bps, latency)
            for mode, model, sizer, act, extra in runs:
                runner = RUNNERS[mode]
                args = (model, batches, spec, k) + ((sizer,) if sizer is not None else ())
                m, walls = median_run(partial(runner, *args))
                raw = extra.get("raw_bytes_per_batch", 0.0)
                costs = stage_costs(mode, m, act, raw, labels, handoff_s)
                p = predict(mode, costs, link, len(batches))
                up = (raw if mode == "cloud" else act) + labels
                row = _row(
                    w,
                    mode,
                    bps,
                    latency,
                    k,
                    m,
                    p,
                    {
                        **extra,
                        "code_bits": w.code_bits if mode == "hierarchical" else None,
                        "bottleneck_channels": w.bottleneck if mode == "hierarchical" else 0,
                        "measured_runs_s": walls,
                        "uplink_bytes_per_batch": up,
                    },
                )
                if mode == "hierarchical":
                    bound = ideal_bound(costs, link, len(batches))
                    row.update(bound_s=bound, measured_over_bound=m.wall_s / bound)
                rows.append(row)
                what = mode + (f" ({extra['raw_codec']})" if extra.get("raw_codec") else "")
                log(
                    f"{w.name:28} k={k:<4g} {bps / 1e6:>5g} Mbit/s {what:>18}: "
                    f"measured {m.wall_s:7.2f}s predicted {p.total_s:7.2f}s, "
                    f"{up / w.batch_size:,.0f} B/sample up"
                )
    return rows


def sweep_workload(
    w: Workload, latency: float, handoff_s: float, log: Callable[[str], None]
) -> list[dict]:
    model = create_model(w.model, cut=w.cut, num_classes=10, input_shape=w.input_shape, seed=0)
    batches = make_batches(w)
    warm_up(model, batches)
    act_bytes = float(math.prod(model.activation_shape()) * 4 * w.batch_size)  # fp32
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
    from hierfl.analysis.planner import measure_cuts

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
    from hierfl.analysis.planner import measure_cuts

    cut = next(c for c in measure_cuts(w.model, w.input_shape, 10) if c.cut == w.cut)
    per_batch = statistics.median(
        r["stage_means_s"]["cloud_full"]
        for r in rows
        if r["workload"] == w.name and r["mode"] == "cloud"
    )
    flops = 3.0 * w.batch_size * (cut.edge_flops + cut.cloud_flops)  # forward + 2x backward
    return flops / per_batch


def main(argv: list[str] | None = None) -> int:
    p = parser(__doc__, brief=True)
    p.add_argument("--latency", type=float, default=0.0, help="one-way seconds per message")
    p.add_argument(
        "--workloads",
        default=",".join(w.name for w in WORKLOADS + CODED),
        help="comma-separated names",
    )
    args = p.parse_args(argv)
    torch.set_num_threads(1)  # one core per stage: edge and cloud threads then use both cores
    chosen = [w for w in WORKLOADS if w.name in args.workloads.split(",")]
    coded = [w for w in CODED if w.name in args.workloads.split(",")]
    start = time.perf_counter()
    calibration = measure_handoff()
    handoff_s = calibration["handoff_s"]
    print(f"hand-off between pipeline stages: {1e3 * handoff_s:.3f} ms per batch", flush=True)
    rows: list[dict] = []
    for w in chosen:
        rows += sweep_workload(w, args.latency, handoff_s, lambda s: print(s, flush=True))
    coded_rows: list[dict] = []
    for w in coded:
        coded_rows += sweep_coded(w, args.latency, handoff_s, lambda s: print(s, flush=True))
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
            "link": "sleep latency + 8 * bytes / bitrate per message (hierfl.edge.link)",
            "prediction_inputs": "per-batch stage means measured in the same run; hand-off per "
            "batch measured once per run (handoff_calibration)",
            "repeats": f"runs under {SHORT_RUN_S} s: median wall of {SHORT_RUNS} (measured_runs_s)",
            "torch_threads": 1,
        },
        "handoff_calibration": calibration,
        "rows": rows,
        "bottleneck_rows": coded_rows,
        "measured_crossovers": cross,
        "cuts": cuts,
        "checks": {**checks(rows), **checks_coded(coded_rows)},
        "elapsed_s": time.perf_counter() - start,
    }
    out = results_dir(args.out)
    write_json(out / "runtime.json", result)
    report(result, out)
    return 0


def report(result: dict, out: Path) -> None:
    """The plots into ``out``, then the tables, crossovers and checks on stdout."""
    rows, coded_rows, cuts = result["rows"], result["bottleneck_rows"], result["cuts"]
    cross = result["measured_crossovers"]
    if rows:  # the sweep's plots and tables (none when only bottleneck workloads ran)
        plot(rows, cross, cuts, out)
        print(markdown(rows))
        print()
    if coded_rows:
        print(markdown_coded(coded_rows))
        print()
    if cuts:
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


if __name__ == "__main__":
    sys.exit(main())
