"""Every registered model trains one tiny experience in every mode, deterministically."""

from __future__ import annotations

import dataclasses

import pytest
import torch

from hierfl.api import prepare
from hierfl.config import HierConfig
from hierfl.data.streams import build_benchmark
from hierfl.modes import MODES
from hierfl.registry import MODELS

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


def _run(config: HierConfig):
    """(result, the model's weights at the start, the model's weights at the end)."""
    key = config.input_shape
    if key not in _BENCH:
        _BENCH[key] = build_benchmark(config)
    session = prepare(config, benchmark=_BENCH[key])
    model = session.orchestrator.model
    start = {k: v.clone() for k, v in model.state_dict().items()}
    result = session.run()
    return result, start, model.state_dict()


@pytest.mark.parametrize("mode", sorted(MODES))
@pytest.mark.parametrize("model", MODELS.names())
def test_one_tiny_experience_in_every_mode(model, mode):
    result, start, end = _run(_config(model, mode))
    assert result.accuracy.exits() == list(MODES[mode].exits)
    trained = {"edge": "edge.", "cloud": "cloud."}
    for exit_name in MODES[mode].exits:  # the weights behind each reported exit moved
        prefix = "" if mode == "cloud" else trained[exit_name]
        moved = [k for k in end if k.startswith(prefix) and not torch.equal(end[k], start[k])]
        assert moved, f"no {exit_name} weight changed in {mode} mode"
    assert (result.communication["raw_input_bytes_uplink"] > 0) == (mode == "cloud")


@pytest.mark.parametrize("model", MODELS.names())
def test_hierarchical_run_is_deterministic_under_a_seed(model):
    """Same seed, same weights, bit for bit: edge seeds, batch order and cloud steps are all
    derived from ``seed`` (an edge with an unseeded generator fails this)."""
    config = _config(model, "hierarchical")
    _, _, first = _run(config)
    _, _, second = _run(dataclasses.replace(config))
    assert first.keys() == second.keys()
    for k in first:
        assert torch.equal(first[k], second[k]), k
    _, _, other = _run(dataclasses.replace(config, seed=1))
    assert any(not torch.equal(first[k], other[k]) for k in first if k.startswith("cloud."))
