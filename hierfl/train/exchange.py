"""The weight exchange's shared rules: what travels, when, and how edge and cloud stay in step.

With ``weight-codec=fp32`` edges receive the aggregated weights every round and send their
trained weights back (Flower's FedAvg exchange). With a compressed codec (``topk``) the cloud
keeps a *base*, the averaged weights as every in-step edge holds them, bit for bit:

- an edge trains from ``base + residual`` (its own model: the base plus what its updates have
  not sent yet; buffers such as BatchNorm statistics and parameters that are not averaged
  stay its own) and sends the change ``trained - base``, top-k coded; what it did not send stays
  in its residual (error feedback, Karimireddy et al. 2019);
- the cloud rebuilds each edge's full weights as ``aggregate + update`` for the configured
  Flower strategy, and sends the change of the new aggregate since the base, coded the same way;
  the part it did not send stays in the aggregate's lead over the base (the cloud's own error
  feedback) and goes out with a later change;
- a ``version`` counts the changes; an edge that missed a few (it sat out rounds, or its reply
  failed) gets the changes it missed, one after another (``kept_changes``); one further behind,
  or that joined late or restarted, gets a full copy of the base; a checksum of the base it
  holds, sent with its reply, finds an edge out of step.

``sync-every=K`` exchanges weights every K rounds (codes flow every round); ``averaged`` names
which parameters are exchanged at all. With ``clients-per-round`` an edge is asked once a
sampling cycle, and its update sends a cycle's worth of entries (``update_codec``).
"""

from __future__ import annotations

import dataclasses
import hashlib
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Literal

import torch
from torch import nn

from hierfl.boundary import EdgeState, RoundRequest
from hierfl.codecs import auto_density
from hierfl.codecs.updates import EncodedTensor, UpdateCodec
from hierfl.config import HierConfig
from hierfl.modes import MODES
from hierfl.registry import WEIGHT_CODECS
from hierfl.train.schedule import run_round

DownKind = Literal["full", "delta", "none"]
EXIT_PREFIX = "exit."  # the exit head's parameters in an edge state (``EdgeModule.exit``)


@dataclass(frozen=True)
class WeightsDown:
    """What a request carries of the weights: a full copy of the base, the changes since the
    version the edge holds (one per version, oldest first: an edge that sat out rounds gets
    the ones it missed), or nothing (the edge holds this version already)."""

    kind: DownKind
    version: int
    full: EdgeState | None = None
    deltas: tuple[Mapping[str, EncodedTensor], ...] = ()

    @property
    def since(self) -> int:
        """The version the edge must hold to apply this."""
        return self.version - len(self.deltas) if self.kind == "delta" else self.version


def kept_changes(config: HierConfig) -> int:
    """How many of its last changes the cloud keeps for edges that missed some: two sampling
    cycles (``clients-per-round``), at least 2; an edge further behind gets a full copy."""
    return max(2, 2 * config.sampling_cycle)


def update_codec(config: HierConfig, params: int = 0, *, down: bool = False) -> UpdateCodec | None:
    """The run's weight-update codec for ``params`` exchanged parameters: of the edges' updates,
    or with ``down`` of the cloud's changes. ``weight-density=0`` resolves to ``auto_density``;
    with ``clients-per-round`` an edge's update sends a sampling cycle's worth (it is asked
    once a cycle), the cloud's change one round's (it sends one every round, and an edge that
    sat out gets the ones it missed). None where the full weights travel (``fp32``, and modes
    whose edges hold no weights of their own between rounds: split, cloud)."""
    mode = MODES[config.mode]
    if not mode.aggregate_edges or mode.sequential:
        return None
    if not config.weight_density:
        cycle = 1 if down else config.sampling_cycle
        config = dataclasses.replace(config, weight_density=auto_density(params, cycle))
    codec: UpdateCodec | None = WEIGHT_CODECS.plugin(config.weight_codec).make(config)
    return codec


def exchanged_params(edge: nn.Module, names: tuple[str, ...]) -> int:
    """How many parameters the exchange of ``names`` moves."""
    wanted = set(names)
    return sum(p.numel() for n, p in edge.named_parameters() if n in wanted)


def averaged_names(edge: nn.Module, averaged: str) -> tuple[str, ...]:
    """The edge parameters exchanged under ``averaged``, in the module's order. Buffers
    (BatchNorm statistics) are never exchanged in compressed form: each edge keeps its own,
    which match its own weights."""
    names = [name for name, _ in edge.named_parameters()]
    keep = {
        "all": lambda n: True,
        "segment": lambda n: not n.startswith(EXIT_PREFIX),
        "exit": lambda n: n.startswith(EXIT_PREFIX),
        "none": lambda n: False,
    }[averaged]
    return tuple(n for n in names if keep(n))


def exchanges_weights(config: HierConfig, request: RoundRequest) -> bool:
    """Whether ``request``'s replies carry weight updates: every ``sync-every``-th round."""
    return run_round(config, request) % config.sync_every == 0


def checksum(weights: Mapping[str, torch.Tensor], names: tuple[str, ...]) -> str:
    """A short digest of ``names``' tensors: equal on both sides only when bit-identical."""
    digest = hashlib.blake2b(digest_size=8)
    for name in names:
        digest.update(name.encode())
        digest.update(weights[name].detach().cpu().contiguous().numpy().tobytes())
    return digest.hexdigest()


def add(base: Mapping[str, torch.Tensor], change: Mapping[str, torch.Tensor]) -> EdgeState:
    """``base + change`` for every tensor of ``change``, in float32 on the CPU: the same
    operation on both sides, so that both get the same bits."""
    return {n: base[n].detach().float().cpu() + change[n] for n in change}
