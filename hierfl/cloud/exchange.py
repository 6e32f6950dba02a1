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
from collections.abc import Hashable, Mapping
from typing import Any

import torch

from hierfl.boundary import EdgeState, RoundRequest
from hierfl.codecs.updates import EncodedTensor, UpdateCodec, decode_update, encode_update
from hierfl.config import HierConfig
from hierfl.errors import ChunkRejected
from hierfl.models import SplitModel
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
    ) -> None:
        """``codec``: the edges' updates'; ``down``: the cloud's changes' (None: ``codec``);
        ``config``: the run's (its schedule says which rounds exchange weights and which
        ask for eval copies; None: every round exchanges, none asks); ``keep``: how many of its
        last changes it keeps for edges that missed some (``kept_changes``)."""
        self.codec, self.names, self.config = codec, names, config
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
    def for_run(cls, config: HierConfig, model: SplitModel) -> WeightExchange | None:
        """The run's exchange; None where the full weights travel (``weight-codec=fp32``)."""
        names = averaged_names(model.edge, config.averaged)
        params = exchanged_params(model.edge, names)
        codec = update_codec(config, params)
        if codec is None:
            return None
        shapes = {n: tuple(p.shape) for n, p in model.edge.named_parameters()}
        down = update_codec(config, params, down=True)
        return cls(codec, names, shapes, config, kept_changes(config), down)

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
        self._state = state
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


def evaluated_edges(
    mode: Mode,
    exchange: WeightExchange | None,
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
