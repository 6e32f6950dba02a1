"""The four training modes side by side on the same model and data, in-process.

Digits, small CNN, one experience of all 10 classes, 3 edges, through the same orchestrator
and edge code as ``hierfl run`` (the in-process federation instead of Flower, so the figures
measure the mathematics, not message latency). Writes ``modes.json``.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import sys
import time
from pathlib import Path

from hierfl.config import HierConfig, parse_overrides
from hierfl.local import LocalFederation
from hierfl.orchestrator import Orchestrator
from hierfl.streams import build_benchmark, partition_stream

MODES = ("hierarchical", "split", "cloud", "edge")


def run_modes(base: HierConfig) -> dict[str, dict]:
    bench = build_benchmark(base)
    rows: dict[str, dict] = {}
    for mode in MODES:
        config = dataclasses.replace(base, mode=mode)
        streams = [
            partition_stream(config, bench, i, config.clients) for i in range(config.clients)
        ]
        federation = LocalFederation(config, streams)
        start = time.perf_counter()
        result = Orchestrator(config, federation, bench, poll_interval=0.0).run()
        last = config.experiences - 1
        accuracy = {
            name: sum(result.matrix.row(name, last)) / (last + 1) for name in result.matrix.exits()
        }
        up, down = federation.traffic()
        rows[mode] = {
            "accuracy": accuracy,
            "uplink_bytes": up,
            "downlink_bytes": down,
            "raw_input_bytes_uplink": result.raw_input_bytes_uplink,
            "wall_s": time.perf_counter() - start,
            "early_exit": result.early_exit,
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
