"""The four training modes side by side on the same model and data, in-process.

Digits, small CNN, one experience of all 10 classes, 3 edges, through ``hierfl.run`` in process
(the same orchestrator, strategy and edge code as ``hierfl run``, without Flower's processes,
so the figures measure the mathematics, not message latency). Writes ``modes.json``.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import sys
import time
from pathlib import Path

import hierfl
from hierfl.config import HierConfig
from hierfl.data.streams import build_benchmark
from hierfl.options import parse_overrides

MODES = ("hierarchical", "split", "cloud", "edge")


def run_modes(base: HierConfig) -> dict[str, dict]:
    bench = build_benchmark(base)
    rows: dict[str, dict] = {}
    for mode in MODES:
        config = dataclasses.replace(base, mode=mode)
        start = time.perf_counter()
        result = hierfl.run(config, benchmark=bench)
        accuracy = {
            name.removesuffix("_accuracy"): value
            for name, value in result.final.items()
            if name.endswith("_accuracy")
        }
        comm = result.communication
        up = comm["uplink_bytes"]
        rows[mode] = {
            "accuracy": accuracy,
            "uplink_bytes": up,
            "downlink_bytes": comm["downlink_bytes"],
            "raw_input_bytes_uplink": comm["raw_input_bytes_uplink"],
            "wall_s": time.perf_counter() - start,
            "early_exit": result.metrics["early_exit"],
        }
        print(f"{mode:>12}: {accuracy}  up {up / 2**20:.1f} MiB", flush=True)
    return rows


def checks(rows: dict[str, dict]) -> dict[str, bool]:
    cloud = rows["cloud"]["accuracy"]["cloud"]
    return {
        "hierarchical_within_2_points_of_cloud": abs(
            rows["hierarchical"]["accuracy"]["cloud"] - cloud
        )
        <= 0.02,
        "split_within_1_point_of_cloud": abs(rows["split"]["accuracy"]["cloud"] - cloud) <= 0.01,
        "edge_exit_reported": all("edge" in rows[m]["accuracy"] for m in ("hierarchical", "edge")),
        "raw_inputs_only_in_cloud_mode": all(
            (rows[m]["raw_input_bytes_uplink"] > 0) == (m == "cloud") for m in MODES
        ),
    }


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__)
    p.add_argument("--out", default="benchmarks/results")
    p.add_argument("overrides", nargs="*", metavar="key=value")
    args = p.parse_args(argv)
    values = {"experiences": 1}
    values.update(parse_overrides(args.overrides))
    base = HierConfig.from_mapping(values).validate()
    rows = run_modes(base)
    result = {"benchmark": "modes", "config": base.to_dict(), "modes": rows, "checks": checks(rows)}
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    (out / "modes.json").write_text(json.dumps(result, indent=2))
    print(json.dumps(result["checks"], indent=2))
    return 0 if all(result["checks"].values()) else 1


if __name__ == "__main__":
    sys.exit(main())
