"""Non-IID split of every training experience across edges: per-class Dirichlet proportions."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

from hierfl.plugins import Benchmark, ClientStream, ConfigError, ExperienceData, Partitioner, option


@dataclass(frozen=True)
class DirichletSettings:
    alpha: float = option(0.5, "concentration: small is skewed, large approaches IID", gt=0)


def partition_dirichlet(
    benchmark: Benchmark,
    *,
    partition_id: int,
    num_partitions: int,
    seed: int,
    alpha: float = 0.5,
) -> ClientStream:
    """Client ``partition_id``'s share when each class is spread by ``Dirichlet(alpha)``.

    Small ``alpha`` gives skewed shares (some clients hold most of a class, some none), large
    ``alpha`` approaches IID. As with the IID split, the shares are a pure function of the
    arguments: every node computes its own, and together they are disjoint and complete.
    """
    if num_partitions < 1:
        raise ConfigError("clients", f"must be >= 1, got {num_partitions}")
    if not 0 <= partition_id < num_partitions:
        raise ConfigError("partition-id", f"must be in 0..{num_partitions - 1}, got {partition_id}")
    if alpha <= 0:
        raise ConfigError("dirichlet.alpha", f"must be > 0, got {alpha}")
    return ClientStream(
        partition_id=partition_id,
        num_partitions=num_partitions,
        experiences=tuple(
            _share(e, partition_id, num_partitions, seed, alpha) for e in benchmark.train
        ),
        num_classes=benchmark.num_classes,
        input_shape=benchmark.input_shape,
    )


def _share(
    experience: ExperienceData, partition_id: int, num_partitions: int, seed: int, alpha: float
) -> ExperienceData:
    labels = experience.y.numpy()
    pieces = []
    for label in np.unique(labels):
        rng = np.random.default_rng([seed, experience.index, int(label)])
        members = rng.permutation(np.flatnonzero(labels == label))
        proportions = rng.dirichlet(np.full(num_partitions, alpha))
        cuts = (np.cumsum(proportions)[:-1] * len(members)).astype(int)
        pieces.append(np.split(members, cuts)[partition_id])
    index = torch.from_numpy(np.sort(np.concatenate(pieces or [np.empty(0, np.int64)])))
    return ExperienceData(
        experience.index, experience.classes, experience.x[index], experience.y[index]
    )


dirichlet = Partitioner(
    build=lambda benchmark, *, settings, **kw: partition_dirichlet(
        benchmark, alpha=settings.alpha, **kw
    ),
    settings=DirichletSettings,
    summary="per-class Dirichlet(alpha) shares (Hsu et al. 2019): non-IID edges",
)
