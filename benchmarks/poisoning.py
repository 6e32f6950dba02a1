"""One malicious edge of four: does the run complete, and how much does the attack cost?

For each attack of the security review (issue 14) and each aggregator (FedAvg and a robust one),
one run with partition 0 malicious and one clean run of the same config, through the real
federation in process (``hierfl.testing.attacks.MaliciousGrid``: the attacker rewrites its honest
reply as a hostile edge could). Writes ``poisoning.json`` with one row per (attack, aggregator):

``attack, aggregator, completed, clean_cloud_accuracy, attacked_cloud_accuracy,
clean_edge_accuracy, attacked_edge_accuracy, rejected, events``

Accuracies are the stream accuracies after the last experience; ``rejected`` counts the
attacker's refused replies; ``events`` counts the run's events by kind. Attacks:

- ``crash``: the crash payloads, one per round in turn (wrong types, inf/NaN counters, empty,
  non-.npy or oversized arrays, extra metrics and records, wrong weight shapes or dtypes);
- ``weight-takeover``: weights near float32's maximum claiming 1e15 examples;
- ``boosted-update``: a model-replacement update, the attacker's update scaled 20x (finite and
  within the bounds: robust aggregation is what answers it);
- ``extreme-activations``: every activation at 3.4e38;
- ``label-flip``: every label moved to the next class, each row shipped twice (an edge's cap).
"""

from __future__ import annotations

import sys
import time
from collections import Counter
from pathlib import Path
from typing import Any

import torch
from flwr.app import ArrayRecord, RecordDict

from benchmarks.harness import config_from, parser, results_dir, write_rows
from hierfl.api import prepare
from hierfl.app.protocol import ARRAYS
from hierfl.config import HierConfig
from hierfl.data.streams import build_benchmark
from hierfl.testing import make_grid
from hierfl.testing.attacks import CRASH, TAKEOVER, Attack, MaliciousGrid, label_flip

BASE = {"clients": 4, "experiences": 2, "rounds": 3, "local-epochs": 2, "seed": 0}
AGGREGATORS = ("fedavg", "fedmedian")


class Boosted:
    """Model replacement: the update (reply minus the weights sent) scaled ``factor`` times."""

    def __init__(self, factor: float) -> None:
        self.factor = factor
        self.sent: dict[str, torch.Tensor] = {}

    def __call__(self, content: RecordDict) -> None:
        state = content[ARRAYS].to_torch_state_dict()
        boosted = {
            k: (self.sent[k] + (t - self.sent[k]) * self.factor)
            if t.is_floating_point() and k in self.sent
            else t
            for k, t in state.items()
        }
        content[ARRAYS] = ArrayRecord(boosted)


class _Grid(MaliciousGrid):
    boosted: Boosted | None = None

    def push_messages(self, messages):  # remember the weights each round starts from
        messages = list(messages)
        if self.boosted is not None and messages and ARRAYS in messages[0].content:
            self.boosted.sent = messages[0].content[ARRAYS].to_torch_state_dict()
        return super().push_messages(messages)


def attacks_for(name: str, num_classes: int) -> tuple[list[Attack | None], Boosted | None]:
    if name == "clean":
        return [], None
    if name == "crash":
        return list(CRASH.values()), None
    if name == "boosted-update":
        boosted = Boosted(20.0)
        return [boosted], boosted
    if name == "label-flip":
        return [label_flip(num_classes)], None
    return [TAKEOVER[name]], None


def one_run(config: HierConfig, bench: Any, attack: str, folder: Path) -> dict[str, Any]:
    attacks, boosted = attacks_for(attack, bench.num_classes)
    grid = make_grid(config, bench, folder, _Grid)
    grid.attacker = 0 if attacks else -1
    grid.attacks, grid.boosted = attacks, boosted
    start = time.perf_counter()
    session = prepare(config, grid=grid, benchmark=bench, max_failed_rounds=0)
    result = session.run()
    final = result.final
    events = Counter(e["event"] for e in result.metrics["events"])
    return {
        "completed": result.status == "completed",
        "cloud_accuracy": final["cloud_accuracy"],
        "edge_accuracy": final.get("edge_accuracy"),
        "rejected": sum(
            1
            for e in result.metrics["events"]
            if e["event"] == "reply-rejected" and e.get("partition") == 0
        ),
        "events": dict(events),
        "wall_s": round(time.perf_counter() - start, 1),
    }


def main(argv: list[str] | None = None) -> int:
    p = parser(__doc__, brief=True, overrides=True)
    p.add_argument(
        "--attacks",
        default="crash,weight-takeover,boosted-update,extreme-activations,label-flip",
    )
    p.add_argument("--aggregators", default=",".join(AGGREGATORS))
    args = p.parse_args(argv)
    out = results_dir(args.out)
    base = config_from(BASE, args.overrides)
    bench = build_benchmark(base)
    rows: list[dict[str, Any]] = []
    work = out / "poisoning-runs"
    for aggregator in args.aggregators.split(","):
        config = HierConfig.from_mapping({"strategy": aggregator}, base=base).validate()
        clean = one_run(config, bench, "clean", work / f"{aggregator}-clean")
        print(f"{aggregator:10s} clean: cloud {clean['cloud_accuracy']:.3f}", flush=True)
        for attack in args.attacks.split(","):
            got = one_run(config, bench, attack, work / f"{aggregator}-{attack}")
            row = {
                "attack": attack,
                "aggregator": aggregator,
                "completed": got["completed"],
                "clean_cloud_accuracy": clean["cloud_accuracy"],
                "attacked_cloud_accuracy": got["cloud_accuracy"],
                "clean_edge_accuracy": clean["edge_accuracy"],
                "attacked_edge_accuracy": got["edge_accuracy"],
                "rejected": got["rejected"],
                "events": got["events"],
                "wall_s": got["wall_s"],
            }
            rows.append(row)
            print(
                f"{aggregator:10s} {attack:20s} completed={row['completed']} "
                f"cloud {row['clean_cloud_accuracy']:.3f} -> {row['attacked_cloud_accuracy']:.3f} "
                f"edge {row['clean_edge_accuracy']:.3f} -> {row['attacked_edge_accuracy']:.3f} "
                f"rejected {row['rejected']} events {row['events']}",
                flush=True,
            )
    write_rows(out / "poisoning.json", base, rows)
    return 0


if __name__ == "__main__":
    sys.exit(main())
