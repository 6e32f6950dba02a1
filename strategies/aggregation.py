"""Edge-aggregation strategies by name: any ``flwr.serverapp.strategy.Strategy`` works.

Each factory takes the run's ``HierConfig`` and returns a strategy that trains every edge in
every round (``fraction_train=1``) and never runs Flower's own evaluate phase: the cloud
evaluates both exits itself. Register your own under the ``hierfl.aggregators`` entry point.
"""

from __future__ import annotations

from typing import Any

from flwr.serverapp import strategy as fs

from hierfl.config import HierConfig


def _common(config: HierConfig) -> dict[str, Any]:
    return {
        "fraction_train": 1.0,
        "fraction_evaluate": 0.0,
        "min_train_nodes": config.clients,
        "min_evaluate_nodes": 0,
        "min_available_nodes": config.clients,
    }


def fedavg(config: HierConfig) -> fs.Strategy:
    return fs.FedAvg(**_common(config))


def fedprox(config: HierConfig, proximal_mu: float = 0.01) -> fs.Strategy:
    return fs.FedProx(proximal_mu=proximal_mu, **_common(config))


def fedavgm(config: HierConfig, server_momentum: float = 0.9) -> fs.Strategy:
    return fs.FedAvgM(server_momentum=server_momentum, **_common(config))


def fedadam(config: HierConfig) -> fs.Strategy:
    return fs.FedAdam(eta=1e-2, **_common(config))


def fedyogi(config: HierConfig) -> fs.Strategy:
    return fs.FedYogi(eta=1e-2, **_common(config))


def fedadagrad(config: HierConfig) -> fs.Strategy:
    return fs.FedAdagrad(eta=1e-1, **_common(config))


def fedmedian(config: HierConfig) -> fs.Strategy:
    return fs.FedMedian(**_common(config))


def fedtrimmedavg(config: HierConfig, beta: float = 0.2) -> fs.Strategy:
    return fs.FedTrimmedAvg(beta=beta, **_common(config))
