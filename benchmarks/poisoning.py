"""One poisoning edge of four under a defence: how much does each attack cost?

For each partition (IID, Dirichlet 0.3), seed and defence, one clean run (``attack=none``) and
one run per attack with partition 0 malicious, through the real federation in process
(``hierfl.testing.poisoning.PoisoningGrid``). Writes ``poisoning.json`` with one row each:

``attack, defence, partition, seed, completed, cloud_accuracy, edge_accuracy,
clean_cloud_accuracy, clean_edge_accuracy, cloud_asr, edge_asr, clean_cloud_asr, clean_edge_asr,
rejected, clipped, excluded, events, wall_s``

Accuracies are the final stream accuracies; ``edge_accuracy`` is the mean of the honest edges'
own exits (the attacker's own model is not the federation's). ``*_asr``: the share of triggered
test inputs of other classes that an exit classifies as the backdoor's target (every run is
measured, so the clean run's rate is the baseline). ``rejected``, ``clipped`` and ``excluded``
count the attacker's refused replies, clipped updates and rounds left out.

Defences: ``default`` (the default settings: ``centered-clip`` and ``label-screen``), ``none``
(both off, FedAvg) or an aggregator's name (that strategy, both off). Attacks: ``none``,
the update attacks of ``hierfl.testing.poisoning`` (``boosted-update``, ``sign-flip``, ``alie``,
``ipm``), ``label-flip``, ``backdoor``, and the malformed replies of the security review
(``crash``, ``weight-takeover``, ``extreme-activations``).
"""

from __future__ import annotations

import shutil
import sys
import time
from collections import Counter
from pathlib import Path
from typing import Any

from benchmarks.harness import config_from, parser, results_dir, write_rows
from hierfl.api import prepare
from hierfl.config import HierConfig
from hierfl.data.containers import Benchmark
from hierfl.data.streams import build_benchmark
from hierfl.testing.poisoning import (
    ATTACKER,
    PoisoningGrid,
    honest_edge_accuracies,
    poisoning_grid,
    target_class,
    triggered_test,
)
from hierfl.train.evaluate import exit_accuracies

BASE = {"clients": 4, "experiences": 2, "rounds": 3, "local-epochs": 2}
ATTACKS = ("boosted-update", "sign-flip", "alie", "ipm", "label-flip", "backdoor")
PARTITIONS = {
    "iid": {"partition": "iid"},
    "dirichlet": {"partition": "dirichlet", "dirichlet.alpha": 0.3},
}
OFF = {"centered-clip": 0.0, "label-screen": 0.0}


def defence_keys(defence: str) -> dict[str, Any]:
    if defence == "default":
        return {}
    if defence == "none":
        return dict(OFF)
    return {"strategy": defence, **OFF}


def one_run(config: HierConfig, bench: Benchmark, attack: str, folder: Path) -> dict[str, Any]:
    shutil.rmtree(folder, ignore_errors=True)  # the edges' state of an earlier run
    grid = poisoning_grid(config, bench, attack, folder)
    start = time.perf_counter()
    session = prepare(config, grid=grid, benchmark=bench, max_failed_rounds=0)
    result = session.run()
    events = result.metrics["events"]
    edge = honest_edge_accuracies(result.clients, config.experiences - 1)
    return {
        "completed": result.status == "completed",
        "cloud_accuracy": result.final["cloud_accuracy"],
        "edge_accuracy": sum(edge) / len(edge) if edge else result.final.get("edge_accuracy"),
        **_asr(session.orchestrator.model, bench, grid),
        "rejected": _count(events, "reply-rejected"),
        "clipped": _count(events, "update-clipped"),
        "excluded": _count(events, "edge-excluded"),
        "events": dict(Counter(e["event"] for e in events)),
        "wall_s": round(time.perf_counter() - start, 1),
    }


def _count(events: list[dict], kind: str) -> int:
    return sum(1 for e in events if e["event"] == kind and e.get("partition") == ATTACKER)


def _asr(model: Any, bench: Benchmark, grid: PoisoningGrid) -> dict[str, float]:
    """The backdoor's success rates: the cloud's and the honest edges' exits on the triggered
    test inputs, among the classes seen (the edges' models as they ended the run)."""
    x, y = triggered_test(bench.test, target_class(bench))
    classes = sorted({int(c) for e in bench.test for c in e.classes})
    edges = [s for p, s in sorted(grid.eval_copies.items()) if p != ATTACKER]
    accs = exit_accuracies(model, x, y, classes=classes, edges=edges)
    return {"cloud_asr": accs["cloud"], "edge_asr": accs["edge"]}


def main(argv: list[str] | None = None) -> int:
    p = parser(__doc__, brief=True, overrides=True)
    p.add_argument("--attacks", default=",".join(ATTACKS))
    p.add_argument("--defences", default="default,none")
    p.add_argument("--partitions", default=",".join(PARTITIONS))
    p.add_argument("--seeds", default="0,1")
    args = p.parse_args(argv)
    out = results_dir(args.out)
    rows: list[dict[str, Any]] = []
    work = out / "poisoning-runs"
    base = config_from(BASE, args.overrides)
    for partition in args.partitions.split(","):
        for seed in (int(s) for s in args.seeds.split(",")):
            keys = {**PARTITIONS[partition], "seed": seed}
            config = HierConfig.from_mapping(keys, base=base).validate()
            bench = build_benchmark(config)
            for defence in args.defences.split(","):
                cfg = HierConfig.from_mapping(defence_keys(defence), base=config).validate()
                name = f"{partition}-{seed}-{defence}"
                clean = one_run(cfg, bench, "none", work / f"{name}-none")
                attacks = ["none", *(a for a in args.attacks.split(",") if a != "none")]
                for attack in attacks:
                    got = (
                        clean
                        if attack == "none"
                        else one_run(cfg, bench, attack, work / f"{name}-{attack}")
                    )
                    row = {
                        "attack": attack,
                        "defence": defence,
                        "partition": partition,
                        "seed": seed,
                        **_with_clean(got, clean),
                    }
                    rows.append(row)
                    _print(row)
                write_rows(out / "poisoning.json", base, rows)  # as it goes
    return 0


def _with_clean(got: dict[str, Any], clean: dict[str, Any]) -> dict[str, Any]:
    keys = ("cloud_accuracy", "edge_accuracy", "cloud_asr", "edge_asr")
    return {**got, **{f"clean_{k}": clean[k] for k in keys}}


def _print(row: dict[str, Any]) -> None:
    asr = (
        f" asr cloud {row['clean_cloud_asr']:.3f}->{row['cloud_asr']:.3f}"
        f" edge {row['clean_edge_asr']:.3f}->{row['edge_asr']:.3f}"
        if row["attack"] == "backdoor"
        else ""
    )
    print(
        f"{row['partition']:9s} seed {row['seed']} {row['defence']:9s} {row['attack']:15s} "
        f"cloud {row['clean_cloud_accuracy']:.3f}->{row['cloud_accuracy']:.3f} "
        f"edge {row['clean_edge_accuracy']:.3f}->{row['edge_accuracy']:.3f}{asr} "
        f"rej {row['rejected']} clip {row['clipped']} excl {row['excluded']} "
        f"({row['wall_s']} s)",
        flush=True,
    )


if __name__ == "__main__":
    sys.exit(main())
