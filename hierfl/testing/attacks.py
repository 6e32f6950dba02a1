"""Hostile edge replies, for tests and ``benchmarks/poisoning.py``.

Each attack rewrites an honest reply's Flower content in place, as a malicious or broken edge
could: the crash payloads and the takeover attempts of the security review, plus label
flipping at the row cap. ``MaliciousGrid`` is the in-process grid in which one partition
answers with the next attack of its list.
"""

from __future__ import annotations

import math
from collections.abc import Callable, MutableMapping
from typing import cast

import numpy as np
import torch
from flwr.app import Array, ArrayRecord, Error, Message, RecordDict

from hierfl.app.inprocess import InProcessGrid
from hierfl.app.protocol import (
    ACTIVATIONS,
    ARRAYS,
    CHUNK,
    METRICS,
    UPDATE,
    WEIGHTS_CHECKSUM,
    WEIGHTS_VERSION,
)

Attack = Callable[[RecordDict], None]


def _act(c: RecordDict) -> np.ndarray:
    return c.array_records[ACTIVATIONS]["act"].numpy()


def _set_act(c: RecordDict, a: np.ndarray) -> None:
    c.array_records[ACTIVATIONS]["act"] = Array(np.ascontiguousarray(a))


def _first_weight(c: RecordDict) -> str:
    return next(iter(c[ARRAYS].keys()))


def _fill_weights(c: RecordDict, value: float) -> None:
    state = c.array_records[ARRAYS].to_torch_state_dict()
    c[ARRAYS] = ArrayRecord(
        {k: torch.full_like(t, value) if t.is_floating_point() else t for k, t in state.items()}
    )


def _update(c: RecordDict) -> np.ndarray:
    return c.array_records[ARRAYS][UPDATE].numpy()


def _set_update(c: RecordDict, blob: np.ndarray) -> None:
    c.array_records[ARRAYS][UPDATE] = Array(np.ascontiguousarray(blob))


def _first_scale(value: float) -> Attack:
    """The first tensor's value scale in a coded update (bytes 4 to 8 of its 9-byte header,
    ``hierfl.codecs.update_wire``) set to ``value``."""

    def attack(c: RecordDict) -> None:
        blob = _update(c).copy()
        blob[4:8] = np.frombuffer(np.float32(value).tobytes(), dtype=np.uint8)
        _set_update(c, blob)

    return attack


def _takeover(c: RecordDict) -> None:
    """1e15 claimed examples and weights near float32's maximum."""
    _fill_weights(c, 3e38)
    c.metric_records[METRICS]["num-examples"] = 10**15
    c.config_records[CHUNK]["trained"] = 10**15


def _rows(c: RecordDict, times: int) -> None:
    """Ship every row ``times`` over, claiming to have trained on them all."""
    _set_act(c, np.concatenate([_act(c)] * times))
    arrays = c.array_records[ACTIVATIONS]
    chunk, metrics = c.config_records[CHUNK], c.metric_records[METRICS]
    arrays["y"] = Array(np.concatenate([arrays["y"].numpy()] * times))
    chunk["trained"] = cast(int, chunk["trained"]) * times  # ints in an honest reply
    metrics["num-examples"] = cast(int, metrics["num-examples"]) * times


def _header_only(c: RecordDict, shape: tuple[int, ...], data: bytes = b"\x93NUMPY") -> None:
    c.array_records[ACTIVATIONS]["act"] = Array(
        dtype="float32", shape=shape, stype="numpy.ndarray", data=data
    )


def _set(record: str, key: str, value: object) -> Attack:
    def attack(c: RecordDict) -> None:
        # CHUNK or METRICS: the record itself refuses a value of a type it does not hold
        cast(MutableMapping[str, object], c[record])[key] = value

    return attack


def label_flip(num_classes: int, times: int = 2) -> Attack:
    """Every label moved to the next class, each row shipped ``times`` over (at an edge's cap
    of twice an even share, ``times=2`` is the most the cloud accepts)."""

    def attack(c: RecordDict) -> None:
        arrays = c.array_records[ACTIVATIONS]
        y = arrays["y"].numpy()
        arrays["y"] = Array(((y.astype(np.int64) + 1) % num_classes).astype(y.dtype))
        if times > 1:
            _rows(c, times)

    return attack


CRASH: dict[str, Attack] = {
    "link-s-string": _set(CHUNK, "link-s", "slow"),
    "batches-inf": _set(CHUNK, "batches", math.inf),
    "compute-s-nan": _set(CHUNK, "compute-s", math.nan),
    "negative-count": _set(CHUNK, "exit-correct", -5),
    "empty-array": lambda c: _header_only(c, (0,), b""),
    "not-npy": lambda c: _header_only(c, _act(c).shape, b"\0" * _act(c).nbytes),
    "declared-huge": lambda c: _header_only(c, (10**6, 10**6)),
    "extra-metric": _set(METRICS, "evil", 1.0),
    "extra-record": lambda c: c.__setitem__("evil", ArrayRecord({"x": Array(np.zeros(3))})),
    "missing-record": lambda c: c.__delitem__(METRICS),
    "float64-activations": lambda c: _set_act(c, _act(c).astype(np.float64)),
    "labels-out-of-range": lambda c: c.array_records[ACTIVATIONS].__setitem__(
        "y", Array(c.array_records[ACTIVATIONS]["y"].numpy() + 100)
    ),
    "partition-out-of-range": _set(CHUNK, "partition-id", 99),
    "stale-round": _set(CHUNK, "round", 7),
    "wrong-weight-shape": lambda c: c.array_records[ARRAYS].__setitem__(
        _first_weight(c), Array(np.zeros((2, 2), dtype=np.float32))
    ),
    "weight-dtype": lambda c: c.array_records[ARRAYS].__setitem__(
        _first_weight(c),
        Array(c.array_records[ARRAYS][_first_weight(c)].numpy().astype(np.float64)),
    ),
    "missing-weight": lambda c: c[ARRAYS].__delitem__(_first_weight(c)),
    "num-examples-mismatch": _set(METRICS, "num-examples", 10**9),
}
TAKEOVER: dict[str, Attack] = {
    "weight-takeover": _takeover,
    "huge-weights": lambda c: _fill_weights(c, 1e30),
    "nan-weights": lambda c: _fill_weights(c, math.nan),
    "extreme-activations": lambda c: _set_act(c, np.full_like(_act(c), 3.4e38)),
    "far-activations": lambda c: _set_act(c, _act(c) * 1e6),
    "rows-36x": lambda c: _rows(c, 36),
}
ATTACKS: dict[str, Attack] = {**CRASH, **TAKEOVER}
"""Attacks on a reply with fp32 weights (``weight-codec=fp32``) and fp32 activations."""
CODED: dict[str, Attack] = {
    "update-missing": lambda c: c[ARRAYS].__delitem__(UPDATE),
    "update-truncated": lambda c: _set_update(c, _update(c)[:-3]),
    "update-float32": lambda c: _set_update(c, _update(c).astype(np.float32)),
    "update-extra-bytes": lambda c: _set_update(c, np.concatenate([_update(c), _update(c)])),
    "update-scale-huge": _first_scale(1e30),  # finite, but the rebuilt weights are not sane
    "update-scale-nan": _first_scale(math.nan),
    "version-lie": _set(CHUNK, WEIGHTS_VERSION, 999),
    "checksum-lie": _set(CHUNK, WEIGHTS_CHECKSUM, "0" * 16),
    "weights-instead": lambda c: c.__setitem__(
        ARRAYS, ArrayRecord({"segment.0.0.weight": Array(np.zeros((32, 1, 3, 3), np.float32))})
    ),
}
"""Attacks on a reply with a coded weight update (``weight-codec=topk``, the default)."""


class MaliciousGrid(InProcessGrid):
    """Partition ``attacker`` answers each request with the next of ``attacks`` applied to its
    honest reply (None: an error reply, as from an edge that failed); the list cycles."""

    attacker = 0
    attacks: list[Attack | None] = []
    sent = 0

    def answer(self, message: Message) -> Message | None:
        reply = super().answer(message)
        node = self.nodes[message.metadata.dst_node_id]
        if node.stream.partition_id != self.attacker or reply is None or reply.has_error():
            return reply
        attack = self.attacks[self.sent % len(self.attacks)]
        self.sent += 1
        if attack is None:
            return Message(Error(code=0, reason="edge failed"), reply_to=message)
        attack(reply.content)
        return reply
