"""The accuracy cost of protecting shipped activations (``act-clip``, ``act-noise``) on digits.

Hierarchical mode, one experience with all classes, 3 edges, through ``hierfl.run`` in process
(the same orchestrator, strategy and edge code as ``hierfl run``). Prints the activations'
per-sample L2 norms (to pick a clip), and for each setting the cloud and edge-exit accuracy;
writes ``privacy.json``.
"""

from __future__ import annotations

import dataclasses
import sys

import torch

from benchmarks.harness import (
    config_from,
    markdown_table,
    parser,
    results_dir,
    timed_run,
    write_json,
)
from hierfl.config import HierConfig
from hierfl.data.streams import build_benchmark
from hierfl.models import model_for

SETTINGS = [
    (0.0, 0.0),
    (4.0, 0.0),
    (1.0, 0.0),
    (4.0, 0.1),
    (0.0, 0.5),
    (0.0, 1.0),
    (0.0, 2.0),
    (1.0, 0.5),
]


def activation_norms(config: HierConfig, bench) -> list[float]:
    """Per-sample L2 norms of the cut's activations under the untrained model (quartiles)."""
    model = model_for(config, bench.num_classes, bench.input_shape)
    x = bench.test[0].x[:256]
    with torch.no_grad():
        a = model.forward_edge(x).activations
    return torch.quantile(a.flatten(1).norm(dim=1), torch.tensor([0.25, 0.5, 0.75])).tolist()


def table(rows: list[dict]) -> str:
    """The printed table: each setting's cloud and edge-exit accuracy."""
    lines = [
        f"{r['act_clip']:g} | {r['act_noise']:g} | {r['cloud_accuracy']:.3f} | "
        f"{r['edge_accuracy']:.3f}"
        for r in rows
    ]
    return markdown_table("act-clip | act-noise | cloud acc | edge acc", lines)


def main(argv: list[str] | None = None) -> int:
    args = parser(__doc__, overrides=True).parse_args(argv)
    base = config_from({"experiences": 1}, args.overrides)
    bench = build_benchmark(base)
    norms = activation_norms(base, bench)
    print(f"activation L2 norm per sample, quartiles at init: {[round(n, 2) for n in norms]}")
    rows = []
    for clip, noise in SETTINGS:
        config = dataclasses.replace(base, act_clip=clip, act_noise=noise).validate()
        result, wall_s = timed_run(config, bench)
        final = result.final
        row = {
            "act_clip": clip,
            "act_noise": noise,
            "cloud_accuracy": final["cloud_accuracy"],
            "edge_accuracy": final["edge_accuracy"],
            "wall_s": wall_s,
        }
        rows.append(row)
        print(
            f"clip {clip:g} noise {noise:g}: cloud {row['cloud_accuracy']:.3f} "
            f"edge {row['edge_accuracy']:.3f}",
            flush=True,
        )
    write_json(
        results_dir(args.out) / "privacy.json",
        {"config": base.to_dict(), "norm_quartiles": norms, "runs": rows},
    )
    print(table(rows))
    return 0


if __name__ == "__main__":
    sys.exit(main())
