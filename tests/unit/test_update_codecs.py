"""Compressed weight updates: round trips on every model's tensors, error feedback, byte counts,
and hostile encodings refused before anything is allocated."""

from __future__ import annotations

import math
import tracemalloc

import numpy as np
import pytest
import torch

from hierfl.codecs.positions import decode_positions, encode_positions
from hierfl.codecs.updates import (
    EncodedTensor,
    ErrorFeedback,
    UpdateCodec,
    decode_tensor,
    decode_update,
    encode_tensor,
    encode_update,
    update_nbytes,
)
from hierfl.errors import ChunkRejected
from hierfl.models import create_model, list_models

SHAPES = {"small-cnn": (1, 8, 8), "vgg16": (3, 32, 32), "resnet18": (3, 32, 32)}
CODECS = [
    UpdateCodec(),
    UpdateCodec(0.01),
    UpdateCodec(0.01, "q8"),
    UpdateCodec(0.001, "sign"),
    UpdateCodec(1.0, "q8"),
]


def _updates(name: str) -> dict[str, torch.Tensor]:
    """A random update of every float tensor of model ``name``'s edge (scaled like weights)."""
    model = create_model(name, cut="", num_classes=10, input_shape=SHAPES[name], seed=0)
    g = torch.Generator().manual_seed(1)
    return {
        k: torch.randn(v.shape, generator=g) * 0.01
        for k, v in model.edge.state_dict().items()
        if v.is_floating_point()
    }


def _expected(update: torch.Tensor, codec: UpdateCodec) -> tuple[torch.Tensor, torch.Tensor]:
    """Which entries are kept (the largest magnitudes) and their exact values, independently."""
    flat = update.flatten()
    k = codec.kept(flat.numel())
    order = np.argsort(-np.abs(flat.numpy()), kind="stable")[:k]
    kept = torch.zeros(flat.numel(), dtype=torch.bool)
    kept[torch.from_numpy(order)] = True
    return kept, flat


@pytest.mark.parametrize("name", list_models())
@pytest.mark.parametrize("codec", CODECS, ids=lambda c: f"{c.density}-{c.values}")
def test_every_codec_round_trips_every_tensor_of_every_model(name, codec):
    for tensor_name, update in _updates(name).items():
        encoded = encode_tensor(update, codec)
        decoded = decode_tensor(encoded, tuple(update.shape), codec)
        assert decoded.shape == update.shape, tensor_name
        kept, flat = _expected(update, codec)
        out = decoded.flatten()
        assert torch.all(out[~kept] == 0), tensor_name  # only the top entries travel
        if codec.values == "fp32":
            assert torch.equal(out[kept], flat[kept]), tensor_name  # exact
        elif codec.values == "q8":
            step = flat[kept].abs().max() / 127
            assert torch.all((out[kept] - flat[kept]).abs() <= step / 2 + 1e-9), tensor_name
        else:
            scale = flat[kept].abs().mean()
            assert torch.allclose(out[kept].abs(), scale.expand(int(kept.sum())))
            assert torch.all(torch.sign(out[kept]) == torch.where(flat[kept] >= 0, 1.0, -1.0))


def test_positions_round_trip_at_every_density_and_edge():
    rng = np.random.default_rng(0)
    for size, count in ((1, 0), (1, 1), (10, 10), (1000, 1), (100_000, 100), (100_000, 50_000)):
        idx = np.sort(rng.choice(size, count, replace=False))
        stream, b = encode_positions(idx, size)
        assert np.array_equal(decode_positions(stream, count, b, size), idx)
    stream, b = encode_positions(np.array([0, 99_999]), 100_000)  # the first and the last
    assert decode_positions(stream, 2, b, 100_000).tolist() == [0, 99_999]


def test_positions_cost_about_log2_of_the_gap_plus_two_bits():
    size = 2_359_296  # ResNet-18's largest tensor at layer3
    for density in (0.001, 0.01):
        count = math.ceil(density * size)
        idx = np.sort(np.random.default_rng(1).choice(size, count, replace=False))
        stream, _ = encode_positions(idx, size)
        bits = 8 * stream.nbytes / count
        assert bits <= math.log2(1 / density) + 2.5  # a plain int32 index costs 32


def test_error_feedback_sends_the_sum_of_the_updates_over_rounds():
    """Sum over rounds of what was sent, plus the residual, equals the sum of the true updates."""
    g = torch.Generator().manual_seed(0)
    feedback, codec = ErrorFeedback(), UpdateCodec(0.05, "q8")
    true = {"w": torch.zeros(40, 30), "b": torch.zeros(30)}
    sent = {k: torch.zeros_like(v) for k, v in true.items()}
    for _ in range(6):
        update = {k: torch.randn(v.shape, generator=g) for k, v in true.items()}
        _, decoded = feedback.encode(update, codec)
        for k in true:
            true[k] += update[k]
            sent[k] += decoded[k]
    for k in true:
        assert torch.allclose(sent[k] + feedback.residual[k], true[k], atol=1e-5)
        assert feedback.residual[k].abs().sum() > 0  # most of it did not travel yet
    again = ErrorFeedback(feedback.state_dict())  # what a node-local folder keeps
    assert all(torch.equal(again.residual[k], feedback.residual[k]) for k in true)


def test_bytes_counted_are_the_payload_arrays():
    update = _updates("small-cnn")
    for codec in CODECS:
        encoded = encode_update(update, codec)
        arrays = sum(
            e.values_data.nbytes + (e.positions.nbytes if e.positions is not None else 0)
            for e in encoded.values()
        )
        scales = 4 * len(encoded) if codec.values != "fp32" else 0
        assert update_nbytes(encoded) == arrays + scales
    dense = sum(4 * v.numel() for v in update.values())
    assert update_nbytes(encode_update(update, UpdateCodec())) == dense
    assert update_nbytes(encode_update(update, UpdateCodec(0.001, "sign"))) < dense / 100


RUN = UpdateCodec(0.01, "q8")


def _encoded(size: int = 1000, codec: UpdateCodec = RUN) -> EncodedTensor:
    return encode_tensor(torch.randn(size, generator=torch.Generator().manual_seed(0)), codec)


def _with(e: EncodedTensor, **changes: object) -> EncodedTensor:
    fields = {k: getattr(e, k) for k in e.__dataclass_fields__}
    return EncodedTensor(**{**fields, **changes})  # type: ignore[arg-type]


def _positions(e: EncodedTensor, indices: np.ndarray, size: int) -> EncodedTensor:
    """``e`` with positions coded for a larger tensor than the one it must fill."""
    stream, bits = encode_positions(indices, size)
    return _with(e, positions=stream, rice_bits=bits)


HOSTILE = {
    "count above the tensor": lambda e: _with(e, count=2000),
    "negative count": lambda e: _with(e, count=-1),
    "count of 10^12": lambda e: _with(e, count=10**12),
    "wrong value dtype": lambda e: _with(e, values_data=e.values_data.astype(np.float64)),
    "too few values": lambda e: _with(e, values_data=e.values_data[:-1]),
    "truncated positions": lambda e: _with(e, positions=e.positions[:1]),
    "positions past the end": lambda e: _positions(e, np.arange(1990, 2000), 2000),
    "oversized positions stream": lambda e: _with(e, positions=np.zeros(10**6, np.uint8)),
    "huge Rice parameter": lambda e: _with(e, rice_bits=10**6),
    "non-finite scale": lambda e: _with(e, scale=float("nan")),
    "unknown value codec": lambda e: _with(e, values="fp64"),
    "a position past the end, within the length bound": lambda e: _positions(
        e, np.array([0, 1, 2, 3, 4, 5, 6, 7, 8, 1003]), 1004
    ),
}


@pytest.mark.parametrize("attack", sorted(HOSTILE))
def test_a_hostile_encoding_is_refused_without_allocating_beyond_the_tensor(attack):
    hostile = HOSTILE[attack](_encoded())
    tracemalloc.start()
    try:
        with pytest.raises(ChunkRejected):
            decode_tensor(hostile, (1000,))
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert peak < 2_000_000  # far below what a claimed 10^12 entries would take


def test_the_runs_codec_fixes_count_and_value_kind():
    encoded = _encoded(codec=UpdateCodec(0.05, "q8"))  # more than the run's 1 %
    with pytest.raises(ChunkRejected, match="this run sends 10 q8"):
        decode_tensor(encoded, (1000,), UpdateCodec(0.01, "q8"))


def test_an_update_must_name_exactly_the_models_tensors():
    update = {"a": torch.ones(3), "b": torch.ones(2)}
    encoded = encode_update(update, UpdateCodec())
    with pytest.raises(ChunkRejected, match="missing"):
        decode_update(encoded, {"a": (3,), "b": (2,), "c": (4,)})
    with pytest.raises(ChunkRejected, match="unexpected"):
        decode_update(encoded, {"a": (3,)})
    back = decode_update(encoded, {"a": (3,), "b": (2,)})
    assert torch.equal(back["a"], update["a"]) and torch.equal(back["b"], update["b"])
