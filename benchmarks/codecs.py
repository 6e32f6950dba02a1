"""Uplink codecs side by side: bytes on the uplink and accuracy, same run otherwise.

Hierarchical training on digits through ``hierfl.run`` in process (the same orchestrator,
strategy and edge code as ``hierfl run``), once per codec (fp32, fp16, int8). Writes
``codecs.json`` and prints a Markdown table.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import sys
from pathlib import Path

import hierfl
from hierfl.codecs.tensor import CODECS
from hierfl.config import HierConfig
from hierfl.data.streams import build_benchmark
from hierfl.options import parse_overrides


def run_codecs(base: HierConfig) -> list[dict]:
    bench = build_benchmark(base)
    rows = []
    for codec in CODECS:
        config = dataclasses.replace(base, codec=codec)
        result = hierfl.run(config, benchmark=bench)
        rows.append(
            {
                "codec": codec,
                "uplink_bytes": result.communication["uplink_bytes"],
                "accuracy": {
                    name.removesuffix("_accuracy"): value
                    for name, value in result.final.items()
                    if name.endswith("_accuracy")
                },
            }
        )
        print(f"{codec}: {rows[-1]}", flush=True)
    return rows


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--out", default="benchmarks/results")
    p.add_argument("overrides", nargs="*", metavar="key=value")
    args = p.parse_args(argv)
    values = {"experiences": 1, "rounds": 3, "local-epochs": 2}
    values.update(parse_overrides(args.overrides))
    base = HierConfig.from_mapping(values).validate()
    rows = run_codecs(base)
    fp32 = rows[0]["uplink_bytes"]
    print("| codec | uplink MiB | vs fp32 | cloud accuracy | edge-exit accuracy |")
    print("|---|---|---|---|---|")
    for r in rows:
        acc = r["accuracy"]
        print(
            f"| {r['codec']} | {r['uplink_bytes'] / 2**20:.2f} | {r['uplink_bytes'] / fp32:.3f} | "
            f"{acc['cloud']:.3f} | {acc['edge']:.3f} |"
        )
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    (out / "codecs.json").write_text(
        json.dumps({"benchmark": "codecs", "config": base.to_dict(), "rows": rows}, indent=2)
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
