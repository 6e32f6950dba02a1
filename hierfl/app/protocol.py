"""Message layout between the cloud (ServerApp) and the edges (ClientApp), and its codecs.

A round is one ``train`` message per edge, built by the Flower strategy:
request ``{"arrays": edge weights, "config": {"server-round", "experience", "round", ...}}``;
reply ``{"arrays": edge weights, "metrics": {"num-examples", ...}, "activations": {"act", "y"},
"chunk": {"partition-id", "experience", "round", ...}}``. The strategy aggregates the first two;
the cloud trains on ``activations``, which is stripped before aggregation.

The activations travel through the uplink codec (``codec``: fp32, fp16 or int8): ``act`` holds
the encoded values in the codec's dtype and, for int8, ``act-scale`` one float32 scale per
channel; the cloud decodes them back to float32. ``chunk["link-s"]`` is the emulated link time
the ClientApp slept for the request and this reply (``hierfl.link``).
"""

from __future__ import annotations

import numpy as np
import torch
from flwr.app import Array, ArrayRecord, ConfigRecord, MetricRecord, RecordDict

from hierfl.codecs import Encoded, decode, encode
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
LINK_S = "link-s"  # in CHUNK: seconds of emulated link the ClientApp slept for this exchange
_CODEC_OF_DTYPE = {np.dtype(np.float32): "fp32", np.dtype(np.float16): "fp16"}


def _tensors_record(
    activations: torch.Tensor, labels: torch.Tensor, codec: str = "fp32"
) -> ArrayRecord:
    """Activations encoded with ``codec`` (raw float32 inputs when ``codec`` is fp32)."""
    encoded = encode(codec, activations) if activations.is_floating_point() else None
    data = encoded.data if encoded is not None else activations
    arrays = {
        "act": Array(np.ascontiguousarray(data.numpy())),
        "y": Array(np.ascontiguousarray(labels.numpy())),
    }
    if encoded is not None and encoded.scale is not None:
        arrays["act-scale"] = Array(np.ascontiguousarray(encoded.scale.numpy()))
    return ArrayRecord(arrays)


def _tensors(record: ArrayRecord) -> tuple[torch.Tensor, torch.Tensor]:
    """Decoded float32 activations and the labels, as copies that own their memory.

    The codec follows from the array's dtype: int8 with ``act-scale`` (per channel along dim 1,
    one scale for a 1-d tensor), fp16, or fp32. Anything else is a malformed reply.
    """
    data = torch.from_numpy(record["act"].numpy().copy())
    labels = torch.from_numpy(record["y"].numpy().copy())
    if data.dtype == torch.int8:
        scale = torch.from_numpy(record["act-scale"].numpy().copy())
        dim = 1 if data.dim() >= 2 else None
        if scale.numel() != (data.shape[1] if dim == 1 else 1):
            raise ValueError(f"act-scale has {scale.numel()} values for shape {tuple(data.shape)}")
        return decode(Encoded("int8", data, scale, dim)), labels
    codec = _CODEC_OF_DTYPE.get(np.dtype(record["act"].numpy().dtype))
    if codec is None:
        raise ValueError(f"activations of dtype {data.dtype} match no codec")
    return decode(Encoded(codec, data)), labels


def request_config(request: RoundRequest) -> ConfigRecord:
    return ConfigRecord({"experience": request.experience, "round": request.round})


def decode_request(content: RecordDict) -> tuple[RoundRequest, dict[str, torch.Tensor], float]:
    """The round asked for, the aggregated edge weights, and FedProx's mu (0 if absent)."""
    try:
        cfg = content[CONFIG]
        request = RoundRequest(int(cfg["experience"]), int(cfg["round"]))
        state = content[ARRAYS].to_torch_state_dict()
    except KeyError as exc:
        raise ChunkRejected(f"malformed request: missing {exc}") from None
    return request, state, float(cfg.get("proximal-mu", 0.0))


def encode_result(result: RoundResult, codec: str = "fp32") -> RecordDict:
    """The reply of a round; activations (not raw inputs) go through ``codec``."""
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
            ACTIVATIONS: _tensors_record(
                chunk.activations, chunk.labels, "fp32" if chunk.raw else codec
            ),
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
                    "backlog": chunk.backlog,
                    "backlog-dropped": chunk.backlog_dropped,
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
            backlog=int(meta.get("backlog", 0)),
            backlog_dropped=int(meta.get("backlog-dropped", 0)),
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


def encode_split_step(step: SplitStep, codec: str = "fp32") -> RecordDict:
    """Split mode: one batch's activations, sent while the edge waits for their gradient."""
    return RecordDict(
        {
            ACTIVATIONS: _tensors_record(step.activations, step.labels, codec),
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


def decode_gradient(content: RecordDict) -> tuple[RoundRequest, int, torch.Tensor]:
    try:
        cfg = content[CONFIG]
        request = RoundRequest(int(cfg["experience"]), int(cfg["round"]))
        grad = torch.from_numpy(content[GRAD]["g"].numpy().copy())
        return request, int(cfg[SPLIT_STEP]), grad
    except KeyError as exc:
        raise ChunkRejected(f"malformed gradient message: missing {exc}") from None


def payload_bytes(content: RecordDict) -> int:
    """Bytes of array data in a message: what dominates the wire.

    The sum of ``len(Array.data)`` over every array of every ArrayRecord: the serialised
    tensor (numpy ``.npy`` bytes: the values plus a 128-byte header per array), i.e. the
    activations after the codec, labels, weights and gradients. Config and metric records and
    Flower's own framing are not counted; they are a few hundred bytes per message.
    """
    return sum(len(arr.data) for rec in content.array_records.values() for arr in rec.values())


def link_seconds(content: RecordDict) -> float:
    """The emulated link time an edge reported in its reply (0 if it did not emulate one)."""
    if CHUNK not in content.config_records:
        return 0.0
    return float(content[CHUNK].get(LINK_S, 0.0))


def stamp_link_seconds(content: RecordDict, seconds: float) -> None:
    """Write the emulated link time into a reply's ``chunk`` record (created if missing)."""
    if CHUNK not in content.config_records:
        content[CHUNK] = ConfigRecord({})
    content[CHUNK][LINK_S] = float(seconds)
