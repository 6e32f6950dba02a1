"""One edge device's work for one round, in pure torch: what the ClientApp runs per message."""

from __future__ import annotations

import dataclasses
from dataclasses import astuple, dataclass
from pathlib import Path

import torch

from hierfl.backlog import Backlog
from hierfl.config import HierConfig
from hierfl.continual import build_continual
from hierfl.data import ClientStream, ExperienceData
from hierfl.devices import resolve_device
from hierfl.edge import EdgeChunk, EdgeTrainer, epoch_batches, raw_chunk
from hierfl.errors import UplinkDown
from hierfl.link import slow_down
from hierfl.masking import SeenClasses
from hierfl.models import SplitModel, model_for
from hierfl.modes import MODES
from hierfl.privacy import ActivationPrivacy
from hierfl.storage import save_atomic


@dataclass(frozen=True)
class RoundRequest:
    """What the cloud asks of every edge in one round."""

    experience: int
    round: int


@dataclass
class RoundResult:
    """One edge's answer: its locally trained edge weights and the chunk it ships."""

    partition_id: int
    experience: int
    round: int
    edge_state: dict[str, torch.Tensor]
    chunk: EdgeChunk
    clipped_from: float = 0.0  # the update's norm before the cloud clipped it (0: not clipped)


def _seed(config: HierConfig, *parts: int) -> int:
    value = config.seed
    for p in parts:
        value = (value * 1_000_003 + p + 1) % (2**62)
    return value


def experience_of(stream: ClientStream, request: RoundRequest) -> ExperienceData:
    if not 0 <= request.experience < len(stream.experiences):
        raise ValueError(
            f"experience {request.experience} out of range (stream has {len(stream.experiences)})"
        )
    return stream.experiences[request.experience]


def round_batches(
    config: HierConfig, stream: ClientStream, request: RoundRequest
) -> list[tuple[torch.Tensor, torch.Tensor]]:
    """This round's mini-batches, the same on every call.

    Normally ``local_epochs`` shuffled passes over the experience. Online, each sample is seen
    once: the experience is shuffled once and round r takes the r-th of ``rounds`` slices.
    """
    return batches_of(config, stream, request, *round_data(config, stream, request))


def batches_of(
    config: HierConfig,
    stream: ClientStream,
    request: RoundRequest,
    x: torch.Tensor,
    y: torch.Tensor,
) -> list[tuple[torch.Tensor, torch.Tensor]]:
    """``round_data``'s samples cut into this round's shuffled mini-batches."""
    gen = torch.Generator().manual_seed(
        _seed(config, stream.partition_id, request.experience, request.round)
    )
    epochs = config.online_passes if config.online else config.local_epochs
    return list(epoch_batches(x, y, batch_size=config.batch_size, epochs=epochs, generator=gen))


def round_data(
    config: HierConfig, stream: ClientStream, request: RoundRequest
) -> tuple[torch.Tensor, torch.Tensor]:
    """The samples this round trains on (all of the experience, or the online slice)."""
    exp = experience_of(stream, request)
    if not config.online:
        return exp.x, exp.y
    gen = torch.Generator().manual_seed(_seed(config, stream.partition_id, request.experience))
    order = torch.randperm(len(exp), generator=gen)
    part = torch.tensor_split(order, config.rounds)[request.round]
    return exp.x[part], exp.y[part]


def passes_per_chunk(config: HierConfig) -> int:
    """How many passes the activations of one chunk stand for: ``local-epochs`` when an edge
    ships only its last epoch (``ship=last-epoch``); online, ``online-passes`` (a sample leaves
    once, after the last pass over it); else 1 (every pass is shipped)."""
    if config.online:  # each sample leaves once, after the last pass over it
        return config.online_passes
    return config.local_epochs if config.ship == "last-epoch" else 1


def privacy_of(config: HierConfig) -> ActivationPrivacy:
    return ActivationPrivacy(config.act_clip, config.act_noise)


def edge_model(config: HierConfig, stream: ClientStream, edge_state: dict) -> SplitModel:
    model = model_for(config, stream.num_classes, stream.input_shape)
    if edge_state:
        model.edge.load_state_dict(edge_state)
    return model


def _through_uplink(
    config: HierConfig,
    request: RoundRequest,
    stream: ClientStream,
    state_dir: Path,
    chunk: EdgeChunk,
) -> EdgeChunk:
    """Keep the chunk in the backlog while the uplink is down; add the backlog once it is up.

    Raises:
        UplinkDown: in a round of a ``link-down`` span (after training and saving the state),
            the way a real edge's reply would fail to leave it.
    """
    pid = stream.partition_id
    run_round = request.experience * config.rounds + request.round + 1
    generator = torch.Generator().manual_seed(
        _seed(config, pid, request.experience, request.round, 11)
    )
    backlog = Backlog.load(state_dir)
    if run_round in config.link_outages.get(pid, set()):
        backlog.add(chunk.activations, chunk.labels)
        backlog.trim(config.backlog_bytes, generator)
        backlog.save(state_dir)
        raise UplinkDown(
            f"uplink down in round {run_round}: {chunk.num_examples} samples kept in the backlog "
            f"({len(backlog)} waiting, {backlog.dropped} dropped to fit backlog-mb)"
        )
    if not len(backlog) and not backlog.dropped:
        return chunk
    a, y, dropped = backlog.take(config.max_chunk_bytes - chunk.nbytes, generator)
    backlog.save(state_dir)  # now empty: the file goes
    if a is None or not len(y):
        return dataclasses.replace(chunk, backlog_dropped=dropped)
    return dataclasses.replace(
        chunk,
        activations=torch.cat([chunk.activations if len(chunk.labels) else a[:0], a]),
        labels=torch.cat([chunk.labels, y]),
        backlog=len(y),
        backlog_dropped=dropped,
    )


def _state_file(state_dir: Path, experience: int, round: int) -> Path:
    return state_dir / f"edge_state-{experience:05d}-{round:05d}.pt"


def saved_states(state_dir: Path) -> list[tuple[tuple[int, int], Path]]:
    """The node-local states this edge kept, by the (experience, round) that wrote them."""
    found = []
    for path in Path(state_dir).glob("edge_state-*-*.pt"):
        _, experience, round = path.stem.split("-")
        found.append(((int(experience), int(round)), path))
    return sorted(found)


def latest_edge_state(state_dir: Path) -> dict | None:
    """The state the edge's last round left (optimizer, cursor, continual state, classes)."""
    states = saved_states(state_dir)
    return torch.load(states[-1][1], weights_only=True) if states else None


def _edge_state(state_dir: Path, request: RoundRequest) -> dict | None:
    """The state to start ``request``'s round from: the newest one written by an earlier round.

    Normally that is the last state. When the cloud restarts from a checkpoint older than the
    rounds this edge has trained since, it asks for those rounds again; the edge then starts
    from the state before them, so a resumed run computes exactly what an uninterrupted one
    does. States of the last ``rounds + 2`` rounds are kept (a checkpoint is at most one
    experience old).
    """
    earlier = [path for key, path in saved_states(state_dir) if key < astuple(request)]
    return torch.load(earlier[-1], weights_only=True) if earlier else None


def _save_edge_state(state_dir: Path, request: RoundRequest, state: dict, keep: int) -> None:
    save_atomic(state, _state_file(state_dir, request.experience, request.round))
    for _, path in saved_states(state_dir)[:-keep]:
        path.unlink(missing_ok=True)


def run_edge_round(
    config: HierConfig,
    request: RoundRequest,
    edge_state: dict[str, torch.Tensor],
    stream: ClientStream,
    state_dir: Path,
    *,
    proximal_mu: float = 0.0,
) -> RoundResult:
    """Load the aggregated edge weights, train ``local_epochs`` on this experience, ship a chunk.

    ``hierarchical`` ships the activations, ``edge`` ships nothing, ``cloud`` trains nothing
    and uploads the experience's raw inputs once, in its first round (the only mode that
    uploads raw inputs). The optimizer state and stream
    cursor live in ``state_dir`` (node-local, written atomically), so a fresh process per
    message continues where the last one stopped. ``split`` rounds run in ``hierfl.split``.
    """
    mode = MODES[config.mode]
    if mode.payload == "raw":  # upload the experience once; the cloud keeps and reuses it
        exp = experience_of(stream, request)
        once = [(exp.x, exp.y)] if request.round == 0 else []
        chunk = raw_chunk(once, max_bytes=config.max_chunk_bytes)
        return RoundResult(
            stream.partition_id, request.experience, request.round, dict(edge_state), chunk
        )
    new_x, new_y = round_data(config, stream, request)
    batches = batches_of(config, stream, request, new_x, new_y)
    model = edge_model(config, stream, edge_state)
    saved = _edge_state(Path(state_dir), request)
    seen = SeenClasses(
        stream.num_classes,
        saved.get("seen", []) if saved else [],
        enabled=config.class_mask == "seen",
    )
    trainer = EdgeTrainer(
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
            _seed(config, stream.partition_id, request.experience, request.round, 7)
        ),
    )
    continual = build_continual(config)
    if saved is not None:
        trainer.optimizer.load_state_dict(saved["optimizer"])
        continual.load_edge_state(saved.get("continual", {}))
    if config.online or request.round == 0:  # first sight of these samples
        continual.edge_observe(new_x, new_y, experience=request.experience)
    batches = continual.edge_batches(batches, experience=request.experience)
    continual.edge_begin_round(model.edge, experience=request.experience)
    chunk = trainer.train_chunk(
        batches,
        max_bytes=config.max_chunk_bytes,
        ship=mode.payload == "activations",
        ship_from=len(batches) - len(batches) // passes_per_chunk(config),
        extra_loss=lambda x, out, y: continual.edge_loss(x, out, y, experience=request.experience),
    )
    # ``edge-slowdown``: a weaker edge takes k times as long; the reply leaves that much later.
    chunk.compute_s += slow_down(chunk.compute_s, config.edge_slowdown)
    samples_seen = (saved["cursor"]["samples_seen"] if saved else 0) + chunk.trained
    cursor = {
        "experience": request.experience,
        "round": request.round,
        "samples_seen": samples_seen,
    }
    state = {
        "optimizer": trainer.optimizer.state_dict(),
        "cursor": cursor,
        "continual": continual.edge_state(),
        "seen": seen.classes(),
    }
    _save_edge_state(Path(state_dir), request, state, keep=config.rounds + 2)
    if mode.payload == "activations":
        chunk = _through_uplink(config, request, stream, Path(state_dir), chunk)
    return RoundResult(
        partition_id=stream.partition_id,
        experience=request.experience,
        round=request.round,
        edge_state={k: v.detach().cpu() for k, v in model.edge.state_dict().items()},
        chunk=chunk,
    )
