"""Every registered model trains one tiny experience in every mode, deterministically."""

from __future__ import annotations

import dataclasses

import pytest

from hierfl.config import HierConfig
from hierfl.local import LocalFederation
from hierfl.modes import MODES
from hierfl.orchestrator import Orchestrator
from hierfl.plugins import MODELS, PARTITIONERS
from hierfl.streams import build_benchmark

SHAPES = {"small-cnn": "1x8x8"}  # the CIFAR-shaped models get 3x32x32


def _config(model: str, mode: str) -> HierConfig:
    return HierConfig(
        model=model,
        mode=mode,
        scenario="synthetic",
        input_shape=SHAPES.get(model, "3x32x32"),
        num_classes=4,
        samples_per_class=8,
        experiences=1,
        clients=2,
        rounds=1,
        local_epochs=1,
    ).validate()


_BENCH: dict[str, object] = {}


def _run(config: HierConfig, tmp_path):
    key = config.input_shape
    if key not in _BENCH:
        _BENCH[key] = build_benchmark(config)
    bench = _BENCH[key]
    streams = [
        PARTITIONERS.get("iid")(bench, partition_id=i, num_partitions=2, seed=0) for i in range(2)
    ]
    fed = LocalFederation(config, streams, state_root=tmp_path)
    return Orchestrator(config, fed, bench, poll_interval=0.0).run()


@pytest.mark.parametrize("mode", sorted(MODES))
@pytest.mark.parametrize("model", MODELS.names())
def test_one_tiny_experience_in_every_mode(model, mode, tmp_path):
    result = _run(_config(model, mode), tmp_path)
    assert result.matrix.exits() == list(MODES[mode].exits)
    for exit_name in MODES[mode].exits:
        (accuracy,) = result.matrix.row(exit_name, 0)
        assert 0.0 <= accuracy <= 1.0
    assert (result.raw_input_bytes_uplink > 0) == (mode == "cloud")


@pytest.mark.parametrize("model", MODELS.names())
def test_hierarchical_run_is_deterministic_under_a_seed(model, tmp_path):
    config = _config(model, "hierarchical")
    first = _run(config, tmp_path / "a")
    second = _run(dataclasses.replace(config), tmp_path / "b")
    for exit_name in ("edge", "cloud"):
        assert first.matrix.row(exit_name, 0) == second.matrix.row(exit_name, 0)
