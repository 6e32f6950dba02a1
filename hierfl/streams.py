"""Build a node's stream once per run and cache it as tensors in its node-local folder.

The cached path imports neither Avalanche nor torchvision: only the first message of a run on
a node pays for building the scenario.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Any

import torch

from hierfl.config import HierConfig
from hierfl.data import Benchmark, ClientStream, ExperienceData, ScenarioSpec
from hierfl.storage import save_atomic

_CACHE_VERSION = 1


def scenario_spec(config: HierConfig) -> ScenarioSpec:
    return ScenarioSpec(
        name=config.scenario,
        num_experiences=config.experiences,
        seed=config.seed,
        test_fraction=config.test_fraction,
        data_dir=config.data_dir,
    )


def build_benchmark(config: HierConfig) -> Benchmark:
    """Run the registered scenario builder (may import Avalanche: slow)."""
    from hierfl.plugins import SCENARIOS

    return SCENARIOS.get(config.scenario)(scenario_spec(config))


def _key(config: HierConfig, *parts: object) -> str:
    spec = scenario_spec(config)
    blob = json.dumps([_CACHE_VERSION, spec.__dict__, config.partition, *parts], sort_keys=True)
    return hashlib.sha256(blob.encode()).hexdigest()[:16]


def _pack(experiences: tuple[ExperienceData, ...]) -> list[dict[str, Any]]:
    return [{"index": e.index, "classes": list(e.classes), "x": e.x, "y": e.y} for e in experiences]


def _unpack(items: list[dict[str, Any]]) -> tuple[ExperienceData, ...]:
    return tuple(
        ExperienceData(int(d["index"]), tuple(int(c) for c in d["classes"]), d["x"], d["y"])
        for d in items
    )


def load_client_stream(
    config: HierConfig, *, partition_id: int, num_partitions: int, cache_dir: Path
) -> ClientStream:
    """This node's private stream, from the cache or built from the seed (never downloaded)."""
    path = Path(cache_dir) / f"stream-{_key(config, partition_id, num_partitions)}.pt"
    if path.exists():
        d = torch.load(path, weights_only=True)
    else:
        from hierfl.plugins import PARTITIONERS

        bench = build_benchmark(config)
        part = PARTITIONERS.get(config.partition)(
            bench, partition_id=partition_id, num_partitions=num_partitions, seed=config.seed
        )
        d = {
            "experiences": _pack(part.experiences),
            "num_classes": part.num_classes,
            "input_shape": list(part.input_shape),
        }
        save_atomic(d, path)
    return ClientStream(
        partition_id=partition_id,
        num_partitions=num_partitions,
        experiences=_unpack(d["experiences"]),
        num_classes=int(d["num_classes"]),
        input_shape=tuple(int(v) for v in d["input_shape"]),  # type: ignore[arg-type]
    )


def load_test_benchmark(config: HierConfig, *, cache_dir: Path) -> Benchmark:
    """The held-out test experiences (train left empty), cached like client streams."""
    path = Path(cache_dir) / f"test-{_key(config)}.pt"
    if path.exists():
        d = torch.load(path, weights_only=True)
    else:
        bench = build_benchmark(config)
        d = {
            "experiences": _pack(bench.test),
            "num_classes": bench.num_classes,
            "input_shape": list(bench.input_shape),
        }
        save_atomic(d, path)
    return Benchmark(
        train=(),
        test=_unpack(d["experiences"]),
        num_classes=int(d["num_classes"]),
        input_shape=tuple(int(v) for v in d["input_shape"]),  # type: ignore[arg-type]
    )
