"""Build a node's stream once per run and cache it as tensors in its node-local folder.

The cached path imports neither Avalanche nor torchvision: only the first message of a run on
a node pays for building the scenario.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import torch

from hierfl.config import HierConfig
from hierfl.data.containers import Benchmark, ClientStream, ExperienceData, ScenarioSpec
from hierfl.registry import PARTITIONERS, SCENARIOS
from hierfl.util.storage import save_atomic

_CACHE_VERSION = 2  # 2: images on the uint8 grid


def scenario_spec(config: HierConfig) -> ScenarioSpec:
    return ScenarioSpec(
        name=config.scenario,
        num_experiences=config.experiences,
        seed=config.seed,
        test_fraction=config.test_fraction,
        data_dir=config.data_dir,
        input_shape=config.image_shape,
        num_classes=config.num_classes or None,
        samples_per_class=config.samples_per_class or None,
    )


def build_benchmark(config: HierConfig) -> Benchmark:
    """Run the registered scenario builder (may import Avalanche: slow)."""
    plugin = SCENARIOS.plugin(config.scenario)
    return plugin.make(scenario_spec(config), settings=config.settings(config.scenario))


def _key(config: HierConfig, *parts: object) -> str:
    spec = scenario_spec(config)
    blob = json.dumps(
        [
            _CACHE_VERSION,
            spec.__dict__,
            config.plugin_settings.get(config.scenario, {}),
            config.partition,
            config.plugin_settings.get(config.partition, {}),
            config.late_clients,
            *parts,
        ],
        sort_keys=True,
        default=str,
    )
    return hashlib.sha256(blob.encode()).hexdigest()[:16]


def _pack(experiences: tuple[ExperienceData, ...]) -> list[dict[str, Any]]:
    return [{"index": e.index, "classes": list(e.classes), "x": e.x, "y": e.y} for e in experiences]


def _unpack(items: list[dict[str, Any]]) -> tuple[ExperienceData, ...]:
    return tuple(
        ExperienceData(int(d["index"]), tuple(int(c) for c in d["classes"]), d["x"], d["y"])
        for d in items
    )


def _cached(path: Path, build: Callable[[], tuple[tuple[ExperienceData, ...], int, tuple]]):
    """Load ``(experiences, num_classes, input_shape)`` from ``path``, or build and save it."""
    if path.exists():
        d = torch.load(path, weights_only=True)
    else:
        experiences, num_classes, input_shape = build()
        d = {
            "experiences": _pack(experiences),
            "num_classes": num_classes,
            "input_shape": list(input_shape),
        }
        save_atomic(d, path)
    shape = tuple(int(v) for v in d["input_shape"])
    return _unpack(d["experiences"]), int(d["num_classes"]), shape


def load_client_stream(
    config: HierConfig,
    *,
    partition_id: int,
    num_partitions: int,
    cache_dir: Path,
    shared: bool = False,
) -> ClientStream:
    """This node's private stream, from the cache or built from the seed (never downloaded).

    ``shared``: this process serves many edges (the simulation engine's actors): the whole
    benchmark is built once and kept for the next edge's partition, instead of once per edge.
    """

    def build() -> tuple[tuple[ExperienceData, ...], int, tuple]:
        bench = _shared_benchmark(config) if shared else build_benchmark(config)
        part = partition_stream(config, bench, partition_id, num_partitions)
        return part.experiences, part.num_classes, part.input_shape

    path = Path(cache_dir) / f"stream-{_key(config, partition_id, num_partitions)}.pt"
    experiences, num_classes, input_shape = _cached(path, build)
    return ClientStream(partition_id, num_partitions, experiences, num_classes, input_shape)


_SHARED: dict[str, Benchmark] = {}  # at most one: the run's


def _shared_benchmark(config: HierConfig) -> Benchmark:
    key = _key(config)
    if key not in _SHARED:
        _SHARED.clear()
        _SHARED[key] = build_benchmark(config)
    return _SHARED[key]


def partition_stream(
    config: HierConfig, bench: Benchmark, partition_id: int, num_partitions: int
) -> ClientStream:
    """This client's share (registered partitioner), then its class-arrival delay if any."""
    part = PARTITIONERS.plugin(config.partition).make(
        bench,
        partition_id=partition_id,
        num_partitions=num_partitions,
        seed=config.seed,
        settings=config.settings(config.partition),
    )
    delays = config.arrival_delays
    if partition_id not in delays:
        return part
    return delay_stream(part, delays[partition_id])


def delay_stream(stream: ClientStream, delay: int | None) -> ClientStream:
    """A client that meets each experience's classes ``delay`` experiences late, or never.

    Experience k then holds the client's share of experience k - delay (nothing before
    ``delay``); with ``None`` the client keeps experience 0 and receives nothing after it, so
    it never meets the later classes that the other edges learn.
    """
    empty_x = torch.zeros(0, *stream.input_shape)
    empty_y = torch.zeros(0, dtype=torch.long)
    shifted = []
    for k in range(len(stream.experiences)):
        source = (0 if k == 0 else None) if delay is None else (k - delay if k >= delay else None)
        if source is None:
            shifted.append(ExperienceData(k, (), empty_x, empty_y))
        else:
            old = stream.experiences[source]
            shifted.append(ExperienceData(k, old.classes, old.x, old.y))
    return dataclasses.replace(stream, experiences=tuple(shifted))


def load_test_benchmark(config: HierConfig, *, cache_dir: Path) -> Benchmark:
    """The held-out test experiences and the training experiences' sizes (their samples left
    out: the cloud never holds them), cached like client streams."""
    path = Path(cache_dir) / f"test-{_key(config)}.pt"
    sizes_path = path.with_suffix(".sizes.pt")

    def build() -> tuple[tuple[ExperienceData, ...], int, tuple]:
        bench = build_benchmark(config)
        save_atomic({"sizes": list(bench.sizes)}, sizes_path)
        return bench.test, bench.num_classes, bench.input_shape

    experiences, num_classes, input_shape = _cached(path, build)
    sizes = torch.load(sizes_path, weights_only=True)["sizes"] if sizes_path.exists() else []
    return Benchmark(
        train=(),
        test=experiences,
        num_classes=num_classes,
        input_shape=input_shape,
        train_sizes=tuple(int(n) for n in sizes),
    )
