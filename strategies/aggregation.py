"""Edge-aggregation strategies by name: any ``flwr.serverapp.strategy.Strategy`` works.

Each declaration builds, from the run's ``HierConfig`` and its own settings, a Flower strategy
that trains every edge it is shown (``fraction_train=1``): every edge in every round, or with
``clients-per-round`` the round's sample (``hierfl.app.sampled_grid``). Flower's own evaluate
phase never runs: the cloud evaluates both exits itself. Register your own under the
``hierfl.aggregators`` entry point (``hierfl.registry.declarations.Aggregator``).

The FedOpt family (FedAdam, FedYogi, FedAdagrad; Reddi et al., "Adaptive Federated
Optimization", ICLR 2021) and FedAvgM (Hsu et al. 2019) keep server-side state (moments, a
momentum buffer); hierfl checkpoints it with the run. FedMedian (Yin et al. 2018) and
FedTrimmedAvg bound what one edge can do to the aggregate: pick them when edges are not
trusted.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from flwr.serverapp import strategy as fs

from hierfl.plugins import Aggregator, HierConfig, option


def _common(config: HierConfig) -> dict[str, Any]:
    return {
        "fraction_train": 1.0,
        "fraction_evaluate": 0.0,
        "min_train_nodes": config.round_clients,
        "min_evaluate_nodes": 0,
        "min_available_nodes": config.round_clients,
    }


@dataclass(frozen=True)
class FedProxSettings:
    proximal_mu: float = option(0.01, "weight of the proximal term on the edge", ge=0)


@dataclass(frozen=True)
class FedAvgMSettings:
    server_momentum: float = option(0.9, "server momentum", ge=0, lt=1)
    server_learning_rate: float = option(1.0, "server learning rate", gt=0)


@dataclass(frozen=True)
class FedOptSettings:
    eta: float = option(0.01, "server learning rate", gt=0)
    beta_1: float = option(0.9, "first-moment decay", ge=0, lt=1)
    beta_2: float = option(0.99, "second-moment decay", ge=0, lt=1)
    tau: float = option(0.001, "adaptivity: keeps the update finite", gt=0)


@dataclass(frozen=True)
class FedAdagradSettings:
    eta: float = option(0.1, "server learning rate", gt=0)
    tau: float = option(0.001, "adaptivity: keeps the update finite", gt=0)


@dataclass(frozen=True)
class FedTrimmedAvgSettings:
    beta: float = option(0.2, "share of the highest and of the lowest values cut", ge=0, lt=0.5)


fedavg = Aggregator(
    build=lambda config: fs.FedAvg(**_common(config)),
    summary="FedAvg: the mean of the edges' weights, weighted by their examples",
)
fedprox = Aggregator(
    build=lambda config, settings: fs.FedProx(proximal_mu=settings.proximal_mu, **_common(config)),
    settings=FedProxSettings,
    summary="FedAvg plus a proximal term that keeps each edge near the weights it received",
)
fedavgm = Aggregator(
    build=lambda config, settings: fs.FedAvgM(
        server_momentum=settings.server_momentum,
        server_learning_rate=settings.server_learning_rate,
        **_common(config),
    ),
    settings=FedAvgMSettings,
    keeps_state=True,
    summary="FedAvg with server momentum",
)


def _fedopt(cls: type[fs.FedAdam | fs.FedYogi]) -> Any:
    """Build an adaptive server optimizer (FedAdam, FedYogi) from ``FedOptSettings``."""

    def build(config: HierConfig, settings: FedOptSettings) -> fs.Strategy:
        return cls(
            eta=settings.eta,
            tau=settings.tau,
            beta_1=settings.beta_1,
            beta_2=settings.beta_2,
            **_common(config),
        )

    return build


fedadam = Aggregator(
    build=_fedopt(fs.FedAdam),
    settings=FedOptSettings,
    keeps_state=True,
    summary="adaptive server optimizer (Adam) over the averaged update",
)
fedyogi = Aggregator(
    build=_fedopt(fs.FedYogi),
    settings=FedOptSettings,
    keeps_state=True,
    summary="adaptive server optimizer (Yogi) over the averaged update",
)
fedadagrad = Aggregator(
    build=lambda config, settings: fs.FedAdagrad(
        eta=settings.eta, tau=settings.tau, **_common(config)
    ),
    settings=FedAdagradSettings,
    keeps_state=True,
    summary="adaptive server optimizer (Adagrad) over the averaged update",
)
fedmedian = Aggregator(
    build=lambda config: fs.FedMedian(**_common(config)),
    robust=True,
    summary="coordinate-wise median of the edges' weights: robust to a few bad edges",
)
fedtrimmedavg = Aggregator(
    build=lambda config, settings: fs.FedTrimmedAvg(beta=settings.beta, **_common(config)),
    settings=FedTrimmedAvgSettings,
    robust=True,
    summary="coordinate-wise mean without the extremes: robust to a few bad edges",
)
