"""Hierarchical training on digits, one experience of all 10 classes, through Flower.

Writes ``single_experience.json`` with both exits' accuracy and the timings, and exits non-zero
if the targets (cloud >= 0.95, edge exit >= 0.90) are missed.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

from benchmarks.harness import config_from, parser, results_dir, write_json
from hierfl.deploy.launch import run_local

TARGETS = {"cloud": 0.95, "edge": 0.90}


def main(argv: list[str] | None = None) -> int:
    p = parser(__doc__, overrides=True, out_help="folder for the JSON")
    args = p.parse_args(argv)
    out = Path(args.out)
    config = config_from(
        {"experiences": 1, "out": str(out / "single_experience_run")}, args.overrides
    )
    run_dir = run_local(config)
    metrics = json.loads((run_dir / "metrics.json").read_text())
    accuracy = {k: metrics["final"][f"{k}_accuracy"] for k in ("edge", "cloud")}
    result = {
        "benchmark": "single_experience",
        "config": metrics["config"],
        "accuracy": accuracy,
        "targets": TARGETS,
        "met": {k: accuracy[k] >= TARGETS[k] for k in TARGETS},
        "time": metrics["time"],
        "communication": metrics["communication"],
        "run_folder": str(run_dir),
    }
    write_json(results_dir(args.out) / "single_experience.json", result)
    print(
        json.dumps(
            {"accuracy": accuracy, "met": result["met"], "wall_s": metrics["time"]["wall_s"]},
            indent=2,
        )
    )
    return 0 if all(result["met"].values()) else 1


if __name__ == "__main__":
    sys.exit(main())
