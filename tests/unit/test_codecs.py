"""Activation codecs: round-trip error bounds, payload sizes and zero channels."""

from __future__ import annotations

import pytest
import torch

from hierfl.codecs.tensor import CODECS, CodecError, decode, encode
from hierfl.errors import ConfigError, UnknownNameError


def _activations(shape: tuple[int, ...] = (8, 16, 4, 4)) -> torch.Tensor:
    """Channels 10**-3 .. 10**3 apart in magnitude: a per-tensor scale would fail them."""
    gen = torch.Generator().manual_seed(0)
    x = torch.randn(shape, generator=gen)
    magnitudes = torch.logspace(-3, 3, shape[1])
    return x * magnitudes.reshape(1, -1, *([1] * (len(shape) - 2)))


def test_codecs_by_name():
    assert sorted(CODECS) == ["code4", "code8", "fp16", "fp32", "int8"]


def test_fp32_is_identity():
    x = _activations()
    e = encode("fp32", x)
    assert torch.equal(decode(e), x)
    assert e.nbytes == x.numel() * 4


def test_fp16_round_trip_and_half_the_bytes():
    x = _activations()
    e = encode("fp16", x)
    y = decode(e)
    assert y.dtype == torch.float32 and y.shape == x.shape
    # Round to nearest: relative error <= 2**-11 for normal fp16, absolute 2**-25 below.
    assert bool(((y - x).abs() <= x.abs() * 2**-11 + 2**-24).all())
    assert e.nbytes * 2 == encode("fp32", x).nbytes


def test_fp16_overflow_is_an_error():
    with pytest.raises(CodecError, match="int8"):
        encode("fp16", torch.tensor([1.0, 1e6]))


@pytest.mark.parametrize("shape", [(8, 16, 4, 4), (32, 16)])
def test_int8_error_is_at_most_half_a_step_per_channel(shape):
    x = _activations(shape)
    y = decode(encode("int8", x))
    assert y.dtype == torch.float32 and y.shape == x.shape
    for c in range(shape[1]):
        channel = x.select(1, c)
        step = channel.abs().max().item() / 127  # computed here, not read from the codec
        error = (y.select(1, c) - channel).abs().max().item()
        assert error <= step / 2 * (1 + 1e-5)


def test_int8_bytes_are_a_quarter_plus_one_scale_per_channel():
    x = _activations((8, 16, 4, 4))
    e = encode("int8", x)
    assert e.data.dtype == torch.int8
    assert e.nbytes == x.numel() + 16 * 4  # 2048 values + 16 float32 scales
    assert e.nbytes / encode("fp32", x).nbytes == pytest.approx(0.25 + 16 / 2048)


def test_int8_zero_channel_and_zero_tensor_decode_to_zeros():
    x = _activations((4, 6, 3, 3))
    x[:, 2] = 0.0
    y = decode(encode("int8", x))
    assert torch.isfinite(y).all()
    assert torch.equal(y[:, 2], torch.zeros_like(y[:, 2]))
    zeros = torch.zeros(2, 3, 2, 2)
    assert torch.equal(decode(encode("int8", zeros)), zeros)


def test_int8_one_dimensional_uses_one_scale():
    x = torch.tensor([0.5, -1.27, 0.0])
    e = encode("int8", x)
    assert e.scale is not None and e.scale.numel() == 1
    assert torch.allclose(decode(e), x, atol=0.01 / 2 + 1e-7)


def test_int8_rejects_non_finite_and_integer_tensors():
    with pytest.raises(CodecError, match="inf or nan"):
        encode("int8", torch.tensor([[1.0, float("nan")]]))
    with pytest.raises(CodecError, match="floating-point"):
        encode("int8", torch.ones(2, 2, dtype=torch.int64))


def test_unknown_codec_lists_the_allowed_names():
    with pytest.raises(UnknownNameError, match="fp16, fp32, int8") as info:
        encode("bf8", torch.ones(1))
    assert isinstance(info.value, ConfigError) and info.value.key == "codec"
