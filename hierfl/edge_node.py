"""One edge device's work for one round, in pure torch: what the ClientApp runs per message."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import torch

from hierfl.config import HierConfig
from hierfl.data import ClientStream
from hierfl.edge import EdgeChunk, EdgeTrainer, epoch_batches
from hierfl.models import create_model
from hierfl.storage import save_atomic


@dataclass(frozen=True)
class RoundRequest:
    """What the cloud asks of every edge in one round."""

    experience: int
    round: int


@dataclass
class RoundResult:
    """One edge's answer: its locally trained edge weights and the chunk of activations."""

    partition_id: int
    experience: int
    round: int
    edge_state: dict[str, torch.Tensor]
    chunk: EdgeChunk


def _seed(config: HierConfig, *parts: int) -> int:
    value = config.seed
    for p in parts:
        value = (value * 1_000_003 + p + 1) % (2**62)
    return value


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

    The optimizer state and stream cursor live in ``state_dir`` (node-local, written
    atomically), so a fresh process per message continues where the last one stopped.
    """
    if not 0 <= request.experience < len(stream.experiences):
        raise ValueError(
            f"experience {request.experience} out of range (stream has {len(stream.experiences)})"
        )
    model = create_model(
        config.model,
        cut=config.cut,
        num_classes=stream.num_classes,
        input_shape=stream.input_shape,
    )
    model.edge.load_state_dict(edge_state)
    trainer = EdgeTrainer(
        model.edge,
        optimizer=config.optimizer,
        lr=config.edge_lr,
        momentum=config.momentum,
        proximal_mu=proximal_mu,
    )
    state_path = Path(state_dir) / "edge_state.pt"
    saved = torch.load(state_path, weights_only=True) if state_path.exists() else None
    if saved is not None:
        trainer.optimizer.load_state_dict(saved["optimizer"])
    exp = stream.experiences[request.experience]
    gen = torch.Generator().manual_seed(
        _seed(config, stream.partition_id, request.experience, request.round)
    )
    batches = epoch_batches(
        exp.x, exp.y, batch_size=config.batch_size, epochs=config.local_epochs, generator=gen
    )
    chunk = trainer.train_chunk(batches, max_bytes=config.max_chunk_bytes)
    samples_seen = (saved["cursor"]["samples_seen"] if saved else 0) + chunk.num_examples
    cursor = {
        "experience": request.experience,
        "round": request.round,
        "samples_seen": samples_seen,
    }
    save_atomic({"optimizer": trainer.optimizer.state_dict(), "cursor": cursor}, state_path)
    return RoundResult(
        partition_id=stream.partition_id,
        experience=request.experience,
        round=request.round,
        edge_state={k: v.detach().cpu() for k, v in model.edge.state_dict().items()},
        chunk=chunk,
    )
