"""Flower's fixed cost per message: its share of a round, and the work a round needs to hide it.

Used by ``hierfl run`` (the end-of-run advice and ``metrics.json`` ``time``) and by
``benchmarks/flower_overhead.py``; the rule is documented in docs/runtime.md ("the chunk rule").
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from hierfl.errors import ConfigError

# Advice asks for at most this many times a round's work; beyond it the run is simply small
# next to Flower's fixed cost, and the in-process engine is the better tool.
MAX_FACTOR = 4.0


def overhead_share(work_s: float, overhead_s: float, messages: int = 1) -> float:
    """Share of a round's time lost to a fixed cost of ``overhead_s`` per message.

    One edge handles its messages one after another (a Flower SuperNode runs one ClientApp at
    a time), so a round of ``work_s`` seconds of compute and link in ``messages`` messages takes
    ``work_s + messages * overhead_s``.

    >>> round(overhead_share(30.0, 10.0), 3)
    0.25
    """
    if messages < 1:
        raise ConfigError("messages", f"must be >= 1, got {messages}")
    if work_s < 0 or overhead_s < 0:
        raise ConfigError("work_s", "work and overhead must be >= 0")
    lost = messages * overhead_s
    return lost / (work_s + lost) if work_s + lost else 0.0


def min_work_per_message(overhead_s: float, max_share: float = 0.1) -> float:
    """Seconds of work one message must carry to keep the overhead under ``max_share``.

    From ``overhead_s / (work + overhead_s) <= max_share``: ``work >= overhead_s * (1 - s) / s``,
    i.e. 9 times the overhead for 10 %.

    >>> min_work_per_message(10.0, 0.1)
    90.0
    """
    if not 0 < max_share < 1:
        raise ConfigError("max_share", f"must be in (0, 1), got {max_share}")
    return overhead_s * (1.0 - max_share) / max_share


@dataclass(frozen=True)
class RoundOverhead:
    """A run's fixed cost per round beyond one edge's work, and what it would take to hide it."""

    overhead_s: float  # median reply latency beyond one edge's compute and emulated link
    work_s: float  # median edge compute plus emulated link of one edge per round
    share: float  # overhead_s / (work_s + overhead_s)
    needed_work_s: float  # work per round that keeps the share at ``max_share``

    def advice(
        self,
        local_epochs: int,
        max_share: float = 0.1,
        *,
        online: bool = False,
        rounds: int = 1,
    ) -> str | None:
        """One line for the log when the share is above ``max_share`` and a change within
        reason (at most ``MAX_FACTOR`` times the work per round) would bring it down; else None.

        Multi-epoch runs are told how many ``local-epochs`` would do; online runs, where each
        sample is seen once and ``local-epochs`` is ignored, how few ``rounds`` per experience.

        >>> RoundOverhead(2.0, 6.0, 0.25, 18.0).advice(5)[-22:]
        'e.g. local-epochs >= 15'
        >>> RoundOverhead(2.0, 0.1, 0.95, 18.0).advice(5) is None  # would need 900 epochs
        True
        """
        if self.share <= max_share or self.work_s <= 0:
            return None
        factor = self.needed_work_s / self.work_s
        if factor > MAX_FACTOR:
            return None
        if online:
            fewer = math.floor(rounds / factor)
            if fewer < 1 or fewer >= rounds:
                return None
            hint = f"e.g. rounds <= {fewer} (online: each round takes a share of the experience)"
        else:
            hint = f"e.g. local-epochs >= {math.ceil(local_epochs * factor)}"
        return (
            f"fixed overhead {self.overhead_s:.1f}s per round is {100 * self.share:.0f}% of round "
            f"time: rounds carry {self.work_s:.1f}s of edge work and link per edge, and need "
            f">= {self.needed_work_s:.0f}s for {100 * max_share:.0f}% (docs/runtime.md: the "
            f"chunk rule); {hint}"
        )


def round_overhead(
    rounds: Sequence[Mapping[str, float]],
    link_per_round: Sequence[float],
    clients: int,
    max_share: float = 0.1,
) -> RoundOverhead | None:
    """Measure a run's fixed overhead from its per-round figures (``metrics.json`` ``rounds``).

    Edges work side by side, so one edge's share of a round is the round's summed edge compute
    and emulated link divided by ``clients``; whatever the replies took beyond that is fixed
    cost (in Flower: process start, polls and transfers). The first round is left out when
    there are others. None for a run without rounds.
    """
    if not rounds or clients < 1:
        return None
    if len(link_per_round) != len(rounds):
        raise ConfigError(
            "link_per_round", f"{len(link_per_round)} values for {len(rounds)} rounds"
        )
    if len(rounds) > 1:  # the first round also pays start-up (partition cache, Ray actors)
        rounds, link_per_round = rounds[1:], link_per_round[1:]
    pairs = zip(rounds, link_per_round, strict=True)
    work = [(r["edge_compute_s"] + link) / clients for r, link in pairs]
    extra = [max(r["reply_latency_s"] - w, 0.0) for r, w in zip(rounds, work, strict=True)]
    overhead_s, work_s = _median(extra), _median(work)
    share = overhead_s / (overhead_s + work_s) if overhead_s + work_s else 0.0
    return RoundOverhead(overhead_s, work_s, share, min_work_per_message(overhead_s, max_share))


def _median(values: Sequence[float]) -> float:
    ordered = sorted(values)
    mid = len(ordered) // 2
    return ordered[mid] if len(ordered) % 2 else (ordered[mid - 1] + ordered[mid]) / 2
