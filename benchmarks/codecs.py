"""Uplink codecs side by side: bytes on the uplink and accuracy, same run otherwise.

Hierarchical training on digits through ``hierfl.run`` in process (the same orchestrator,
strategy and edge code as ``hierfl run``), once per codec (fp32, fp16, int8). Writes
``codecs.json`` and prints a Markdown table.
"""

from __future__ import annotations

import dataclasses
import sys

import hierfl
from benchmarks.harness import (
    config_from,
    exit_accuracies,
    markdown_table,
    parser,
    results_dir,
    write_json,
)
from hierfl.codecs import ACTIVATION_CODECS
from hierfl.config import HierConfig
from hierfl.data.streams import build_benchmark


def run_codecs(base: HierConfig) -> list[dict]:
    bench = build_benchmark(base)
    rows = []
    for codec in ACTIVATION_CODECS:
        config = dataclasses.replace(base, codec=codec)
        result = hierfl.run(config, benchmark=bench)
        rows.append(
            {
                "codec": codec,
                "uplink_bytes": result.communication["uplink_bytes"],
                "accuracy": exit_accuracies(result.final),
            }
        )
        print(f"{codec}: {rows[-1]}", flush=True)
    return rows


def table(rows: list[dict]) -> str:
    """The printed table: uplink MiB, its ratio to fp32's, and both exits' accuracy."""
    fp32 = rows[0]["uplink_bytes"]
    lines = [
        f"{r['codec']} | {r['uplink_bytes'] / 2**20:.2f} | {r['uplink_bytes'] / fp32:.3f} | "
        f"{r['accuracy']['cloud']:.3f} | {r['accuracy']['edge']:.3f}"
        for r in rows
    ]
    return markdown_table(
        "codec | uplink MiB | vs fp32 | cloud accuracy | edge-exit accuracy", lines
    )


def main(argv: list[str] | None = None) -> int:
    args = parser(__doc__, brief=True, overrides=True).parse_args(argv)
    base = config_from({"experiences": 1, "rounds": 3, "local-epochs": 2}, args.overrides)
    rows = run_codecs(base)
    print(table(rows))
    write_json(
        results_dir(args.out) / "codecs.json",
        {"benchmark": "codecs", "config": base.to_dict(), "rows": rows},
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
