"""Whole-run bytes against accuracy: the compressed edge-weight exchange, against today's fp32
exchange and against uploading the images (cloud-only, PNG files).

Two cases, through ``hierfl.run`` in process: online ResNet-18 on digits 3x32x32 (3 edges,
layer3, an 8-channel 4-bit bottleneck, one round an experience) and the default ``hierfl run``
(small CNN on the 8x8 digits). Each runs as the defaults have it (``default``), with
``weight-codec=fp32`` (``fp32``) and as cloud-only with PNG uploads (``cloud-png``), at each
seed (``--variants`` adds probes: ``averaged-none``, ``cloud-epochs-1``). It writes a row of
``weights.json`` per run:

``model, cut, bottleneck, code_bits, variant, mode, weight_codec, density, sync_every,
averaged, online, clients, seed, bitrate, code_bytes, weight_bytes_up, weight_bytes_down,
control_bytes, total_bytes, cloud_only_png_bytes, cloud_only_uint8_bytes, cloud_accuracy,
edge_accuracy, wall_s, link_s_at_1mbps``

``total_bytes`` is up plus down plus control (the eval copies that measure the edges'
accuracy are not training traffic and not counted); ``cloud_only_*_bytes`` are what
cloud-only would have uploaded for the same samples. ``link_s_at_1mbps`` is the time the
run's uplink and downlink bytes take at 1 Mbit/s each way. ``weights.png`` plots cloud accuracy
against total bytes, the cloud-only PNG runs among them.
"""

from __future__ import annotations

import statistics
import sys
from pathlib import Path
from typing import Any

from benchmarks.harness import (
    add_append,
    config_from,
    earlier_rows,
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
from hierfl.registry import MODELS

CASES: dict[str, dict[str, Any]] = {
    "resnet18": {
        "model": "resnet18",
        "input-shape": "3x32x32",
        "clients": 3,
        "online": True,
        "rounds": 1,
        "cut": "layer3",
        "bottleneck": 8,
        "code-bits": 4,
    },
    "small-cnn": {},  # the default run
}
VARIANTS: dict[str, dict[str, Any]] = {
    "default": {},
    "fp32": {"weight-codec": "fp32"},
    "cloud-png": {"mode": "cloud", "raw-codec": "png", "bottleneck": 0},
    # probes beside the defaults (not run unless named in --variants)
    "averaged-none": {"averaged": "none"},
    "cloud-epochs-1": {"cloud-epochs": 1},
}
DEFAULT_VARIANTS = "default,fp32,cloud-png"


def row_for(case: str, variant: str, config: HierConfig, bench: Any) -> dict[str, Any]:
    result, wall_s = timed_run(config, bench)
    comm, final = result.communication, result.final
    return {
        "model": config.model,
        "cut": config.cut or MODELS.get(config.model).default_cut,
        "bottleneck": config.bottleneck,
        "code_bits": config.code_bits if config.bottleneck else 32,
        "case": case,
        "variant": variant,
        "mode": config.mode,
        "weight_codec": config.weight_codec,
        "density": config.weight_density,
        "sync_every": config.sync_every,
        "averaged": config.averaged,
        "online": config.online,
        "clients": config.clients,
        "seed": config.seed,
        "bitrate": config.bitrate,
        "code_bytes": comm.get("code_bytes", 0),
        "weight_bytes_up": comm.get("weight_bytes_up", 0),
        "weight_bytes_down": comm.get("weight_bytes_down", 0),
        "control_bytes": comm.get("control_bytes", 0),
        "total_bytes": comm["total_bytes"],
        "cloud_only_png_bytes": comm.get("cloud_only_png_bytes", 0),
        "cloud_only_uint8_bytes": comm.get("cloud_only_uint8_bytes", 0),
        "cloud_accuracy": final["cloud_accuracy"],
        "edge_accuracy": final.get("edge_accuracy"),
        "wall_s": wall_s,
        "link_s_at_1mbps": 8 * max(comm["uplink_bytes"], comm["downlink_bytes"]) / 1e6,
    }


def _line(r: dict[str, Any]) -> str:
    return (
        f"{r['case']} {r['variant']} seed {r['seed']}: total {r['total_bytes'] / 1e6:.3f} MB "
        f"(codes {r['code_bytes'] / 1e6:.3f}, weights {r['weight_bytes_up'] / 1e6:.3f} up "
        f"{r['weight_bytes_down'] / 1e6:.3f} down), cloud {r['cloud_accuracy']:.3f}, edge "
        f"{number(r['edge_accuracy'])} ({r['wall_s']:.0f}s)"
    )


def means(rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Mean over seeds per (case, variant)."""
    groups: dict[tuple[str, str], list[dict[str, Any]]] = {}
    for r in rows:
        groups.setdefault((r["case"], r["variant"]), []).append(r)
    out = []
    for (case, variant), items in groups.items():
        edges = [r["edge_accuracy"] for r in items if r["edge_accuracy"] is not None]
        out.append(
            {
                "case": case,
                "variant": variant,
                "seeds": len(items),
                **{
                    key: statistics.fmean(r[key] for r in items)
                    for key in (
                        "code_bytes",
                        "weight_bytes_up",
                        "weight_bytes_down",
                        "control_bytes",
                        "total_bytes",
                        "cloud_only_png_bytes",
                        "cloud_accuracy",
                        "wall_s",
                        "link_s_at_1mbps",
                    )
                },
                "edge_accuracy": statistics.fmean(edges) if edges else None,
            }
        )
    return out


def table(rows: list[dict[str, Any]]) -> str:
    def mb(n: float) -> str:
        return f"{n / 1e6:,.3f}"

    lines = [
        f"{m['case']} | {m['variant']} | {m['seeds']} | {mb(m['code_bytes'])} | "
        f"{mb(m['weight_bytes_up'])} | {mb(m['weight_bytes_down'])} | {mb(m['control_bytes'])} | "
        f"{mb(m['total_bytes'])} | {mb(m['cloud_only_png_bytes'])} | {m['cloud_accuracy']:.3f} | "
        f"{number(m['edge_accuracy'])} | {m['wall_s']:,.0f} | {m['link_s_at_1mbps']:,.0f}"
        for m in rows
    ]
    return markdown_table(
        "case | run | seeds | codes MB | weights up MB | weights down MB | control MB | "
        "total MB | cloud-only PNG MB | cloud acc | edge acc | wall s | link s at 1 Mbit/s",
        lines,
    )


def plot(rows: list[dict[str, Any]], path: Path) -> None:
    cases = sorted({r["case"] for r in rows})
    fig = figure(figsize=(5 * len(cases), 4), layout="constrained")
    markers = {"default": "o", "fp32": "^", "cloud-png": "s", "averaged-none": "v"}
    markers["cloud-epochs-1"] = "D"
    for i, case in enumerate(cases):
        ax = fig.add_subplot(1, len(cases), i + 1)
        for variant, marker in markers.items():
            points = [r for r in rows if r["case"] == case and r["variant"] == variant]
            if points:
                ax.scatter(
                    [r["total_bytes"] for r in points],
                    [r["cloud_accuracy"] for r in points],
                    marker=marker,
                    label=variant,
                )
        ax.set_xscale("log")
        ax.set_xlabel("total bytes of the run (up + down + control)")
        ax.set_ylabel("cloud stream accuracy")
        ax.set_title(case)
        ax.grid(alpha=0.3)
        ax.legend(fontsize=8)
    fig.savefig(path)


def main(argv: list[str] | None = None) -> int:
    p = parser(__doc__, brief=True, overrides=True)
    p.add_argument("--cases", default=",".join(CASES), help="of " + ", ".join(CASES))
    p.add_argument("--variants", default=DEFAULT_VARIANTS, help="of " + ", ".join(VARIANTS))
    p.add_argument("--seeds", default="0,1")
    p.add_argument(
        "--bitrate",
        type=float,
        default=0.0,
        help="emulated link bits/s for every variant but fp32 (fp32's 370 MB would take about "
        "50 minutes a run at 1 Mbit/s; its rows give link_s_at_1mbps instead)",
    )
    add_append(p, "weights.json")
    args = p.parse_args(argv)
    base = config_from({}, args.overrides)
    overrides = parse_overrides(list(args.overrides))
    path = results_dir(args.out) / "weights.json"
    rows: list[dict[str, Any]] = earlier_rows(path, base) if args.append else []
    for case in args.cases.split(","):
        if case not in CASES:
            raise SystemExit(f"unknown case {case!r}; choose from {', '.join(CASES)}")
        for seed in (int(s) for s in args.seeds.split(",")):
            bench = build_benchmark(config_from({**CASES[case], **overrides, "seed": seed}, []))
            for variant in args.variants.split(","):
                link = {"bitrate": args.bitrate} if variant != "fp32" else {}
                settings = {**CASES[case], **VARIANTS[variant], **link, **overrides}
                config = config_from({**settings, "seed": seed}, [])
                rows.append(row_for(case, variant, config, bench))
                print(_line(rows[-1]), flush=True)
                write_rows(path, base, rows)  # kept if a later run fails
    out = results_dir(args.out)
    summary = means(rows)
    write_rows(path, base, rows, means=summary)
    plot(rows, out / "weights.png")
    print(table(summary))
    return 0


if __name__ == "__main__":
    sys.exit(main())
