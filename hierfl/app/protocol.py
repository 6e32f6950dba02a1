"""Message layout between the cloud (ServerApp) and the edges (ClientApp), and its codecs.

A round is one ``train`` message per edge, built by the Flower strategy:
request ``{"arrays": edge weights, "config": {"server-round", "experience", "round", ...}}``;
reply ``{"arrays": edge weights, "metrics": {"num-examples", ...}, "activations": {"act", "y"},
"chunk": {"partition-id", "experience", "round", ...}}``. The strategy aggregates the first two;
the cloud trains on ``activations``, which is stripped before aggregation.

The activations travel through the uplink codec, raw inputs in their stored form
(``hierfl.app.wire``: ``act`` and its companions); ``chunk["encoding"]`` and
``chunk["compress"]`` say how, and the cloud decodes them back to float32.
``chunk["link-s"]`` is the emulated link time the ClientApp slept for the request and this
reply (``hierfl.edge.link``).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, TypeVar, cast

import numpy as np
import torch
from flwr.app import Array, ArrayRecord, ConfigRecord, MetricRecord, RecordDict

from hierfl.app.flower_internals import control_bytes
from hierfl.app.wire import Wire, decode_tensors, encode_tensors
from hierfl.boundary import EdgeChunk, EdgeState, RoundRequest, RoundResult, SplitStep
from hierfl.codecs.update_wire import pack, unpack
from hierfl.codecs.updates import EncodedTensor, UpdateCodec
from hierfl.errors import ChunkRejected
from hierfl.train.exchange import WeightsDown

ARRAYS = "arrays"
CONFIG = "config"
METRICS = "metrics"
ACTIVATIONS = "activations"
CHUNK = "chunk"
GRAD = "grad"
SPLIT_STEP = "split-step"
SPLIT_MESSAGE_TYPE = "train.split"  # split mode's per-batch gradient message
LINK_S = "link-s"  # in CHUNK: seconds of emulated link the ClientApp slept for this exchange
ENCODING = "encoding"  # in CHUNK: how the activations travel (hierfl.app.wire)
COMPRESS = "compress"  # in CHUNK: the lossless stage on their bytes
# In CHUNK: what cloud-only would have uploaded for the round's new samples, as stored
CLOUD_ONLY_UINT8 = "cloud-only-uint8"
CLOUD_ONLY_PNG = "cloud-only-png"
# A compressed weight exchange (``hierfl.train.exchange``; absent with ``weight-codec=fp32``):
WEIGHTS = "weights"  # in CONFIG: what ARRAYS holds: "full" weights, a "delta" or "none"
WEIGHTS_VERSION = "weights-version"  # in CONFIG and CHUNK: the base's version
WEIGHTS_CHECKSUM = "weights-checksum"  # in CHUNK: the digest of the base the edge holds
EVAL_COPY = "eval-copy"  # in CONFIG: the cloud asks for the edge's weights to evaluate them
UPDATE = "update"  # in ARRAYS: a coded update or change (``hierfl.codecs.update_wire``)
EVAL = "eval"  # reply record: the edge's weights as it holds them, for evaluation only


_R = TypeVar("_R", ArrayRecord, MetricRecord, ConfigRecord)


def _record(content: RecordDict, key: str, kind: type[_R]) -> _R:
    """``content[key]``, typed as a ``kind`` record but not checked: a record of another kind
    fails where it is used, as a malformed message (``reply_checks`` refuses it first)."""
    return cast(_R, content[key])


def _int(value: object) -> int:
    """``int(value)``: a value ``int`` refuses raises its TypeError or ValueError."""
    return int(cast(Any, value))


def _float(value: object) -> float:
    """``float(value)``: a value ``float`` refuses raises its TypeError or ValueError."""
    return float(cast(Any, value))


def _wire(wire: Wire | str) -> Wire:
    return Wire(codec=wire) if isinstance(wire, str) else wire


def _tensors(content: RecordDict) -> tuple[torch.Tensor, torch.Tensor]:
    meta = content[CHUNK]
    encoding = str(meta.get(ENCODING, "fp32"))
    return decode_tensors(
        _record(content, ACTIVATIONS, ArrayRecord), encoding, str(meta.get(COMPRESS, "none"))
    )


def request_config(request: RoundRequest) -> ConfigRecord:
    return ConfigRecord({"experience": request.experience, "round": request.round})


def decode_request(content: RecordDict) -> tuple[RoundRequest, dict[str, torch.Tensor], float]:
    """The round asked for, the aggregated edge weights, and FedProx's mu (0 if absent)."""
    try:
        cfg = content[CONFIG]
        request = RoundRequest(_int(cfg["experience"]), _int(cfg["round"]))
        state = _record(content, ARRAYS, ArrayRecord).to_torch_state_dict()
    except KeyError as exc:
        raise ChunkRejected(f"malformed request: missing {exc}") from None
    return request, state, _float(cfg.get("proximal-mu", 0.0))


def encode_result(result: RoundResult, wire: Wire | str = "fp32") -> RecordDict:
    """The reply of a round: activations through the codec, raw inputs in their stored form
    (``hierfl.app.wire``)."""
    chunk = result.chunk
    wire = _wire(wire)
    tensors, encoding = encode_tensors(chunk.activations, chunk.labels, wire, raw=chunk.raw)
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
            ACTIVATIONS: tensors,
            CHUNK: ConfigRecord(
                {
                    ENCODING: encoding,
                    COMPRESS: wire.compress,
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
                    CLOUD_ONLY_UINT8: chunk.cloud_only_uint8,
                    CLOUD_ONLY_PNG: chunk.cloud_only_png,
                }
            ),
        }
    )


def decode_result(content: RecordDict) -> RoundResult:
    """Turn a reply into a ``RoundResult``; a malformed reply raises ``ChunkRejected``."""
    try:
        meta = content[CHUNK]
        metrics = _record(content, METRICS, MetricRecord)
        a, y = _tensors(content)
        chunk = EdgeChunk(
            activations=a,
            labels=y,
            batches=_int(meta["batches"]),
            exit_loss=_float(metrics["exit-loss"]),
            exit_correct=_int(meta["exit-correct"]),
            compute_s=_float(meta["compute-s"]),
            truncated=bool(meta["truncated"]),
            trained=_int(meta["trained"]),
            raw=bool(meta["raw"]),
            backlog=_int(meta.get("backlog", 0)),
            backlog_dropped=_int(meta.get("backlog-dropped", 0)),
            cloud_only_uint8=_int(meta.get(CLOUD_ONLY_UINT8, 0)),
            cloud_only_png=_int(meta.get(CLOUD_ONLY_PNG, 0)),
            wire_bytes=sum(
                len(a.data) for a in _record(content, ACTIVATIONS, ArrayRecord).values()
            ),
        )
        if _int(metrics["num-examples"]) != chunk.trained:
            raise ChunkRejected(
                f"num-examples {metrics['num-examples']} != {chunk.trained} samples trained"
            )
        return RoundResult(
            partition_id=_int(meta["partition-id"]),
            experience=_int(meta["experience"]),
            round=_int(meta["round"]),
            edge_state=_record(content, ARRAYS, ArrayRecord).to_torch_state_dict(),
            chunk=chunk,
        )
    except (KeyError, TypeError, ValueError) as exc:
        raise ChunkRejected(f"malformed reply: {type(exc).__name__}: {exc}") from None


def is_split_step(content: RecordDict) -> bool:
    return CHUNK in content and SPLIT_STEP in content[CHUNK]


def encode_split_step(step: SplitStep, wire: Wire | str = "fp32") -> RecordDict:
    """Split mode: one batch's activations, sent while the edge waits for their gradient."""
    wire = _wire(wire)
    tensors, encoding = encode_tensors(step.activations, step.labels, wire, raw=False)
    return RecordDict(
        {
            ACTIVATIONS: tensors,
            CHUNK: ConfigRecord(
                {
                    ENCODING: encoding,
                    COMPRESS: wire.compress,
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
        activations, labels = _tensors(content)
        return SplitStep(
            partition_id=_int(meta["partition-id"]),
            experience=_int(meta["experience"]),
            round=_int(meta["round"]),
            step=_int(meta[SPLIT_STEP]),
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
        request = RoundRequest(_int(cfg["experience"]), _int(cfg["round"]))
        grad = torch.from_numpy(_record(content, GRAD, ArrayRecord)["g"].numpy().copy())
        return request, _int(cfg[SPLIT_STEP]), grad
    except KeyError as exc:
        raise ChunkRejected(f"malformed gradient message: missing {exc}") from None


def payload_bytes(content: RecordDict) -> int:
    """Bytes of array data in a message: what dominates the wire.

    The sum of ``len(Array.data)`` over every array of every ArrayRecord but the eval copy: the
    serialised tensor (numpy ``.npy`` bytes: the values plus a 128-byte header per array),
    i.e. the activations after the codec, labels, weights or their coded changes, and
    gradients. Config and metric records are counted apart (``traffic_parts``); Flower's own
    framing is not counted.
    """
    parts = traffic_parts(content, control=False)
    return parts["codes"] + parts["weights"]


def traffic_parts(content: RecordDict, *, control: bool = True) -> dict[str, int]:
    """A message's bytes by kind: ``weights`` (ARRAYS), ``eval`` (the eval copy), ``codes``
    (every other array: activations or inputs, labels, gradients) and ``control`` (the config
    and metric records as protobuf writes them)."""
    arrays = {
        key: sum(len(arr.data) for arr in rec.values())
        for key, rec in content.array_records.items()
    }
    parts = {"weights": arrays.pop(ARRAYS, 0), "eval": arrays.pop(EVAL, 0)}
    parts["codes"] = sum(arrays.values())
    parts["control"] = control_bytes(content) if control else 0
    return parts


def link_seconds(content: RecordDict) -> float:
    """The emulated link time an edge reported in its reply (0 if it did not emulate one)."""
    if CHUNK not in content.config_records:
        return 0.0
    value = content.config_records[CHUNK].get(LINK_S, 0.0)
    if isinstance(value, int | float) and not isinstance(value, bool) and 0 <= value < 1e9:
        return float(value)
    return 0.0  # a malformed value is refused by the reply's check


def stamp_link_seconds(content: RecordDict, seconds: float) -> None:
    """Write the emulated link time into a reply's ``chunk`` record (created if missing)."""
    if CHUNK not in content.config_records:
        content[CHUNK] = ConfigRecord({})
    content.config_records[CHUNK][LINK_S] = float(seconds)


# ---- a compressed weight exchange --------------------------------------------------------------
def _update_record(
    encoded: Mapping[str, EncodedTensor] | None, names: tuple[str, ...]
) -> ArrayRecord:
    if encoded is None:
        return ArrayRecord()
    return ArrayRecord({UPDATE: Array(pack(encoded, names))})


def own_copy(content: RecordDict) -> RecordDict:
    """A request's content that can be changed without touching the others': its records
    shared (their arrays are not copied), its config record copied."""
    out = RecordDict(dict(content))
    if CONFIG in content:
        out[CONFIG] = ConfigRecord(dict(_record(content, CONFIG, ConfigRecord)))
    return out


MAX_CHANGES = 10_000  # changes one request may carry: far more than ``kept_changes`` keeps


def _change_key(index: int) -> str:
    return UPDATE if index == 0 else f"{UPDATE}-{index}"


def encode_weights_down(
    content: RecordDict, down: WeightsDown, names: tuple[str, ...], *, eval_copy: bool
) -> None:
    """Put what ``down`` says into a request built by the strategy (its ARRAYS replaced)."""
    if down.kind == "full":
        assert down.full is not None
        content[ARRAYS] = ArrayRecord(down.full)
    else:  # the changes, oldest first: "update", "update-1", ...
        content[ARRAYS] = ArrayRecord(
            {_change_key(i): Array(pack(d, names)) for i, d in enumerate(down.deltas)}
        )
    config = _record(content, CONFIG, ConfigRecord)
    config[WEIGHTS], config[WEIGHTS_VERSION], config[EVAL_COPY] = down.kind, down.version, eval_copy


def decode_weights_down(
    content: RecordDict, shapes: Mapping[str, tuple[int, ...]], codec: UpdateCodec
) -> tuple[WeightsDown, bool]:
    """What a request carries of the weights, and whether the cloud asks for an eval copy."""
    config = content[CONFIG]
    if WEIGHTS not in config:
        raise ChunkRejected("the request carries full weights, but this edge exchanges updates")
    kind, version = str(config[WEIGHTS]), _int(config[WEIGHTS_VERSION])
    arrays = _record(content, ARRAYS, ArrayRecord)
    if kind == "full":
        down = WeightsDown("full", version, full=arrays.to_torch_state_dict())
    elif kind == "delta":
        count = len(arrays)
        keys = [_change_key(i) for i in range(count)]
        if not 0 < count <= MAX_CHANGES or set(arrays) != set(keys):
            raise ChunkRejected(
                f"a change request holds {sorted(arrays)[:5]}; expected {MAX_CHANGES} at most, "
                "named update, update-1, ..."
            )
        deltas = tuple(unpack(arrays[k].numpy(), shapes, codec) for k in keys)
        down = WeightsDown("delta", version, deltas=deltas)
    elif kind == "none":
        down = WeightsDown("none", version)
    else:
        raise ChunkRejected(f"weights {kind!r}: expected full, delta or none")
    return down, bool(config.get(EVAL_COPY, False))


def attach_update(
    reply: RecordDict,
    encoded: Mapping[str, EncodedTensor] | None,
    names: tuple[str, ...],
    *,
    version: int,
    digest: str,
    eval_state: EdgeState | None,
) -> None:
    """Replace a reply's weights by the coded update (none on a round without exchange), say
    which base it is relative to, and attach the eval copy when asked."""
    reply[ARRAYS] = _update_record(encoded, names)
    chunk = _record(reply, CHUNK, ConfigRecord)
    chunk[WEIGHTS_VERSION], chunk[WEIGHTS_CHECKSUM] = version, digest
    if eval_state is not None:
        reply[EVAL] = ArrayRecord(eval_state)


def read_update(
    content: RecordDict, shapes: Mapping[str, tuple[int, ...]], codec: UpdateCodec
) -> tuple[int, str, dict[str, EncodedTensor] | None]:
    """A reply's base version and digest, and its coded update (None: it sends none)."""
    chunk = content[CHUNK]
    arrays = _record(content, ARRAYS, ArrayRecord)
    encoded = unpack(arrays[UPDATE].numpy(), shapes, codec) if UPDATE in arrays else None
    return _int(chunk[WEIGHTS_VERSION]), str(chunk[WEIGHTS_CHECKSUM]), encoded


def eval_state(content: RecordDict) -> EdgeState:
    """The eval copy a reply carries (empty when none)."""
    if EVAL not in content.array_records:
        return {}
    return _record(content, EVAL, ArrayRecord).to_torch_state_dict()
