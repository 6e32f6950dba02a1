"""The edge's side of a compressed weight exchange (``hierfl.train.exchange`` has the rules).

Before a round the edge applies what the request carries to the base it holds and trains from
``base + residual`` with its own buffers; after the round it sends the top-k coded change since
the base and keeps the rest as its residual. What it holds between rounds is written to its
node-local state folder beside the round's other state (``exchange-EEEEE-RRRRR.pt``), so a
fresh process per message, or a restart, continues from it.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from hierfl.boundary import EdgeState, RoundRequest
from hierfl.codecs.updates import EncodedTensor, UpdateCodec, decode_update, encode_tensor
from hierfl.edge.state import save_edge_state, state_before
from hierfl.errors import ChunkRejected
from hierfl.train.exchange import WeightsDown, add, checksum

PREFIX = "exchange"


@dataclass
class Held:
    """What an edge holds between exchanges."""

    version: int  # of the base
    base: EdgeState  # the averaged parameters as the cloud last sent them
    local: EdgeState  # the edge's whole state after its last round (its buffers, own tensors)
    residual: EdgeState  # per averaged parameter: what its updates have not sent yet

    def state(self) -> EdgeState:
        """The weights to train from: the base plus the residual, the rest the edge's own."""
        out = {k: v.clone() for k, v in self.local.items()}
        out.update(add(self.base, self.residual))
        return out

    def as_record(self) -> dict[str, Any]:
        return {"version": self.version, **{k: getattr(self, k) for k in _TENSORS}}


_TENSORS = ("base", "local", "residual")


def load_held(state_dir: Path, request: RoundRequest) -> Held | None:
    """What the edge held before ``request``'s round (None: it never received weights)."""
    record = state_before(state_dir, request, PREFIX)
    if record is None:
        return None
    return Held(int(record["version"]), *(dict(record[k]) for k in _TENSORS))


def _first(state: EdgeState, version: int, names: tuple[str, ...]) -> Held:
    """An edge's first weights: all its own to begin with, nothing left to send."""
    base = {n: state[n].detach().float().clone() for n in names}
    local = {k: v.detach().clone() for k, v in state.items()}
    return Held(version, base, local, {n: torch.zeros_like(base[n]) for n in names})


def apply_down(
    down: WeightsDown,
    held: Held | None,
    names: tuple[str, ...],
    shapes: dict,
    codec: UpdateCodec,
    initial: Callable[[], EdgeState],
) -> Held:
    """The held state with the request's weights applied. An edge that holds nothing yet
    builds version 0, the run's initial weights, from the seed (``initial``); the checksum in
    its reply tells the cloud whether it got the same bits.

    Raises:
        ChunkRejected: a change for a base this edge does not hold (it is out of step; the
            cloud sends a full copy next round).
    """
    if down.kind == "full":
        assert down.full is not None
        if held is None:
            return _first(down.full, down.version, names)
        base = {n: down.full[n].detach().float().clone() for n in names}
        return Held(down.version, base, held.local, held.residual)
    if held is None:
        held = _first(initial(), 0, names)
    if held.version != down.since:
        raise ChunkRejected(
            f"out of step: holds version {held.version}, the request needs version {down.since}"
        )
    base = held.base
    for delta in down.deltas:  # the changes it missed, oldest first, as the cloud applied them
        base = {**base, **add(base, decode_update(delta, {n: shapes[n] for n in names}, codec))}
    return Held(down.version, base, held.local, held.residual)


def take_update(
    held: Held, trained: EdgeState, names: tuple[str, ...], codec: UpdateCodec, *, send: bool
) -> tuple[dict[str, EncodedTensor] | None, Held]:
    """The coded change ``trained - base`` (None when this round sends none) and what the edge
    holds afterwards: the same base, its trained state, the unsent part as residual."""
    encoded: dict[str, EncodedTensor] | None = {} if send else None
    residual = {}
    for name in names:
        change = trained[name].detach().float().cpu() - held.base[name]
        if not torch.isfinite(change).all():
            raise ChunkRejected(
                f"{name}: the trained weights are not finite (training diverged; lower edge-lr); "
                "nothing is sent and the edge keeps the weights it held"
            )
        if encoded is not None:
            encoded[name] = encode_tensor(change, codec)
            sent = decode_update({name: encoded[name]}, {name: tuple(change.shape)}, codec)
            change = change - sent[name]
        residual[name] = change
    local = {k: v.detach().cpu().clone() for k, v in trained.items()}
    return encoded, Held(held.version, held.base, local, residual)


def save_held(state_dir: Path, request: RoundRequest, held: Held, keep: int) -> None:
    save_edge_state(state_dir, request, held.as_record(), keep, PREFIX)


def held_checksum(held: Held, names: tuple[str, ...]) -> str:
    return checksum(held.base, names)
