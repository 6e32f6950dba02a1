"""Rate against accuracy: a learned bottleneck at the cut, against the same cut without one and
against uploading the images themselves (uint8 pixels or PNG files).

Digits upscaled to 3x32x32 (real data) for ResNet-18 and VGG-16, and the small CNN on the 8x8
digits; one experience of all 10 classes, 3 edges, through ``hierfl.run`` in process. For
every (model, cut, bottleneck) and seed it writes a row of ``bottleneck.json``:

``model, cut, input_shape, bottleneck (0 = none), code_bits, ship, online, seed,
bytes_per_sample, raw_uint8_bytes, raw_png_bytes, cloud_accuracy, edge_accuracy``

``bytes_per_sample`` is the uplink payload per sample per pass, labels included, as the wire
carries a chunk of one edge's pass (``hierfl.app.wire``; its ``.npy`` headers spread over the
chunk); ``raw_uint8_bytes`` and ``raw_png_bytes`` are the same for an image (and its label) as
cloud mode uploads it. Rows with ``mode`` ``cloud`` are the cloud-only baseline trained on the
uploaded images, with as many passes as the edges train (``rounds`` x ``local-epochs``).
``bottleneck.png`` plots cloud accuracy against bytes per sample per model.
"""

from __future__ import annotations

import dataclasses
import statistics
import sys
from pathlib import Path
from typing import Any

import numpy as np
import torch

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
from hierfl.app.wire import Wire, encode_tensors
from hierfl.codecs.images import image_file
from hierfl.config import HierConfig
from hierfl.data.containers import Benchmark
from hierfl.data.streams import build_benchmark
from hierfl.models import model_for

# (cut, bottleneck channels, code bits) per model; bottleneck 0 is the same cut without one.
GRID: dict[str, list[tuple[str, int, int]]] = {
    "small-cnn": [("block2", 0, 8), ("block2", 4, 8), ("block2", 2, 4)],
    "resnet18": [
        ("layer2", 0, 8),
        ("layer2", 2, 4),
        ("layer3", 0, 8),
        ("layer3", 4, 8),
        ("layer3", 8, 4),
    ],
    "vgg16": [
        ("block3", 0, 8),
        ("block3", 16, 8),
        ("block3", 32, 4),
        ("block4", 0, 8),
        ("block4", 32, 8),
    ],
}
SHAPES = {"small-cnn": "", "resnet18": "3x32x32", "vgg16": "3x32x32"}
# Edges train 3 epochs a round and ship the last (the cloud takes 3 passes over it): the same
# training as shipping every epoch at a third of the traffic, which keeps the fp32 chunks of
# early ResNet-18 cuts (128 KiB a sample) whole and in memory.
BASE = {
    "experiences": 1,
    "clients": 3,
    "rounds": 3,
    "local-epochs": 3,
    "ship": "last-epoch",
    "cloud-epochs": 3,
    "cl": "naive",
    "max-chunk-mb": 256,
}


def wire_bytes_per_sample(config: HierConfig, bench: Benchmark, samples: int) -> float:
    """Uplink bytes per sample of a chunk of ``samples`` activations and labels, as sent."""
    model = model_for(config, bench.num_classes, bench.input_shape).eval()
    x, y = bench.train[0].x[:samples], bench.train[0].y[:samples]
    with torch.no_grad():
        activations = model.forward_edge(x).activations
    record, _ = encode_tensors(activations, y, Wire.of(config), raw=False)
    return sum(len(a.data) for a in record.values()) / len(y)


def raw_bytes_per_sample(bench: Benchmark, samples: int) -> tuple[float, float]:
    """An image and its label as cloud mode uploads them: (uint8 pixels, PNG file)."""
    x, y = bench.train[0].x[:samples], bench.train[0].y[:samples]
    sizes = {}
    for codec in ("uint8", "png"):
        record, _ = encode_tensors(x, y, Wire(raw_codec=codec), raw=True)
        sizes[codec] = sum(len(a.data) for a in record.values()) / len(y)
    return sizes["uint8"], sizes["png"]


def png_bytes_of_one_image(bench: Benchmark) -> float:
    """The mean PNG file size of the training images, without any framing."""
    pixels = np.round(bench.train[0].x.numpy() * 255).astype(np.uint8)
    return float(statistics.fmean(len(image_file(p, "png")) for p in pixels))


def run(config: HierConfig, bench: Benchmark) -> dict[str, float]:
    result, wall_s = timed_run(config, bench)
    final = result.final
    return {
        "cloud_accuracy": final["cloud_accuracy"],
        "edge_accuracy": final.get("edge_accuracy"),
        "wall_s": wall_s,
    }


def rows_for(
    model: str, seeds: list[int], base: HierConfig, cuts: set[str] | None, cloud_only: bool
) -> list[dict[str, Any]]:
    shape = SHAPES[model]
    config = dataclasses.replace(base, model=model, input_shape=shape).validate()
    bench = build_benchmark(config)
    per_edge = len(bench.train[0]) // config.clients  # one edge's pass: the chunk's samples
    uint8, png = raw_bytes_per_sample(bench, per_edge)
    rows = []
    for seed in seeds:
        for cut, width, bits in GRID[model]:
            entry = f"{cut}/{width}x{bits}" if width else f"{cut}/0"
            if cuts is not None and not {cut, entry} & cuts:
                continue
            run_config = dataclasses.replace(
                config, seed=seed, cut=cut, bottleneck=width, code_bits=bits
            ).validate()
            row = {
                "model": model,
                "mode": "hierarchical",
                "cut": cut,
                "input_shape": list(bench.input_shape),
                "bottleneck": width,
                "code_bits": bits if width else 32,
                "ship": run_config.ship,
                "online": run_config.online,
                "seed": seed,
                "bytes_per_sample": wire_bytes_per_sample(run_config, bench, per_edge),
                "raw_uint8_bytes": uint8,
                "raw_png_bytes": png,
                **run(run_config, bench),
            }
            rows.append(row)
            print(_line(row), flush=True)
        for codec, size in (("uint8", uint8), ("png", png)) if cloud_only else ():
            # The cloud trains local-epochs passes over the uploads per round, each one chunk
            # of cloud-epochs passes: one pass per chunk trains as many passes as the edges.
            cloud = dataclasses.replace(
                config, seed=seed, mode="cloud", raw_codec=codec, cloud_epochs=1
            )
            row = {
                "model": model,
                "mode": "cloud",
                "cut": "",
                "input_shape": list(bench.input_shape),
                "bottleneck": 0,
                "code_bits": 8,
                "ship": "",
                "online": False,
                "seed": seed,
                "raw_codec": codec,
                "bytes_per_sample": size,
                "raw_uint8_bytes": uint8,
                "raw_png_bytes": png,
                **run(cloud.validate(), bench),
            }
            rows.append(row)
            print(_line(row), flush=True)
    return rows


def _line(r: dict[str, Any]) -> str:
    edge = number(r.get("edge_accuracy"))
    what = (
        f"{r['cut']} b{r['bottleneck']}x{r['code_bits']}"
        if r["mode"] != "cloud"
        else (f"cloud-only {r['raw_codec']}")
    )
    return (
        f"{r['model']} {what} seed {r['seed']}: {r['bytes_per_sample']:.0f} B/sample, cloud "
        f"{r['cloud_accuracy']:.3f}, edge {edge} ({r['wall_s']:.0f}s)"
    )


def summary(rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Mean over seeds per configuration."""
    groups: dict[tuple, list[dict[str, Any]]] = {}
    for r in rows:
        key = (r["model"], r["mode"], r["cut"], r["bottleneck"], r["code_bits"], r.get("raw_codec"))
        groups.setdefault(key, []).append(r)
    out = []
    for (model, mode, cut, width, bits, codec), items in groups.items():
        edges = [r["edge_accuracy"] for r in items if r.get("edge_accuracy") is not None]
        out.append(
            {
                "model": model,
                "mode": mode,
                "cut": cut,
                "bottleneck": width,
                "code_bits": bits,
                "raw_codec": codec,
                "seeds": len(items),
                "bytes_per_sample": statistics.fmean(r["bytes_per_sample"] for r in items),
                "cloud_accuracy": statistics.fmean(r["cloud_accuracy"] for r in items),
                "edge_accuracy": statistics.fmean(edges) if edges else None,
            }
        )
    return out


def table(means: list[dict[str, Any]]) -> str:
    lines = []
    for m in means:
        what = (
            f"cloud-only, {m['raw_codec']} uploads"
            if m["mode"] == "cloud"
            else f"{m['cut']}, "
            + (
                f"bottleneck {m['bottleneck']} x {m['code_bits']} bits"
                if m["bottleneck"]
                else "no bottleneck (fp32)"
            )
        )
        lines.append(
            f"{m['model']} | {what} | {m['bytes_per_sample']:,.0f} | {m['seeds']} | "
            f"{m['cloud_accuracy']:.3f} | {number(m['edge_accuracy'])}"
        )
    return markdown_table("model | what | B/sample | seeds | cloud acc | edge acc", lines)


def plot(means: list[dict[str, Any]], path: Path) -> None:
    models = sorted({m["model"] for m in means})
    fig = figure(figsize=(5 * len(models), 4), layout="constrained")
    for i, model in enumerate(models):
        ax = fig.add_subplot(1, len(models), i + 1)
        for m in (m for m in means if m["model"] == model):
            if m["mode"] == "cloud":
                style, label = "s", f"cloud-only ({m['raw_codec']})"
            elif m["bottleneck"]:
                style, label = "o", f"{m['cut']} b{m['bottleneck']}x{m['code_bits']}"
            else:
                style, label = "^", f"{m['cut']} (no bottleneck)"
            ax.scatter(m["bytes_per_sample"], m["cloud_accuracy"], marker=style)
            ax.annotate(label, (m["bytes_per_sample"], m["cloud_accuracy"]), fontsize=7)
        ax.set_xscale("log")
        ax.set_xlabel("uplink bytes per sample per pass (labels included)")
        ax.set_ylabel("cloud accuracy")
        ax.set_title(model)
        ax.grid(alpha=0.3)
    fig.savefig(path)


def main(argv: list[str] | None = None) -> int:
    p = parser(__doc__, brief=True, overrides=True)
    p.add_argument("--models", default="small-cnn,resnet18,vgg16")
    p.add_argument("--seeds", default="0,1")
    p.add_argument(
        "--cuts",
        help="only these entries of the grid, comma-separated: CUT (all its bottlenecks), "
        "CUT/WIDTHxBITS (one) or CUT/0 (none); default all",
    )
    p.add_argument("--no-cloud-only", action="store_true", help="skip the cloud-only rows")
    add_append(p, "bottleneck.json")
    args = p.parse_args(argv)
    base = config_from(BASE, args.overrides)
    seeds = [int(s) for s in args.seeds.split(",")]
    cuts = set(args.cuts.split(",")) if args.cuts else None
    path = Path(args.out) / "bottleneck.json"
    rows: list[dict[str, Any]] = earlier_rows(path, base) if args.append else []
    for model in args.models.split(","):
        rows += rows_for(model, seeds, base, cuts, not args.no_cloud_only)
    means = summary(rows)
    out = results_dir(args.out)
    write_rows(path, base, rows, means=means)
    plot(means, out / "bottleneck.png")
    print(table(means))
    return 0


if __name__ == "__main__":
    sys.exit(main())
