"""One edge device's work for one round, in pure torch: what the edge handler runs per message.

``hierarchical`` trains the segment and exit and ships the activations, ``edge`` trains and
ships nothing, ``cloud`` trains nothing and uploads the experience's raw inputs once, in its
first round (the only mode that uploads raw inputs). ``split`` rounds run in
``hierfl.edge.split``. The optimizer state and stream cursor live in the node-local state
folder (``hierfl.edge.state``), so a fresh process per message continues where the last one
stopped.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import torch

from hierfl.boundary import EdgeChunk, EdgeState, RoundRequest, RoundResult
from hierfl.codecs.images import stored_bytes
from hierfl.config import HierConfig
from hierfl.data.containers import ClientStream
from hierfl.edge.backlog import through_uplink
from hierfl.edge.link import slow_down
from hierfl.edge.state import EdgeRecord, save_edge_state, state_before
from hierfl.edge.trainer import EdgeTrainer, raw_chunk
from hierfl.models import SplitModel, model_for
from hierfl.models.depths import from_fleet, to_fleet
from hierfl.modes import MODES
from hierfl.train.continual import Continual, build_continual
from hierfl.train.devices import resolve_device
from hierfl.train.masking import SeenClasses
from hierfl.train.norms import recalibrate
from hierfl.train.privacy import privacy_of
from hierfl.train.schedule import (
    Batches,
    batches_of,
    experience_of,
    first_sight,
    first_untrained,
    passes_per_round,
    round_data,
    seed_for,
    ship_from,
)


@dataclass
class _RoundBatches:
    batches: Batches  # what the edge trains on, replayed samples mixed in
    new_x: torch.Tensor | None  # samples new to the edge this round (None: none)


def edge_model(config: HierConfig, stream: ClientStream, edge_state: EdgeState) -> SplitModel:
    """The run's model with the edge weights the cloud sent (none: the initial ones). Edges
    at several depths (``per-edge``) take their own from the fleet's (``hierfl.models.depths``)."""
    model = model_for(config, stream.num_classes, stream.input_shape)
    if edge_state and config.fleet_cuts:
        names = model.edge.state_dict()
        edge_state = from_fleet(edge_state, names, model.cut, coded=model.bottleneck is not None)
    if edge_state:
        model.edge.load_state_dict(edge_state)
    return model


def to_cloud(config: HierConfig, model: SplitModel) -> EdgeState:
    """The edge's weights as it sends them: fleet-named where edges cut at several depths."""
    state = model.edge_state()
    if not config.fleet_cuts:
        return state
    return to_fleet(state, model.cut, coded=model.bottleneck is not None)


def run_edge_round(
    config: HierConfig,
    request: RoundRequest,
    edge_state: EdgeState,
    stream: ClientStream,
    state_dir: Path,
    *,
    proximal_mu: float = 0.0,
    recalibrate_norms: bool = False,
) -> RoundResult:
    """Load the aggregated edge weights, train this round's batches, ship a chunk.

    ``recalibrate_norms``: the edge keeps its BatchNorm statistics (a compressed weight
    exchange); after training they are recomputed from the round's last pass
    (``hierfl.train.norms``)."""
    state_dir = Path(state_dir)
    mode = MODES[config.mode]
    saved = state_before(state_dir, request)
    since = first_untrained(saved["cursor"] if saved else None, request)
    if mode.payload == "raw":
        return _raw_round(config, request, edge_state, stream, state_dir, since)
    model = edge_model(config, stream, edge_state)
    seen = SeenClasses(
        stream.num_classes,
        saved.get("seen", []) if saved else [],
        enabled=config.class_mask == "seen",
    )
    trainer = _trainer(config, request, stream, model, seen, proximal_mu)
    continual = build_continual(config)
    if saved is not None:
        trainer.optimizer.load_state_dict(saved["optimizer"])
        continual.load_edge_state(saved.get("continual", {}))
    batches = _batches(config, request, stream, continual, since)
    chunk = _train(config, request, model, trainer, continual, batches)
    if recalibrate_norms and not trainer.frozen:
        last_pass = -(-len(batches.batches) // passes_per_round(config))
        recalibrate(model.edge, batches.batches[-last_pass:], trainer.device)
    state = {
        "optimizer": trainer.optimizer.state_dict(),
        "cursor": _cursor(request, saved, chunk),
        "continual": continual.edge_state(),
        "seen": seen.classes(),
    }
    save_edge_state(state_dir, request, state, keep=config.rounds + 2)
    if mode.payload == "activations":
        chunk = through_uplink(config, request, stream.partition_id, state_dir, chunk)
    weights = to_cloud(config, model)
    return RoundResult(stream.partition_id, request.experience, request.round, weights, chunk)


def _raw_round(
    config: HierConfig,
    request: RoundRequest,
    edge_state: EdgeState,
    stream: ClientStream,
    state_dir: Path,
    since: int,
) -> RoundResult:
    """Cloud mode: upload the experience once, in the first round the edge is asked in it;
    the cloud keeps and reuses it."""
    exp = experience_of(stream, request)
    once = [(exp.x, exp.y)] if since == 0 else []
    chunk = raw_chunk(once, max_bytes=config.max_chunk_bytes)
    cursor = {"experience": request.experience, "round": request.round, "samples_seen": 0}
    save_edge_state(state_dir, request, {"cursor": cursor}, keep=config.rounds + 2)
    return RoundResult(
        stream.partition_id, request.experience, request.round, dict(edge_state), chunk
    )


def _trainer(
    config: HierConfig,
    request: RoundRequest,
    stream: ClientStream,
    model: SplitModel,
    seen: SeenClasses,
    proximal_mu: float,
) -> EdgeTrainer:
    return EdgeTrainer(
        model.edge,
        optimizer=config.optimizer,
        lr=config.edge_lr,
        momentum=config.momentum,
        proximal_mu=proximal_mu,
        device=resolve_device("edge-device", config.edge_device),
        freeze_segment=0 <= config.freeze_edge_after < request.experience,
        seen=seen,
        privacy=privacy_of(config),
        generator=torch.Generator().manual_seed(
            seed_for(config, stream.partition_id, request.experience, request.round, 7)
        ),
    )


def _batches(
    config: HierConfig,
    request: RoundRequest,
    stream: ClientStream,
    continual: Continual,
    since: int,
) -> _RoundBatches:
    """The round's batches, with the continual method's say: the samples since the last
    round the edge trained (``since``, ``first_untrained``)."""
    new_x, new_y = round_data(config, stream, request, since)
    batches = batches_of(config, stream, request, new_x, new_y)
    first = first_sight(config, request, since)
    if first:
        continual.edge_observe(new_x, new_y, experience=request.experience)
    return _RoundBatches(
        continual.edge_batches(batches, experience=request.experience),
        new_x if first else None,
    )


def _train(
    config: HierConfig,
    request: RoundRequest,
    model: SplitModel,
    trainer: EdgeTrainer,
    continual: Continual,
    batches: _RoundBatches,
) -> EdgeChunk:
    """Train the round's batches into a chunk."""
    continual.edge_begin_round(model.edge, experience=request.experience)
    chunk = trainer.train_chunk(
        batches.batches,
        max_bytes=config.max_chunk_bytes,
        ship=MODES[config.mode].payload == "activations",
        ship_from=ship_from(config, len(batches.batches)),
        extra_loss=lambda x, out, y: continual.edge_loss(x, out, y, experience=request.experience),
    )
    if batches.new_x is not None:  # the baseline: these samples uploaded as stored
        chunk.cloud_only_uint8, chunk.cloud_only_png = stored_bytes(batches.new_x)
    # ``edge-slowdown``: a weaker edge takes k times as long; the reply leaves that much later.
    chunk.compute_s += slow_down(chunk.compute_s, config.edge_slowdown)
    return chunk


def _cursor(request: RoundRequest, saved: EdgeRecord | None, chunk: EdgeChunk) -> dict[str, int]:
    samples_seen = (saved["cursor"]["samples_seen"] if saved else 0) + chunk.trained
    return {"experience": request.experience, "round": request.round, "samples_seen": samples_seen}
