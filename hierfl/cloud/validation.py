"""Checks on what arrives from an edge, before any of it touches the cloud model."""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass, field, replace

import torch

from hierfl.boundary import EdgeChunk, RoundRequest, RoundResult
from hierfl.codecs import COMPRESSIONS, raw_encoding
from hierfl.config import HierConfig
from hierfl.errors import ChunkRejected
from hierfl.models import SplitModel
from hierfl.models.depths import FleetModel, to_fleet
from hierfl.modes import Mode
from hierfl.registry import CONTINUAL
from hierfl.train.exchange import update_codec
from hierfl.train.schedule import passes_per_chunk, passes_per_round, round_share

Weights = Mapping[str, tuple[str, tuple[int, ...]]] | None


@dataclass(frozen=True)
class Expected:
    """What replies of a round may hold, from the cloud's own model and config: checked
    against each reply's schema before anything in it is decoded (``hierfl.app.reply_checks``)."""

    sample_shape: tuple[int, ...] | None  # per-sample activations (raw: the input); None: none
    encodings: frozenset[str]  # the encodings this run uses
    max_bytes: int  # tensors of one reply
    max_rows: int  # samples one reply (or one round's split steps) may ship
    clients: int
    weights: Weights = None  # name -> (dtype, shape)
    compress: frozenset[str] = field(default_factory=lambda: frozenset(COMPRESSIONS))
    max_trained: int | None = None  # samples an edge may claim to have trained on
    step_shape: tuple[int, ...] | None = None  # split mode: per-sample activations of a step
    weight_bound: float = 0.0  # largest |weight| an edge may return (0: no bound)
    max_update_norm: float = 0.0  # an edge's update is clipped to this L2 norm (0: off)
    centered_clip: float = 0.0  # updates clipped to this many median distances (0: off)
    coded_updates: bool = False  # weights travel as coded updates, eval copies beside them
    # edges at several depths (``per-edge``): each partition's cut, and per cut the shipped
    # per-sample shape and the fleet-named weights (``hierfl.models.depths``)
    depth_of: tuple[str, ...] = ()
    depths: Mapping[str, tuple[tuple[int, ...] | None, Weights]] = field(default_factory=dict)

    def for_partition(self, partition: int) -> Expected:
        """What ``partition``'s reply may hold: its own depth's shapes and weights."""
        if not self.depth_of:
            return self
        shape, weights = self.depths[self.depth_of[partition]]
        return replace(self, sample_shape=shape, weights=weights)


def check_batch(
    a: torch.Tensor,
    y: torch.Tensor,
    *,
    sample_shape: tuple[int, ...] | None,
    num_classes: int,
) -> None:
    """Tensors from an edge: int64 labels in range, float32 finite ``[n, *sample_shape]``."""
    if y.dtype != torch.int64 or y.dim() != 1:
        raise ChunkRejected(f"labels must be int64 [n], got {y.dtype} {tuple(y.shape)}")
    if len(y) and sample_shape is not None and tuple(a.shape) != (len(y), *sample_shape):
        expected = (len(y), *sample_shape)
        raise ChunkRejected(f"activations shape {tuple(a.shape)}, expected {expected}")
    if a.dtype != torch.float32:
        raise ChunkRejected(f"activations must be float32, got {a.dtype}")
    if len(y) and not bool(torch.isfinite(a).all()):
        raise ChunkRejected("activations contain NaN or Inf")
    if len(y) and (int(y.min()) < 0 or int(y.max()) >= num_classes):
        raise ChunkRejected(f"labels out of range [0, {num_classes})")


def validate_result(
    result: RoundResult,
    *,
    request: RoundRequest,
    activation_shape: tuple[int, ...] | None,
    num_classes: int,
    max_bytes: int,
    passes: int = 1,
) -> None:
    """Raise ``ChunkRejected`` with the reason if ``result``'s chunk must not be used.

    ``passes``: local epochs one shipped sample stands for (``ship=last-epoch``). The edge
    weights were checked when the reply arrived (``check_reply``: names, dtypes and shapes;
    ``GridFederation._bound_weights``: finite and within ``weight-bound``), before they could
    be relayed or aggregated.
    """
    if (result.experience, result.round) != (request.experience, request.round):
        raise ChunkRejected(
            f"reply for experience {result.experience} round {result.round}, "
            f"expected {request.experience}/{request.round}"
        )
    chunk = result.chunk
    a, y = chunk.activations, chunk.labels
    if activation_shape is None:  # split and edge modes ship no tensors with the weights
        if len(y) or a.numel():
            raise ChunkRejected("this mode ships no activations, but the reply carries some")
    elif chunk.backlog < 0 or not _counts_agree(chunk, passes):
        raise ChunkRejected(
            f"trained on {chunk.trained} samples plus {chunk.backlog} from the backlog "
            f"but shipped {len(y)}"
        )
    if chunk.nbytes > max_bytes:
        raise ChunkRejected(f"chunk of {chunk.nbytes} bytes exceeds the bound of {max_bytes}")
    check_batch(a, y, sample_shape=activation_shape, num_classes=num_classes)


def _counts_agree(chunk: EdgeChunk, passes: int) -> bool:
    """Samples trained against samples shipped: equal, or ``passes`` times as many when an
    edge ships only its last epoch (a truncated last epoch ships fewer)."""
    shipped = chunk.num_examples - chunk.backlog
    if chunk.trained == 0 or chunk.trained == shipped * passes:
        return True
    return passes > 1 and chunk.truncated and chunk.trained > shipped


def _weight_shapes(model: SplitModel, mode: Mode) -> dict[str, tuple[str, tuple]] | None:
    """The edge weights a reply must hold (dtype and shape by name): the edge segment's where
    edges are aggregated, none in ``cloud`` mode, anything (None) otherwise."""
    if mode.aggregate_edges:
        return {
            name: (str(t.detach().cpu().numpy().dtype), tuple(t.shape))
            for name, t in model.edge.state_dict().items()
        }
    return {} if mode.payload == "raw" else None


def _row_bounds(config: HierConfig, size: int, request: RoundRequest) -> tuple[int, int]:
    """The rows a reply may ship and the samples it may say it trained on, for an experience
    of ``size`` samples (0: unknown, the byte bound alone decides)."""
    if not size:
        return config.max_chunk_bytes, config.max_chunk_bytes
    fair = min(1.0, 2.0 / config.clients) if config.partition == "iid" else 1.0
    share = round_share(config, math.ceil(size * fair))
    if config.online and config.clients_per_round:  # an edge catches up on rounds missed
        share *= request.round + 1
    replay = 2 if any("edge" in CONTINUAL.plugin(n).sides for n in config.methods) else 1
    backlog = 2 if config.link_down else 1
    epochs = passes_per_round(config)
    max_rows = share * (epochs // passes_per_chunk(config)) * replay * backlog
    return max_rows, share * epochs * replay * backlog


def expected_replies(
    config: HierConfig, model: SplitModel, mode: Mode, sizes: tuple[int, ...], request: RoundRequest
) -> Expected:
    """What the replies to ``request`` may hold in this run.

    An edge may ship at most its fair share of the experience: twice an even share with an IID
    partition, the whole experience with any other (a Dirichlet share of one edge among many
    can be ten times the mean); unknown sizes: the byte bound alone. Online, a round's slice
    of it (with ``clients-per-round`` the slices of every round so far: an edge that sat out
    catches up); once per shipped pass, doubled where an edge-side method mixes replayed
    samples in and where an outage's backlog may ride along.
    """
    raw = mode.payload == "raw"
    encoding = raw_encoding(config.raw_codec) if raw else config.wire_codec
    size = sizes[request.experience] if request.experience < len(sizes) else 0
    max_rows, max_trained = _row_bounds(config, size, request)
    split_steps = mode.edge_learns_from == "cloud"
    return Expected(
        sample_shape=mode.payload_shape(model),
        encodings=frozenset({encoding}),
        max_bytes=config.max_chunk_bytes,
        max_rows=max_rows,
        clients=config.clients,
        weights=_weight_shapes(model, mode),
        compress=frozenset({config.compress}),
        max_trained=max_trained,
        step_shape=model.activation_shape() if split_steps else None,
        weight_bound=config.weight_bound,
        max_update_norm=config.max_update_norm,
        centered_clip=config.centered_clip,
        coded_updates=update_codec(config) is not None,
        **_depths(config, model, mode),
    )


def _depths(config: HierConfig, model: SplitModel, mode: Mode) -> dict:
    """``Expected``'s per-depth fields for a fleet's model (none for one cut)."""
    if not isinstance(model, FleetModel):
        return {}
    depths = {}
    for cut in model.cuts:
        at = model.depth(cut)
        weights = _weight_shapes(at, mode)
        named = to_fleet(weights, cut, coded=model.coded) if weights is not None else None
        depths[cut] = (mode.payload_shape(at), named)
    return {
        "depth_of": config.edge_cuts,
        "depths": depths,
    }
