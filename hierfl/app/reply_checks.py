"""Every reply is checked against its schema before anything in it is decoded.

An edge is not trusted with the cloud's memory or its model: a reply must hold exactly the
records, metric keys and config keys of the protocol, with values of the right type and finite;
each array is checked by its declared dtype and shape (and its serialized size against them)
before it is materialised, so an oversized or mis-shaped array is refused at the cost of reading
its header only. Weights must be exactly the edge model's keys, dtypes and shapes; a reply may
carry at most ``max_rows`` samples (an edge's fair share of the round) and ``max_bytes`` of
tensors. A failed check raises ``ChunkRejected`` naming what is wrong.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Set
from dataclasses import replace
from typing import cast

import numpy as np
from flwr.app import Array, RecordDict

from hierfl.app.wire import WIRE_DTYPE
from hierfl.cloud.validation import Expected
from hierfl.errors import ChunkRejected

NPY_HEADER_MAX = 4096  # numpy's .npy header is 128 bytes for any array hierfl sends

# chunk record: key -> allowed Python types (bool is its own kind)
_CHUNK_KEYS: dict[str, tuple[type, ...]] = {
    "encoding": (str,),
    "compress": (str,),
    "partition-id": (int,),
    "experience": (int,),
    "round": (int,),
    "batches": (int,),
    "exit-correct": (int,),
    "compute-s": (float, int),
    "truncated": (bool,),
    "trained": (int,),
    "raw": (bool,),
    "backlog": (int,),
    "backlog-dropped": (int,),
    "link-s": (float, int),
    "split-step": (int,),
    "cloud-only-uint8": (int,),
    "cloud-only-png": (int,),
    "weights-version": (int,),
    "weights-checksum": (str,),
}
_CODED = {"weights-version", "weights-checksum"}  # a compressed weight exchange's own keys
_OPTIONAL_CHUNK = {"link-s", "backlog", "backlog-dropped", "cloud-only-uint8", "cloud-only-png"}
_RESULT_CHUNK = set(_CHUNK_KEYS) - {"split-step"} - _CODED
_CHECKSUM_CHARS = 64
_STEP_CHUNK = {"encoding", "compress", "partition-id", "experience", "round", "split-step"}
_METRICS = {"num-examples": (int,), "exit-loss": (float, int), "exit-acc": (float, int)}
_ACT_KEYS = {"act", "y", "act-scale", "act-shape", "act-sizes"}


def _type_ok(value: object, kinds: tuple[type, ...]) -> bool:
    if isinstance(value, bool):
        return bool in kinds
    if not isinstance(value, kinds):
        return False
    return not isinstance(value, float) or math.isfinite(value)


def _keys(where: str, got: set[str], required: set[str], optional: Set[str] = frozenset()) -> None:
    missing, extra = required - optional - got, got - required
    if missing or extra:
        raise ChunkRejected(f"{where}: missing {sorted(missing)}, unexpected {sorted(extra)}")


def _chunk_values(chunk: Mapping[str, object], expected: Expected) -> None:
    for key, value in chunk.items():
        if not _type_ok(value, _CHUNK_KEYS[key]):
            raise ChunkRejected(f"chunk[{key!r}] = {value!r} is not of type {_CHUNK_KEYS[key]}")
        if isinstance(value, int | float) and not isinstance(value, bool) and value < 0:
            raise ChunkRejected(f"chunk[{key!r}] = {value!r} must be >= 0")
    if not 0 <= int(chunk["partition-id"]) < expected.clients:  # type: ignore[call-overload]
        raise ChunkRejected(
            f"partition-id {chunk['partition-id']} outside 0..{expected.clients - 1}"
        )
    if chunk["encoding"] not in expected.encodings:
        raise ChunkRejected(f"encoding {chunk['encoding']!r} is not this run's")
    if chunk["compress"] not in expected.compress:
        raise ChunkRejected(f"compression {chunk['compress']!r} is not this run's")


def check_array(
    name: str, array: Array, *, dtypes: set[str], shape: tuple[int, ...] | None, max_bytes: int
) -> int:
    """An array by its declared dtype and shape, and its serialized size against them;
    returns its declared bytes. ``shape`` None: any 1-D shape."""
    if array.stype != "numpy.ndarray":
        raise ChunkRejected(f"{name}: serialization {array.stype!r}, expected numpy")
    if array.dtype not in dtypes:
        raise ChunkRejected(f"{name}: dtype {array.dtype}, expected {' or '.join(sorted(dtypes))}")
    declared = tuple(int(d) for d in array.shape)
    if any(d < 0 for d in declared):
        raise ChunkRejected(f"{name}: negative dimension in {declared}")
    if shape is None:
        if len(declared) != 1:
            raise ChunkRejected(f"{name}: shape {declared}, expected one dimension")
    elif declared != shape:
        raise ChunkRejected(f"{name}: shape {declared}, expected {shape}")
    nbytes = math.prod(declared) * np.dtype(array.dtype).itemsize
    if nbytes > max_bytes:
        raise ChunkRejected(f"{name}: {nbytes} bytes exceed the bound of {max_bytes}")
    if not nbytes <= len(array.data) <= nbytes + NPY_HEADER_MAX:
        raise ChunkRejected(f"{name}: {len(array.data)} serialized bytes for {nbytes} declared")
    return nbytes


def _int_array(name: str, array: Array, length: int) -> tuple[int, ...]:
    check_array(name, array, dtypes={"int64"}, shape=(length,), max_bytes=8 * length)
    return tuple(int(v) for v in array.numpy())


def _activations(record: Mapping[str, Array], encoding: str, compress: str, e: Expected) -> int:
    """The activations record's arrays; returns its number of samples."""
    _keys("activations", set(record), _ACT_KEYS, _ACT_KEYS - {"act", "y"})
    y = record["y"]
    check_array("y", y, dtypes={"uint8", "int64"}, shape=None, max_bytes=8 * e.max_rows)
    n = int(y.shape[0])
    if n > e.max_rows:
        raise ChunkRejected(f"{n} samples exceed this edge's share of {e.max_rows} a round")
    sample = e.sample_shape or ()
    dtype = {np.dtype(WIRE_DTYPE[encoding]).name} if compress == "none" else {"uint8"}
    packed = compress != "none" or encoding in ("code4", "raw-png", "raw-jpeg")
    if e.sample_shape is None:  # no activations in this mode: empty arrays only
        if n or math.prod(record["act"].shape):
            raise ChunkRejected("this mode ships no activations, but the reply carries some")
        return 0
    if encoding in ("raw-png", "raw-jpeg"):
        check_array("act", record["act"], dtypes=dtype, shape=None, max_bytes=e.max_bytes)
        if n:
            check_array(
                "act-sizes", record["act-sizes"], dtypes={"uint32"}, shape=(n,), max_bytes=4 * n
            )
            if _int_array("act-shape", record["act-shape"], 3) != tuple(sample):
                raise ChunkRejected(f"images of another shape than {sample}")
        return n
    if packed:
        check_array("act", record["act"], dtypes=dtype, shape=None, max_bytes=e.max_bytes)
        if n and _int_array("act-shape", record["act-shape"], 1 + len(sample)) != (n, *sample):
            raise ChunkRejected(f"activations declared of another shape than ({n}, *{sample})")
    else:
        check_array(
            "act",
            record["act"],
            dtypes=dtype,
            shape=(n, *sample) if n else None,
            max_bytes=e.max_bytes,
        )
    if encoding == "int8":
        channels = sample[0] if len(sample) >= 1 else 1
        check_array(
            "act-scale",
            record["act-scale"],
            dtypes={"float32"},
            shape=(channels,),
            max_bytes=4 * channels,
        )
    return n


def _weights(record: Mapping[str, Array], e: Expected, where: str = "edge weights") -> None:
    if e.weights is None:
        return
    _keys(where, set(record), set(e.weights))
    for name, (dtype, shape) in e.weights.items():
        nbytes = _nbytes(dtype, shape)
        check_array(f"weight {name}", record[name], dtypes={dtype}, shape=shape, max_bytes=nbytes)


def _nbytes(dtype: str, shape: tuple[int, ...]) -> int:
    return math.prod(shape) * np.dtype(dtype).itemsize


def _coded_update(content: RecordDict, chunk: Mapping[str, object], e: Expected) -> None:
    """A compressed exchange's reply: at most one uint8 update no larger than the model's
    weights (``hierfl.codecs.update_wire.unpack`` checks its layout), its base's version and
    checksum, and an eval copy of exactly the model's weights when there is one."""
    record = content.array_records["arrays"]
    _keys("edge update", set(record), {"update"}, {"update"})
    if "update" in record:
        model_bytes = sum(_nbytes(dtype, shape) for dtype, shape in (e.weights or {}).values())
        check_array("update", record["update"], dtypes={"uint8"}, shape=None, max_bytes=model_bytes)
    if len(str(chunk["weights-checksum"])) > _CHECKSUM_CHARS:
        raise ChunkRejected("weights-checksum is too long")
    if "eval" in content.array_records:
        _weights(content.array_records["eval"], e, "eval copy")


def check_reply(content: RecordDict, e: Expected) -> None:
    """A round's reply (weights, metrics, activations, chunk) against the schema."""
    arrays = {"arrays", "activations"} | ({"eval"} if e.coded_updates else set())
    _keys("records", set(content.array_records), arrays, {"eval"})
    _keys("records", set(content.metric_records), {"metrics"})
    _keys("records", set(content.config_records), {"chunk"})
    metrics = content.metric_records["metrics"]  # the record kinds were checked just above
    _keys("metrics", set(metrics), set(_METRICS))
    for key, kinds in _METRICS.items():
        if not _type_ok(metrics[key], kinds) or cast(float, metrics[key]) < 0:
            raise ChunkRejected(f"metrics[{key!r}] = {metrics[key]!r} is not a finite number >= 0")
    chunk = content.config_records["chunk"]
    _keys(
        "chunk", set(chunk), _RESULT_CHUNK | (_CODED if e.coded_updates else set()), _OPTIONAL_CHUNK
    )
    _chunk_values(chunk, e)
    e = e.for_partition(cast(int, chunk["partition-id"]))  # its type was checked just above
    n = _activations(
        content.array_records["activations"], str(chunk["encoding"]), str(chunk["compress"]), e
    )
    # their types were checked above: ints (not bools)
    examples, trained = cast(int, metrics["num-examples"]), cast(int, chunk["trained"])
    if examples != trained:
        raise ChunkRejected(f"num-examples {examples} != {trained} samples trained")
    most = e.max_trained if e.max_trained is not None else e.max_rows
    if trained > most:
        raise ChunkRejected(f"claims {trained} samples trained, above its share {most}")
    backlog = cast(int, chunk["backlog"] if "backlog" in chunk else 0)
    if e.sample_shape is not None and backlog > n:
        raise ChunkRejected("more backlog samples than samples shipped")
    if e.coded_updates:
        _coded_update(content, chunk, e)
    else:
        _weights(content.array_records["arrays"], e)


def check_split_step(content: RecordDict, e: Expected) -> int:
    """Split mode's per-batch message; returns its number of samples."""
    _keys("records", set(content.array_records), {"activations"})
    _keys("records", set(content.config_records), {"chunk"})
    if content.metric_records:
        raise ChunkRejected("a split step carries no metrics")
    chunk = content.config_records["chunk"]  # the record kinds were checked just above
    _keys("chunk", set(chunk), _STEP_CHUNK | {"link-s"}, {"link-s"})
    _chunk_values(chunk, e)
    step = replace(e, sample_shape=e.step_shape)
    return _activations(
        content.array_records["activations"], str(chunk["encoding"]), str(chunk["compress"]), step
    )
