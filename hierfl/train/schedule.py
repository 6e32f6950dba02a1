"""The round schedule: the one place that knows what ``online`` and ``ship`` mean for a round.

A run is ``experiences`` x ``rounds`` rounds. Normally an edge trains ``local-epochs``
shuffled passes over its whole experience each round and ships every pass
(``ship=every-epoch``) or only the last (``ship=last-epoch``). Online (``online=true``) each
sample arrives once: the experience is shuffled once, round r takes the r-th of ``rounds``
slices, the edge trains ``online-passes`` passes over it and ships it once, after the last.
Every seed a round uses is derived here too, so that a round computes the same on every call.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping

import torch

from hierfl.boundary import RoundRequest
from hierfl.config import HierConfig
from hierfl.data.containers import ClientStream, ExperienceData

Batches = list[tuple[torch.Tensor, torch.Tensor]]


def run_schedule(config: HierConfig) -> list[RoundRequest]:
    """Every round of the run, in order."""
    return [RoundRequest(k, r) for k in range(config.experiences) for r in range(config.rounds)]


def run_round(config: HierConfig, request: RoundRequest) -> int:
    """``request``'s place in the run, 1-based (the numbering of ``link-down``)."""
    return request.experience * config.rounds + request.round + 1


def seed_for(config: HierConfig, *parts: int) -> int:
    """A seed derived from the run's ``seed`` and ``parts`` (partition, experience, round, ...)."""
    value = config.seed
    for p in parts:
        value = (value * 1_000_003 + p + 1) % (2**62)
    return value


def passes_per_round(config: HierConfig) -> int:
    """Passes an edge trains over a round's samples: ``online-passes`` online, else
    ``local-epochs``."""
    return config.online_passes if config.online else config.local_epochs


def passes_per_chunk(config: HierConfig) -> int:
    """How many passes the activations of one chunk stand for: ``local-epochs`` when an edge
    ships only its last epoch (``ship=last-epoch``); online, ``online-passes`` (a sample leaves
    once, after the last pass over it); else 1 (every pass is shipped)."""
    if config.online:
        return config.online_passes
    return config.local_epochs if config.ship == "last-epoch" else 1


def ship_from(config: HierConfig, batches: int) -> int:
    """The index of the first of a round's ``batches`` that is shipped (earlier ones are only
    trained on)."""
    return batches - batches // passes_per_chunk(config)


def first_sight(config: HierConfig, request: RoundRequest, since: int | None = None) -> bool:
    """Whether ``request``'s samples are new to the edge: every round online, else the first
    round of the experience the edge trains (``since``, ``first_untrained``: 0 when it
    trained none of the experience's earlier rounds; None: the experience's first round)."""
    if config.online:
        return True
    return (request.round if since is None else since) == 0


def first_untrained(cursor: Mapping[str, int] | None, request: RoundRequest) -> int:
    """The first round of ``request``'s experience whose samples the edge has not trained:
    the one after the last it trained (``cursor``: the experience and round of its last
    round), or 0. An edge that sat out rounds (``clients-per-round``) catches up online."""
    if cursor and cursor["experience"] == request.experience and cursor["round"] < request.round:
        return int(cursor["round"]) + 1
    return 0


def round_share(config: HierConfig, samples: int) -> int:
    """At most how many of an experience's ``samples`` one round trains on (online: a slice)."""
    return -(-samples // config.rounds) + 1 if config.online else samples


def experience_of(stream: ClientStream, request: RoundRequest) -> ExperienceData:
    if not 0 <= request.experience < len(stream.experiences):
        raise ValueError(
            f"experience {request.experience} out of range (stream has {len(stream.experiences)})"
        )
    return stream.experiences[request.experience]


def round_data(
    config: HierConfig, stream: ClientStream, request: RoundRequest, since: int | None = None
) -> tuple[torch.Tensor, torch.Tensor]:
    """The samples this round trains on: all of the experience, or online the round's slice;
    with ``since`` (``first_untrained``) also the slices of the rounds since then, which
    arrived while the edge sat out."""
    exp = experience_of(stream, request)
    if not config.online:
        return exp.x, exp.y
    gen = torch.Generator().manual_seed(seed_for(config, stream.partition_id, request.experience))
    order = torch.randperm(len(exp), generator=gen)
    slices = torch.tensor_split(order, config.rounds)
    first = request.round if since is None else min(since, request.round)
    part = torch.cat(slices[first : request.round + 1])
    return exp.x[part], exp.y[part]


def batches_of(
    config: HierConfig,
    stream: ClientStream,
    request: RoundRequest,
    x: torch.Tensor,
    y: torch.Tensor,
) -> Batches:
    """``round_data``'s samples cut into this round's shuffled mini-batches."""
    gen = torch.Generator().manual_seed(
        seed_for(config, stream.partition_id, request.experience, request.round)
    )
    epochs = passes_per_round(config)
    return list(epoch_batches(x, y, batch_size=config.batch_size, epochs=epochs, generator=gen))


def round_batches(config: HierConfig, stream: ClientStream, request: RoundRequest) -> Batches:
    """This round's mini-batches, the same on every call."""
    return batches_of(config, stream, request, *round_data(config, stream, request))


def epoch_batches(
    x: torch.Tensor, y: torch.Tensor, *, batch_size: int, epochs: int, generator: torch.Generator
) -> Iterable[tuple[torch.Tensor, torch.Tensor]]:
    """Shuffled mini-batches over ``epochs`` passes, reproducible through ``generator``.

    A last batch of a single sample is folded into the one before it: BatchNorm layers cannot
    train on one value per channel.
    """
    n = int(y.shape[0])
    for _ in range(epochs):
        order = torch.randperm(n, generator=generator)
        starts = list(range(0, n, batch_size))
        if len(starts) > 1 and n - starts[-1] == 1:
            starts.pop()
        for i, start in enumerate(starts):
            end = starts[i + 1] if i + 1 < len(starts) else n
            idx = order[start:end]
            yield x[idx], y[idx]
