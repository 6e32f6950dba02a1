"""The edges' weights around the strategy's aggregate: ``centered-clip`` first, then, with
edges at several depths, one aggregate per set of weights held by the same edges.

The fleet's edge weights go by one set of names (``hierfl.models.depths.fleet_name``): the
layers every edge has up to its cut are shared, an exit head and a bottleneck's encoder are
one depth's own. ``by_holders`` calls the strategy once per set of weights held by the same
edges, so the shared prefix is averaged by all, an exit only among the edges at its cut, and a
deeper edge's private layers are left to it. A strategy with server state (FedAdam, FedYogi,
FedAdagrad, FedAvgM) steps once over every name instead (``server_step``): its optimizer treats
the grouped mean as the round's average, as it would the plain mean with one cut.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable

from flwr.app import ArrayRecord, Message, MetricRecord, RecordDict
from flwr.serverapp.strategy import FedAvg, Strategy

from hierfl.app.protocol import ACTIVATIONS, ARRAYS, EVAL, METRICS
from hierfl.app.strategy import quiet_flower
from hierfl.boundary import EdgeState, RoundResult
from hierfl.cloud.robust import centered_clip

Reply = tuple[RoundResult, Message]


class Aggregation:
    """The round's aggregate of the usable replies (in partition order) over the dispatched
    weights: ``centered-clip``, then the strategy, once where every edge holds the same names,
    else once per set of holders (``by_holders``); a strategy with ``server_state`` steps once
    over the grouped mean (``server_step``). ``clipped``: the last aggregate's clipped replies,
    (partition, distance, radius)."""

    def __init__(self, strategy: Strategy, *, server_state: bool = False) -> None:
        self.strategy = strategy
        self.server_state = server_state
        self.clipped: list[tuple[int, float, float]] = []
        self._mean = FedAvg()  # the grouped mean under a strategy with server state

    def __call__(
        self, usable: list[Reply], dispatched: EdgeState, server_round: int, clip: float
    ) -> EdgeState | None:
        out = self._aggregate_all(usable, dispatched, server_round, clip)
        if out is None:
            return None
        # Flower's server optimizers compute in float64: the weights keep their own dtype (an
        # fp32 exchange would ship 8 bytes a value)
        return {k: v.to(dispatched[k].dtype) if k in dispatched else v for k, v in out.items()}

    def _aggregate_all(
        self, usable: list[Reply], dispatched: EdgeState, server_round: int, clip: float
    ) -> EdgeState | None:
        weights_only(usable)
        groups = shared_groups([r.edge_state for r, _ in usable])
        whole = len(groups) == 1 and set(groups[0][0]) == set(dispatched)
        if len(groups) == 1 and (whole or not self.server_state):
            self.clipped = clip_replies(usable, dispatched, clip)
            aggregated = self._aggregate(self.strategy, usable, server_round)
            # every edge's weights, or one depth's of several (a sampled round): the rest stays
            return None if aggregated is None else {**dispatched, **aggregated}
        self.clipped = []
        mean = self._mean if self.server_state else self.strategy
        grouped = by_holders(
            usable,
            dispatched,
            center=lambda peers: self.clipped.extend(clip_replies(peers, dispatched, clip)),
            aggregate=lambda group: self._aggregate(mean, group, server_round),
        )
        if grouped is None or not self.server_state:
            return grouped
        with quiet_flower():
            return server_step(self.strategy, server_round, grouped, usable[0][1])

    @staticmethod
    def _aggregate(strategy: Strategy, usable: list[Reply], server_round: int) -> EdgeState | None:
        with quiet_flower():
            arrays, _ = strategy.aggregate_train(server_round, [m for _, m in usable])
        return arrays.to_torch_state_dict() if arrays is not None else None


def weights_only(usable: list[Reply]) -> None:
    """Drop each reply's activations and evaluation: the strategy expects exactly one
    ArrayRecord, the edge weights."""
    for _, message in usable:
        for key in (ACTIVATIONS, EVAL):
            if key in message.content:
                del message.content[key]


def clip_replies(
    usable: list[Reply], dispatched: EdgeState, factor: float
) -> list[tuple[int, float, float]]:
    """``centered-clip``: an update beyond ``factor`` times the round's median distance from
    the median update is replaced by it, in the result and in the message the strategy reads.
    Returns (partition, distance, radius) of each clipped reply."""
    states, clipped = centered_clip([r.edge_state for r, _ in usable], dispatched, factor)
    out = []
    for c in clipped:
        result, message = usable[c.index]
        result.edge_state = states[c.index]
        message.content[ARRAYS] = ArrayRecord(states[c.index])
        out.append((result.partition_id, c.distance, c.radius))
    return out


def shared_groups(states: list[EdgeState]) -> list[tuple[tuple[str, ...], list[int]]]:
    """The replies' weights as sets of names, each with the replies that hold it: one set
    held by all where every edge has the same model; with edges at several depths the shared
    layers' sets and each depth's own."""
    holders: dict[str, list[int]] = {}
    for i, state in enumerate(states):
        for name in state:
            holders.setdefault(name, []).append(i)
    groups: dict[tuple[int, ...], list[str]] = {}
    for name, members in holders.items():
        groups.setdefault(tuple(members), []).append(name)
    return [(tuple(names), list(members)) for members, names in groups.items()]


def by_holders(
    usable: list[Reply],
    dispatched: EdgeState,
    *,
    center: Callable[[list[Reply]], None],
    aggregate: Callable[[list[Reply]], EdgeState | None],
) -> EdgeState | None:
    """``dispatched`` with each set of weights replaced by ``aggregate`` over the replies that
    hold it (None: one of them had no aggregate). ``center`` (``centered-clip``) sees each
    reply among the edges at its own depth: a shared layer moves differently under an exit
    right after it than under deeper layers."""
    out = dict(dispatched)
    depth = [frozenset(r.edge_state) for r, _ in usable]  # edges at one cut hold one set
    for names, members in shared_groups([r.edge_state for r, _ in usable]):
        group = [_only(usable[i], names) for i in members]
        peers: dict[frozenset[str], list[Reply]] = {}
        for item, i in zip(group, members, strict=True):
            peers.setdefault(depth[i], []).append(item)
        for same_depth in peers.values():
            center(same_depth)
        aggregated = aggregate(group)
        if aggregated is None:
            return None
        out.update(aggregated)
    return out


def _only(item: Reply, names: tuple[str, ...]) -> Reply:
    """A reply with only the weights ``names``: the message carries a content of its own with
    them (its other records as they were), the result a copy."""
    result, message = item
    state = {n: result.edge_state[n] for n in names}
    content = RecordDict({k: v for k, v in message.content.items() if k != ARRAYS})
    content[ARRAYS] = ArrayRecord(state)
    message.content = content
    return dataclasses.replace(result, edge_state=state), message


def server_step(
    strategy: Strategy, server_round: int, mean: EdgeState, carrier: Message
) -> EdgeState | None:
    """``strategy``'s server update over ``mean`` (every name: the grouped mean of the edges'
    weights, the dispatched weights where no edge trained them), shown as the round's one
    reply; ``carrier``: a reply of the round, its content replaced."""
    carrier.content = RecordDict(
        {ARRAYS: ArrayRecord(mean), METRICS: MetricRecord({"num-examples": 1})}
    )
    arrays, _ = strategy.aggregate_train(server_round, [carrier])
    return arrays.to_torch_state_dict() if arrays is not None else None
