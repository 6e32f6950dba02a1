"""Checks on what arrives from an edge, before any of it touches the cloud model."""

from __future__ import annotations

import torch

from hierfl.edge import EdgeChunk
from hierfl.edge_node import RoundRequest, RoundResult
from hierfl.errors import ChunkRejected


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
    edge_keys: set[str] | None,
    passes: int = 1,
) -> None:
    """Raise ``ChunkRejected`` with the reason if ``result`` must not be used.

    ``passes``: local epochs one shipped sample stands for (``ship=last-epoch``).
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
    if edge_keys is None:  # cloud mode: edges train nothing, their weights are not used
        return
    if set(result.edge_state) != edge_keys:
        raise ChunkRejected("edge weights do not match the model's parameters")
    for name, t in result.edge_state.items():
        if t.is_floating_point() and not bool(torch.isfinite(t).all()):
            raise ChunkRejected(f"edge weight {name} contains NaN or Inf")


def _counts_agree(chunk: EdgeChunk, passes: int) -> bool:
    """Samples trained against samples shipped: equal, or ``passes`` times as many when an
    edge ships only its last epoch (a truncated last epoch ships fewer)."""
    shipped = chunk.num_examples - chunk.backlog
    if chunk.trained == 0 or chunk.trained == shipped * passes:
        return True
    return passes > 1 and chunk.truncated and chunk.trained > shipped
