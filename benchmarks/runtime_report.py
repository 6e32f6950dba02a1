"""The runtime benchmark's output: checks, where time beyond the bound goes, tables, plots.

Used by ``benchmarks.runtime``.
"""

from __future__ import annotations

from pathlib import Path

from benchmarks.harness import figure, markdown_table
from benchmarks.runtime_pipeline import MODES, SLOWDOWNS


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


SWEEP = (
    "workload | cut | k | Mbit/s | mode | measured s | predicted s | pred/meas"
    " | of which hand-off s | bound s | meas/bound"
)


def markdown(rows: list[dict]) -> str:
    lines = []
    for r in rows:
        bound = f"{r['bound_s']:.2f}" if r["bound_s"] else ""
        ratio = f"{r['measured_over_bound']:.2f}" if r["measured_over_bound"] else ""
        lines.append(
            f"{r['workload']} | {r['cut']} | {r['edge_slowdown']:g} | "
            f"{r['bitrate_bps'] / 1e6:g} | {r['mode']} | {r['measured_s']:.2f} | "
            f"{r['predicted_s']:.2f} | {r['predicted_over_measured']:.2f} | "
            f"{r['predicted_handoff_s']:.3f} | {bound} | {ratio}"
        )
    return markdown_table(SWEEP, lines)


CUTS = (
    "model | cut | k | act KiB/sample | raw KiB/sample | act/raw | faster at low rate"
    " | crossover Mbit/s | faster at high rate"
)


def markdown_cuts(cuts: list[dict]) -> str:
    lines = []
    for c in cuts:
        cross = f"{c['crossover_bps'] / 1e6:.3g}" if c["crossover_bps"] else "none"
        lines.append(
            f"{c['model']} | {c['cut']} | {c['edge_slowdown']:g} | "
            f"{c['activation_bytes_per_sample'] / 1024:.1f} | "
            f"{c['raw_bytes_per_sample'] / 1024:.1f} | {c['activation_over_raw']:.2f} | "
            f"{c['faster_at_low_bitrate']} | {cross} | {c['faster_at_high_bitrate']}"
        )
    return markdown_table(CUTS, lines)


def plot(rows: list[dict], measured_cross: list[dict], cuts: list[dict], out: Path) -> None:
    """The sweep's figures: ``runtime_time_vs_bitrate.png`` and ``runtime_crossover.png``."""
    workloads = list(dict.fromkeys(r["workload"] for r in rows))
    _plot_time_vs_bitrate(rows, workloads, out / "runtime_time_vs_bitrate.png")
    _plot_crossover(rows, workloads, measured_cross, cuts, out / "runtime_crossover.png")


def _plot_time_vs_bitrate(rows: list[dict], workloads: list[str], path: Path) -> None:
    """Wall time against bit rate per workload and edge slowdown: measured, model, bound."""
    fig = figure(figsize=(11, 3.4 * len(workloads)))
    axes = fig.subplots(len(workloads), len(SLOWDOWNS), squeeze=False)
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
    fig.savefig(path, dpi=110)


def _plot_crossover(
    rows: list[dict], workloads: list[str], measured_cross: list[dict], cuts: list[dict], path: Path
) -> None:
    """Measured hierarchical / cloud time against bit rate, and the model's crossover per cut."""
    fig = figure(figsize=(12, 4))
    ax1, ax2 = fig.subplots(1, 2)
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
    fig.savefig(path, dpi=110)


def _key(r: dict) -> str:
    return r["mode"] + (f"-{r['raw_codec']}" if r.get("raw_codec") else "")


def checks_coded(rows: list[dict]) -> dict[str, object]:
    """The bottleneck rows: at 1 Mbit/s with an edge as fast as the cloud, hierarchical takes
    at most half of cloud-only uploading uint8 and of split; the model within 15 %."""
    points: dict[tuple, dict[str, float]] = {}
    for r in rows:
        points.setdefault((r["workload"], r["edge_slowdown"], r["bitrate_bps"]), {})[_key(r)] = r[
            "measured_s"
        ]
    halves = {
        f"{w} k={k:g} {b / 1e6:g} Mbit/s": {
            "hierarchical_over_cloud_uint8": v["hierarchical"] / v["cloud-uint8"],
            "hierarchical_over_split": v["hierarchical"] / v["split"],
        }
        for (w, k, b), v in points.items()
    }
    met = all(
        h["hierarchical_over_cloud_uint8"] <= 0.5 and h["hierarchical_over_split"] <= 0.5
        for name, h in halves.items()
        if " k=1 " in name and name.endswith(" 1 Mbit/s")
    )
    off = [r for r in rows if abs(r["predicted_over_measured"] - 1) > 0.15]
    return {
        "bottleneck_at_most_half_of_cloud_uint8_and_split_at_1mbps_k1": met,
        "bottleneck_ratios": halves,
        "bottleneck_prediction_within_15pct": not off,
        "bottleneck_prediction_misses": [
            f"{r['workload']} k={r['edge_slowdown']:g} {_key(r)}: "
            f"{r['predicted_over_measured']:.2f}{_other_load(r)}"
            for r in off
        ],
    }


def markdown_coded(rows: list[dict]) -> str:
    """One line per bottleneck row: bytes per sample, measured and predicted seconds."""
    lines = []
    for r in rows:
        per_sample = r["uplink_bytes_per_batch"] / r["batch_size"]
        lines.append(
            f"{r['workload']} | {r['edge_slowdown']:g} | {r['bitrate_bps'] / 1e6:g} | "
            f"{_key(r)} | {per_sample:,.0f} | {r['measured_s']:.2f} | {r['predicted_s']:.2f}"
        )
    header = "workload | k | Mbit/s | mode | B/sample up | measured s | predicted s"
    return markdown_table(header, lines)
