"""The plan as text and data: the settings line, a fixed-width table, the recommendation, JSON."""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import asdict

from hierfl.analysis.planner import Plan, PlanRow, PlanSettings


def plan_to_dict(result: Plan) -> dict[str, object]:
    """The plan as JSON-ready data: settings, rows and the recommended cut."""
    return {
        "settings": asdict(result.settings),
        "rows": [asdict(row) for row in result.rows],
        "recommended": result.recommended,
    }


def format_settings(settings: PlanSettings) -> str:
    """One line: the workload, the link and the devices a plan assumes."""
    s = settings
    memory = "unlimited" if s.edge_memory_bytes is None else f"{s.edge_memory_bytes:,.0f} bytes"
    return (
        f"{s.samples} samples/edge in {s.batches} batches of {s.batch_size}, {s.clients} edge(s); "
        f"uplink {s.bitrate_bps:g} bit/s, downlink {s.link().downlink_bps:g} bit/s, latency "
        f"{s.latency_s:g} s; edge {s.edge_flops:g} FLOP/s, cloud {s.cloud_flops:g} FLOP/s, "
        f"edge memory {memory}"
    )


def _seconds(value: float) -> str:
    return f"{value:,.0f}" if value >= 100 else f"{value:.3g}"


def format_plan(rows: Sequence[PlanRow], recommended: str | None) -> str:
    """A fixed-width table, one line per cut: epoch seconds of each mode and edge memory.

    ``edge MiB`` and ``fits`` are hierarchical training's (split's needs no exit, so it is
    never larger); the recommended cut is marked with ``*``.
    """
    by_cut: dict[str, dict[str, PlanRow]] = {}
    for row in rows:
        by_cut.setdefault(row.cut, {})[row.mode] = row
    width = max(9, *(len(cut) + 1 for cut in by_cut))
    header = (
        f"{'cut':<{width}} {'B/sample':>9} {'hierarchical s':>14} {'limit':>6} {'split s':>10} "
        f"{'cloud s':>10} {'edge-only s':>11} {'edge MiB':>9} {'split MiB':>9} {'fits':>4}"
    )
    lines = [header, "-" * len(header)]
    for cut, modes in by_cut.items():
        hier = modes["hierarchical"]
        mark = "*" if cut == recommended else " "
        lines.append(
            f"{cut + mark:<{width}} {hier.uplink_bytes_per_sample:>9,.0f} "
            f"{_seconds(hier.epoch_s):>14} {hier.bottleneck:>6} "
            f"{_seconds(modes['split'].epoch_s):>10} {_seconds(modes['cloud'].epoch_s):>10} "
            f"{_seconds(modes['edge'].epoch_s):>11} {hier.edge_memory_bytes / 2**20:>9.1f} "
            f"{modes['split'].edge_memory_bytes / 2**20:>9.1f} {'yes' if hier.fits else 'no':>4}"
        )
    return "\n".join(lines)


def _exchange(row: PlanRow, s: PlanSettings) -> str:
    """The weight exchange a round and the break-even in samples per edge per round."""
    codec = s.weight_codec
    if codec != "fp32":
        density = f"{s.weight_density:g}" if s.weight_density else "auto"
        codec += f" density {density} {s.weight_values}"
    if s.sync_every > 1:
        codec += f", every {s.sync_every} rounds"
    even = row.break_even_samples
    where = (
        f"breaks even with uploading the inputs at {math.ceil(even):,} samples per edge per round"
        if math.isfinite(even)
        else "never breaks even with uploading the inputs (its codes are no smaller)"
    )
    return f"weights ({codec}) {row.weight_bytes_per_round:,.0f} B per edge per round; {where}"


def recommendation(result: Plan) -> str:
    """One line: the recommended cut and its hierarchical, split and cloud epoch times."""
    if result.recommended is None:
        limit = result.settings.edge_memory_bytes or 0
        return f"recommended cut: none (no cut fits in {limit:,.0f} bytes of edge memory)"
    rows = {r.mode: r for r in result.rows if r.cut == result.recommended}
    times = {mode: row.epoch_s for mode, row in rows.items()}
    sent = rows["hierarchical"].uplink_bytes_per_sample
    raw = rows["cloud"].uplink_bytes_per_sample
    line = (
        f"recommended cut: {result.recommended} (hierarchical {_seconds(times['hierarchical'])} "
        f"s/epoch, {sent:,.0f} B/sample up, vs split {_seconds(times['split'])}, cloud "
        f"{_seconds(times['cloud'])} uploading {raw:,.0f} B/sample)"
    )
    line += "; " + _exchange(rows["hierarchical"], result.settings)
    if times["cloud"] < times["hierarchical"]:
        line += "; cloud-only is predicted faster here (hierarchical keeps the inputs on the edge)"
    if "+" in result.recommended:  # a bottleneck's label: CUT+WIDTHxBITSb
        line += "; a bottleneck's accuracy is not predicted: measure it (benchmarks/bottleneck.py)"
    return line
