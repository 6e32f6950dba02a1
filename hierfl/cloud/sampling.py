"""Client sampling: which ``clients-per-round`` edges a round asks.

Cross-device federated learning asks a fraction of the clients each round (FedAvg's C). Flower's
strategies draw them with an unseeded ``random.sample``; hierfl draws them from the run's seed,
so that a run is reproducible and every engine asks the same edges. Within an experience the
rounds go through seeded cycles of ``ceil(n / k)`` rounds: each cycle shuffles the edges and
deals them out ``k`` at a time (the last round of a cycle tops up with edges already dealt), so
every edge is asked at least once in every cycle, and at least once per experience when it has
that many rounds.
"""

from __future__ import annotations

import math
import random
from collections.abc import Hashable, Sequence
from typing import TypeVar

from hierfl.boundary import RoundRequest
from hierfl.config import HierConfig
from hierfl.train.schedule import seed_for

T = TypeVar("T", bound=Hashable)


def cycle_rounds(edges: int, per_round: int) -> int:
    """Rounds in one sampling cycle: every edge is asked once in that many rounds."""
    return math.ceil(edges / per_round)


def sample_round(
    edges: Sequence[T], per_round: int, *, seed: int, experience: int, round: int
) -> list[T]:
    """The ``per_round`` of ``edges`` that ``round`` of ``experience`` asks, in ``edges``'
    order (``edges`` in a fixed order: the draw depends on it).

    Raises:
        ValueError: ``per_round`` is not in ``1..len(edges)``.
    """
    n = len(edges)
    if not 1 <= per_round <= n:
        raise ValueError(f"cannot ask {per_round} of {n} edges in a round")
    if per_round == n:
        return list(edges)
    rounds = cycle_rounds(n, per_round)
    cycle, turn = divmod(round, rounds)
    order = list(range(n))
    random.Random(seed * 1_000_003 + experience * 10_007 + cycle).shuffle(order)
    picked = order[turn * per_round : (turn + 1) * per_round]
    picked += order[: per_round - len(picked)]  # the cycle's last round: top up
    chosen = set(picked)
    return [e for i, e in enumerate(edges) if i in chosen]


def sample_for_run(config: HierConfig, edges: Sequence[T], request: RoundRequest) -> list[T]:
    """The edges ``request``'s round asks in this run (all without ``clients-per-round``)."""
    return sample_round(
        edges,
        min(config.round_clients, len(edges)),
        seed=seed_for(config, 424242),
        experience=request.experience,
        round=request.round,
    )


def coverage_warning(config: HierConfig) -> str | None:
    """What to tell a user whose experiences are too short for every edge to be asked in each
    (None: every edge is, or every edge is asked every round)."""
    if not config.clients_per_round:
        return None
    cycle = config.sampling_cycle
    if config.rounds >= cycle:
        return None
    asked = config.rounds * config.round_clients
    return (
        f"clients-per-round={config.round_clients} of {config.clients} edges asks every edge "
        f"once in {cycle} rounds, but an experience has rounds={config.rounds}: about "
        f"{config.clients - min(asked, config.clients)} edges sit out each experience and their "
        f"data of it is never trained on; use rounds >= {cycle} for every edge to take part"
    )
