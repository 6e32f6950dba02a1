"""The cloud's side of a compressed weight exchange (``hierfl.train.exchange`` has the rules).

The cloud keeps the base every in-step edge holds and, per edge, the version its last good
reply said it holds. Each round it sends an in-step edge the change of the aggregate since the
base (top-k coded; what is not sent stays in the aggregate's lead over the base), anyone else
a full copy of the base, and it rebuilds each reply's full weights, ``aggregate + update``, for
the configured strategy: FedAvg, FedMedian, Krum and the robust aggregators see full weights as
they do with ``weight-codec=fp32``.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Callable, Hashable, Mapping
from typing import Any

import torch

from hierfl.boundary import EdgeState, RoundRequest
from hierfl.codecs.updates import EncodedTensor, UpdateCodec, decode_update, encode_update
from hierfl.config import HierConfig
from hierfl.errors import ChunkRejected
from hierfl.models import SplitModel
from hierfl.models.depths import FleetModel, fleet_name
from hierfl.modes import Mode
from hierfl.train.exchange import (
    WeightsDown,
    add,
    averaged_names,
    checksum,
    exchanged_params,
    exchanges_weights,
    kept_changes,
    update_codec,
)


class WeightExchange:
    """The base, its version and checksum, and which edge holds which version."""

    def __init__(
        self,
        codec: UpdateCodec,
        names: tuple[str, ...],
        shapes: Mapping[str, tuple[int, ...]],
        config: HierConfig | None = None,
        keep: int = 2,
        down: UpdateCodec | None = None,
        keys: tuple[str, ...] | None = None,
    ) -> None:
        """``codec``: the edges' updates'; ``down``: the cloud's changes' (None: ``codec``);
        ``config``: the run's (its schedule says which rounds exchange weights and which
        ask for eval copies; None: every round exchanges, none asks); ``keep``: how many of its
        last changes it keeps for edges that missed some (``kept_changes``); ``keys``: the
        state keys its edges hold, where the aggregate holds more (one depth of a fleet; None:
        all of them)."""
        self.codec, self.names, self.config, self.keys = codec, names, config, keys
        self.down_codec = down or codec
        self.shapes = {n: tuple(shapes[n]) for n in names}
        self.version = 0
        self.base: EdgeState = {}
        self.digest = ""
        # node -> version its last good reply held; a node not in it holds ``self.unseen``:
        # version 0, the initial weights every edge builds from the run's seed (after a resume,
        # or an edge's failure, -1: it gets a full copy)
        self.held: dict[Hashable, int] = {}
        self.unseen = 0
        # the last changes, oldest first; the newest takes the base to ``version``
        self._changes: deque[dict[str, EncodedTensor]] = deque(maxlen=keep)
        self._state: EdgeState = {}  # the aggregate the round's requests start from

    @classmethod
    def for_run(
        cls, config: HierConfig, model: SplitModel
    ) -> WeightExchange | FleetExchange | None:
        """The run's exchange; None where the full weights travel (``weight-codec=fp32``)."""
        if isinstance(model, FleetModel):
            return FleetExchange.for_run(config, model)
        return cls.for_edge(config, model)

    @classmethod
    def for_edge(
        cls, config: HierConfig, model: SplitModel, rename: Callable[[str], str] | None = None
    ) -> WeightExchange | None:
        """The exchange of edges with ``model``'s edge, under ``rename``'s names (one depth of
        a fleet: the fleet's names, and only that depth's keys of the aggregate)."""
        names = averaged_names(model.edge, config.averaged)
        params = exchanged_params(model.edge, names)
        codec = update_codec(config, params)
        if codec is None:
            return None
        name = rename or (lambda n: n)
        shapes = {name(n): tuple(p.shape) for n, p in model.edge.named_parameters()}
        down = update_codec(config, params, down=True)
        keys = tuple(name(k) for k in model.edge.state_dict()) if rename else None
        named = tuple(name(n) for n in names)
        return cls(codec, named, shapes, config, kept_changes(config), down, keys)

    # one edge's view (``FleetExchange`` gives each node its depth's)
    def names_for(self, node: Hashable) -> tuple[str, ...]:
        return self.names

    def shapes_for(self, node: Hashable) -> Mapping[str, tuple[int, ...]]:
        return self.shapes

    def codec_for(self, node: Hashable) -> UpdateCodec:
        return self.codec

    def sends_updates(self, request: RoundRequest) -> bool:
        """Whether ``request``'s replies carry updates (every ``sync-every``-th round)."""
        return self.config is None or exchanges_weights(self.config, request)

    def eval_copy(self, request: RoundRequest) -> bool:
        """Whether ``request``'s replies carry eval copies: at an experience's last round,
        where the cloud evaluates the models the edges hold."""
        return self.config is not None and request.round == self.config.rounds - 1

    def begin_round(self, state: EdgeState, *, send_change: bool) -> None:
        """Set up the round's requests from the aggregate ``state``: the first round makes it
        the base; after a round that exchanged weights the base takes the coded change."""
        self._state = state if self.keys is None else {k: state[k] for k in self.keys}
        if not self.base:
            self.base = {n: state[n].detach().float().cpu().clone() for n in self.names}
        elif send_change:
            change = {n: state[n].detach().float().cpu() - self.base[n] for n in self.names}
            delta = encode_update(change, self.down_codec)
            self.base = add(self.base, decode_update(delta, self.shapes, self.down_codec))
            self.version += 1
            self._changes.append(delta)
        self.digest = checksum(self.base, self.names)

    def down_for(self, node: Hashable) -> WeightsDown:
        """What ``node``'s request carries: nothing new, the changes it missed (while the
        cloud still keeps them and they are smaller than the weights), or a full copy."""
        held = self.held.get(node, self.unseen)
        missed = self.version - held
        if missed == 0:
            return WeightsDown("none", self.version)
        if held >= 0 and 0 < missed <= len(self._changes):
            deltas = tuple(list(self._changes)[-missed:])
            if sum(e.nbytes for d in deltas for e in d.values()) < self._full_bytes():
                return WeightsDown("delta", self.version, deltas=deltas)
        return WeightsDown("full", self.version, full=self.full_copy())

    def _full_bytes(self) -> int:
        return sum(t.numel() * 4 for t in self.base.values())

    def full_copy(self) -> EdgeState:
        """The base, with the aggregate's tensors that are not exchanged (buffers, and
        parameters ``averaged`` leaves out) as they stand."""
        return {**self._state, **self.base}

    def receive(
        self,
        node: Hashable,
        version: int,
        digest: str,
        encoded: Mapping[str, EncodedTensor] | None,
        *,
        expected: bool = True,
    ) -> EdgeState | None:
        """``node``'s full weights rebuilt from its update (None: the round sends none).

        Raises:
            ChunkRejected: the edge holds another base than the cloud's (it gets a full copy
                next round), its update is missing on a round that exchanges weights
                (``expected``) or present on one that does not, or it does not fit the model
                and codec.
        """
        if (version, digest) != (self.version, self.digest):
            self.forget(node)
            raise ChunkRejected(
                f"out of step: the edge holds weights version {version} ({digest}), the "
                f"cloud's is {self.version} ({self.digest}); it gets a full copy next round"
            )
        if (encoded is not None) != expected:
            raise ChunkRejected(
                "the reply carries no weight update on a round that exchanges weights"
                if expected
                else "the reply carries a weight update on a round without exchange (sync-every)"
            )
        self.held[node] = version
        if encoded is None:
            return None
        update = decode_update(encoded, self.shapes, self.codec)
        return {**self._state, **add(self._state, update)}

    def forget(self, node: Hashable) -> None:
        """``node`` may hold anything (it failed, or drifted): its next request is a full copy."""
        self.held[node] = -1

    def state_dict(self) -> dict[str, Any]:
        """The base and its version (a resumed cloud sends every edge a full copy)."""
        return {"version": self.version, "base": dict(self.base)}

    def load_state_dict(self, state: Mapping[str, Any]) -> None:
        self.version = int(state.get("version", 0))
        self.base = {n: torch.as_tensor(v) for n, v in dict(state.get("base", {})).items()}
        self.held, self.unseen = {}, -1
        self._changes.clear()  # not checkpointed: every edge gets a full copy first


class FleetExchange:
    """Edges at several depths: one ``WeightExchange`` per depth (its own base, version and
    codec, over the fleet's names of that depth's weights); each node's requests and replies
    go through its depth's. The shared layers are exchanged by every depth's, each against the
    aggregate: what one depth's codec leaves unsent stays in that depth's lead.

    ``partition_of`` (node -> partition, ``GridFederation`` fills it) and ``depth_of``
    (partition -> cut) find a node's depth.
    """

    def __init__(self, depths: Mapping[str, WeightExchange], depth_of: Callable[[int], str]):
        self.depths, self.depth_of = dict(depths), depth_of
        self.partition_of: Mapping[Any, int] = {}
        self.config = next(iter(self.depths.values())).config

    @classmethod
    def for_run(cls, config: HierConfig, model: FleetModel) -> FleetExchange | None:
        depths = {}
        for cut in model.cuts:
            exchange = WeightExchange.for_edge(
                config,
                model.depth(cut),
                lambda n, cut=cut: fleet_name(n, cut, coded=model.coded),  # type: ignore[misc]
            )
            if exchange is None:
                return None
            depths[cut] = exchange
        return cls(depths, config.edge_cut)

    def at(self, node: Hashable) -> WeightExchange:
        """``node``'s depth's exchange.

        Raises:
            ChunkRejected: the node's partition is not known yet (it has not replied and did
                not answer the partition query).
        """
        partition = self.partition_of.get(node)
        if partition is None:
            raise ChunkRejected(f"node {node}: its partition, so its cut, is not known yet")
        return self.depths[self.depth_of(partition)]

    def names_for(self, node: Hashable) -> tuple[str, ...]:
        return self.at(node).names

    def shapes_for(self, node: Hashable) -> Mapping[str, tuple[int, ...]]:
        return self.at(node).shapes

    def codec_for(self, node: Hashable) -> UpdateCodec:
        return self.at(node).codec

    def sends_updates(self, request: RoundRequest) -> bool:
        return next(iter(self.depths.values())).sends_updates(request)

    def eval_copy(self, request: RoundRequest) -> bool:
        return next(iter(self.depths.values())).eval_copy(request)

    def begin_round(self, state: EdgeState, *, send_change: bool) -> None:
        for exchange in self.depths.values():
            exchange.begin_round(state, send_change=send_change)

    def down_for(self, node: Hashable) -> WeightsDown:
        return self.at(node).down_for(node)

    def receive(
        self,
        node: Hashable,
        version: int,
        digest: str,
        encoded: Mapping[str, EncodedTensor] | None,
        *,
        expected: bool = True,
    ) -> EdgeState | None:
        return self.at(node).receive(node, version, digest, encoded, expected=expected)

    def forget(self, node: Hashable) -> None:
        for exchange in self.depths.values():
            exchange.forget(node)

    def state_dict(self) -> dict[str, Any]:
        return {cut: e.state_dict() for cut, e in self.depths.items()}

    def load_state_dict(self, state: Mapping[str, Any]) -> None:
        for cut, exchange in self.depths.items():
            exchange.load_state_dict(state.get(cut, {}))


def evaluated_edges(
    mode: Mode,
    exchange: WeightExchange | FleetExchange | None,
    edge_state: EdgeState,
    client_states: Mapping[int, EdgeState],
) -> list[EdgeState]:
    """The edge weights the overall accuracy is measured with: the aggregate; with a compressed
    exchange the models the edges hold (their eval copies: each edge keeps its residual and its
    own BatchNorm statistics), the accuracy averaged over them; none in cloud mode."""
    if not mode.aggregate_edges:
        return []
    if exchange is not None and client_states:
        return [dict(client_states[p]) for p in sorted(client_states)]
    return [edge_state]
