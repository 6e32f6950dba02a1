"""Message layout between the cloud (ServerApp) and the edges (ClientApp), and its codecs.

A round is one ``train`` message per edge, built by the Flower strategy:
request ``{"arrays": edge weights, "config": {"server-round", "experience", "round", ...}}``;
reply ``{"arrays": edge weights, "metrics": {"num-examples", ...}, "activations": {"act", "y"},
"chunk": {"partition-id", "experience", "round", ...}}``. The strategy aggregates the first two;
the cloud trains on ``activations``, which is stripped before aggregation.
"""

from __future__ import annotations

import numpy as np
import torch
from flwr.app import Array, ArrayRecord, ConfigRecord, Message, MetricRecord, RecordDict

from hierfl.edge import EdgeChunk
from hierfl.edge_node import RoundRequest, RoundResult
from hierfl.errors import ChunkRejected
from hierfl.split import SplitStep

ARRAYS = "arrays"
CONFIG = "config"
METRICS = "metrics"
ACTIVATIONS = "activations"
CHUNK = "chunk"
GRAD = "grad"
SPLIT_STEP = "split-step"
SPLIT_MESSAGE_TYPE = "train.split"  # split mode's per-batch gradient message


def _tensors_record(activations: torch.Tensor, labels: torch.Tensor) -> ArrayRecord:
    return ArrayRecord(
        {
            "act": Array(np.ascontiguousarray(activations.numpy())),
            "y": Array(np.ascontiguousarray(labels.numpy())),
        }
    )


def _tensors(record: ArrayRecord) -> tuple[torch.Tensor, torch.Tensor]:
    """Copies, so the tensors own their memory (Flower's buffers are read-only)."""
    return (
        torch.from_numpy(record["act"].numpy().copy()),
        torch.from_numpy(record["y"].numpy().copy()),
    )


def request_config(request: RoundRequest) -> ConfigRecord:
    return ConfigRecord({"experience": request.experience, "round": request.round})


def decode_request(msg: Message) -> tuple[RoundRequest, dict[str, torch.Tensor], float]:
    """The round asked for, the aggregated edge weights, and FedProx's mu (0 if absent)."""
    try:
        cfg = msg.content[CONFIG]
        request = RoundRequest(int(cfg["experience"]), int(cfg["round"]))
        state = msg.content[ARRAYS].to_torch_state_dict()
    except KeyError as exc:
        raise ChunkRejected(f"malformed request: missing {exc}") from None
    return request, state, float(cfg.get("proximal-mu", 0.0))


def encode_result(result: RoundResult) -> RecordDict:
    chunk = result.chunk
    return RecordDict(
        {
            ARRAYS: ArrayRecord(result.edge_state),
            METRICS: MetricRecord(
                {
                    "num-examples": chunk.trained,
                    "exit-loss": chunk.exit_loss,
                    "exit-acc": chunk.exit_correct / max(chunk.trained, 1),
                }
            ),
            ACTIVATIONS: _tensors_record(chunk.activations, chunk.labels),
            CHUNK: ConfigRecord(
                {
                    "partition-id": result.partition_id,
                    "experience": result.experience,
                    "round": result.round,
                    "batches": chunk.batches,
                    "exit-correct": chunk.exit_correct,
                    "compute-s": chunk.compute_s,
                    "truncated": chunk.truncated,
                    "trained": chunk.trained,
                    "raw": chunk.raw,
                }
            ),
        }
    )


def decode_result(content: RecordDict) -> RoundResult:
    """Turn a reply into a ``RoundResult``; a malformed reply raises ``ChunkRejected``."""
    try:
        meta = content[CHUNK]
        acts = content[ACTIVATIONS]
        metrics = content[METRICS]
        a, y = _tensors(acts)
        chunk = EdgeChunk(
            activations=a,
            labels=y,
            batches=int(meta["batches"]),
            exit_loss=float(metrics["exit-loss"]),
            exit_correct=int(meta["exit-correct"]),
            compute_s=float(meta["compute-s"]),
            truncated=bool(meta["truncated"]),
            trained=int(meta["trained"]),
            raw=bool(meta["raw"]),
        )
        if int(metrics["num-examples"]) != chunk.trained:
            raise ChunkRejected(
                f"num-examples {metrics['num-examples']} != {chunk.trained} samples trained"
            )
        return RoundResult(
            partition_id=int(meta["partition-id"]),
            experience=int(meta["experience"]),
            round=int(meta["round"]),
            edge_state=content[ARRAYS].to_torch_state_dict(),
            chunk=chunk,
        )
    except (KeyError, TypeError, ValueError) as exc:
        raise ChunkRejected(f"malformed reply: {type(exc).__name__}: {exc}") from None


def is_split_step(content: RecordDict) -> bool:
    return CHUNK in content and SPLIT_STEP in content[CHUNK]


def encode_split_step(step: SplitStep) -> RecordDict:
    """Split mode: one batch's activations, sent while the edge waits for their gradient."""
    return RecordDict(
        {
            ACTIVATIONS: _tensors_record(step.activations, step.labels),
            CHUNK: ConfigRecord(
                {
                    "partition-id": step.partition_id,
                    "experience": step.experience,
                    "round": step.round,
                    SPLIT_STEP: step.step,
                }
            ),
        }
    )


def decode_split_step(content: RecordDict) -> SplitStep:
    try:
        meta = content[CHUNK]
        activations, labels = _tensors(content[ACTIVATIONS])
        return SplitStep(
            partition_id=int(meta["partition-id"]),
            experience=int(meta["experience"]),
            round=int(meta["round"]),
            step=int(meta[SPLIT_STEP]),
            activations=activations,
            labels=labels,
        )
    except (KeyError, TypeError, ValueError) as exc:
        raise ChunkRejected(f"malformed split step: {type(exc).__name__}: {exc}") from None


def encode_gradient(request: RoundRequest, step: int, grad: torch.Tensor) -> RecordDict:
    return RecordDict(
        {
            CONFIG: ConfigRecord(
                {"experience": request.experience, "round": request.round, SPLIT_STEP: step}
            ),
            GRAD: ArrayRecord({"g": Array(np.ascontiguousarray(grad.numpy()))}),
        }
    )


def decode_gradient(msg: Message) -> tuple[RoundRequest, int, torch.Tensor]:
    try:
        cfg = msg.content[CONFIG]
        request = RoundRequest(int(cfg["experience"]), int(cfg["round"]))
        grad = torch.from_numpy(msg.content[GRAD]["g"].numpy().copy())
        return request, int(cfg[SPLIT_STEP]), grad
    except KeyError as exc:
        raise ChunkRejected(f"malformed gradient message: missing {exc}") from None


def payload_bytes(content: RecordDict) -> int:
    """Bytes of array data in a message: what dominates the wire."""
    return sum(len(arr.data) for rec in content.array_records.values() for arr in rec.values())
