"""The four training modes side by side on the same model and data, in-process.

Digits, small CNN, one experience of all 10 classes, 3 edges, through ``hierfl.run`` in process
(the same orchestrator, strategy and edge code as ``hierfl run``, without Flower's processes,
so the figures measure the mathematics, not message latency). Writes ``modes.json``.
"""

from __future__ import annotations

import dataclasses
import json
import sys

from benchmarks.harness import (
    config_from,
    exit_accuracies,
    parser,
    results_dir,
    timed_run,
    write_json,
)
from hierfl.config import HierConfig
from hierfl.data.streams import build_benchmark

MODES = ("hierarchical", "split", "cloud", "edge")


def run_modes(base: HierConfig) -> dict[str, dict]:
    bench = build_benchmark(base)
    rows: dict[str, dict] = {}
    for mode in MODES:
        config = dataclasses.replace(base, mode=mode)
        result, wall_s = timed_run(config, bench)
        accuracy = exit_accuracies(result.final)
        comm = result.communication
        up = comm["uplink_bytes"]
        rows[mode] = {
            "accuracy": accuracy,
            "uplink_bytes": up,
            "downlink_bytes": comm["downlink_bytes"],
            "raw_input_bytes_uplink": comm["raw_input_bytes_uplink"],
            "wall_s": wall_s,
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
    args = parser(__doc__, overrides=True).parse_args(argv)
    base = config_from({"experiences": 1}, args.overrides)
    rows = run_modes(base)
    result = {"benchmark": "modes", "config": base.to_dict(), "modes": rows, "checks": checks(rows)}
    write_json(results_dir(args.out) / "modes.json", result)
    print(json.dumps(result["checks"], indent=2))
    return 0 if all(result["checks"].values()) else 1


if __name__ == "__main__":
    sys.exit(main())
