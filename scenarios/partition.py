"""Split every training experience of a benchmark across edge clients (IID, class-stratified)."""

from __future__ import annotations

import numpy as np
import torch

from hierfl.plugins import Benchmark, ClientStream, ConfigError, ExperienceData, Partitioner


def partition_iid(
    benchmark: Benchmark, *, partition_id: int, num_partitions: int, seed: int
) -> ClientStream:
    """Return client ``partition_id``'s IID share of every training experience.

    Each node computes only its own share, with no coordination: the split is a pure function
    of the arguments, so the shares of ids ``0..num_partitions-1`` are disjoint and together
    cover every sample. Within an experience each class is shuffled by a generator seeded from
    ``(seed, experience index)`` and cut into ``num_partitions`` near-equal pieces, so every
    client sees every class of the experience and per-class counts differ by at most one.
    The test experiences are not split: evaluation uses the shared test set.

    Args:
        benchmark: The stream to split, as built by a scenario.
        partition_id: Which client's share to return, ``0 <= partition_id < num_partitions``.
        num_partitions: How many clients share the stream.
        seed: Fixes the shuffle; the same seed on every node gives the same split.

    Returns:
        The client's stream; each experience keeps its index, its classes and the relative
        order of its samples. ``classes`` is the experience's, even where a class has fewer
        samples than there are clients and this share holds none of it (or nothing at all).

    Raises:
        ConfigError: ``clients`` < 1, ``partition-id`` out of range, or ``seed`` < 0.
    """
    if num_partitions < 1:
        raise ConfigError("clients", f"must be >= 1, got {num_partitions}")
    if not 0 <= partition_id < num_partitions:
        raise ConfigError("partition-id", f"must be in 0..{num_partitions - 1}, got {partition_id}")
    if seed < 0:
        raise ConfigError("seed", f"must be >= 0, got {seed}")
    return ClientStream(
        partition_id=partition_id,
        num_partitions=num_partitions,
        experiences=tuple(
            _share(experience, partition_id, num_partitions, seed) for experience in benchmark.train
        ),
        num_classes=benchmark.num_classes,
        input_shape=benchmark.input_shape,
    )


def _share(
    experience: ExperienceData, partition_id: int, num_partitions: int, seed: int
) -> ExperienceData:
    """One client's piece of one experience, stratified per class."""
    rng = np.random.default_rng([seed, experience.index])
    labels = experience.y.numpy()
    pieces = []
    for label in np.unique(labels):  # sorted, so the draws do not depend on sample order
        shuffled = rng.permutation(np.flatnonzero(labels == label))
        pieces.append(np.array_split(shuffled, num_partitions)[partition_id])
    index = torch.from_numpy(np.sort(np.concatenate(pieces or [np.empty(0, np.int64)])))
    return ExperienceData(
        index=experience.index,
        classes=experience.classes,
        x=experience.x[index],
        y=experience.y[index],
    )


iid = Partitioner(
    build=partition_iid, summary="class-stratified IID shares: every edge sees every class"
)
