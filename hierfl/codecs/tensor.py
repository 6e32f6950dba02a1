"""Activation codecs for the uplink: fp32 (identity), fp16, per-channel int8, and a bottleneck's
integer codes (``code8``, ``code4``), by name.

An edge encodes the activations at the cut before shipping them and the cloud decodes them back
to float32; ``Encoded.nbytes`` is what the link carries, scales included, and is the figure to
feed the performance model (``hierfl.analysis.performance.costs_from_flops(activation_scale=...)``).
The code grid (``to_codes``, ``dequantize``) is defined here; the bottleneck's quantizer
(``hierfl.models.bottleneck``) computes with exactly the values the cloud decodes.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass

import torch

from hierfl.errors import HierflError, UnknownNameError


def levels(bits: int) -> int:
    return 2**bits


def dequantize(codes: torch.Tensor, bits: int) -> torch.Tensor:
    """Integer codes ``0 .. 2**bits - 1`` as the float32 values the cloud decodes."""
    return codes.to(torch.float32) / (levels(bits) - 1)


def to_codes(values: torch.Tensor, bits: int) -> torch.Tensor:
    """Values in [0, 1] as the nearest integer codes (uint8)."""
    top = levels(bits) - 1
    return torch.round(values.detach().to(torch.float32) * top).clamp_(0, top).to(torch.uint8)


INT8_LEVELS = 127
"""Symmetric int8 uses -127..127, so that +max and -max are both exact and -128 is unused."""
FP16_MAX = torch.finfo(torch.float16).max


class CodecError(HierflError, ValueError):
    """A tensor cannot be encoded with the chosen codec; the message says why and what to use."""


@dataclass(frozen=True)
class Encoded:
    """A tensor as a codec packs it: the payload, and for ``int8`` one scale per channel.

    ``data`` has the original shape; ``scale`` (float32, one value per channel along ``dim``)
    multiplies it back. ``dim`` is ``None`` when one scale covers the whole tensor.
    """

    codec: str
    data: torch.Tensor
    scale: torch.Tensor | None = None
    dim: int | None = None
    shape: tuple[int, ...] | None = None  # the tensor's shape, when ``data`` is packed

    @property
    def shape_of(self) -> tuple[int, ...]:
        """The decoded tensor's shape."""
        return tuple(self.shape) if self.shape is not None else tuple(self.data.shape)

    @property
    def nbytes(self) -> int:
        """Payload bytes on the wire: the data plus the scales; names and shapes are not counted."""
        total = self.data.numel() * self.data.element_size()
        if self.scale is not None:
            total += self.scale.numel() * self.scale.element_size()
        return total


@dataclass(frozen=True)
class Codec:
    """A named pair of functions; ``decode(encode(x))`` approximates ``x`` as float32."""

    name: str
    encode: Callable[[torch.Tensor], Encoded]
    decode: Callable[[Encoded], torch.Tensor]


def _check_float(name: str, tensor: torch.Tensor) -> None:
    if not tensor.is_floating_point():
        raise CodecError(f"codec {name!r} encodes floating-point tensors, got {tensor.dtype}")


def _encode_fp32(tensor: torch.Tensor) -> Encoded:
    _check_float("fp32", tensor)
    return Encoded("fp32", tensor.detach().to(torch.float32))


def _encode_fp16(tensor: torch.Tensor) -> Encoded:
    _check_float("fp16", tensor)
    peak = tensor.detach().abs().max().item() if tensor.numel() else 0.0
    if not peak <= FP16_MAX:  # also catches inf and nan
        raise CodecError(
            f"codec 'fp16': values up to {peak} do not fit fp16 (max {FP16_MAX:.0f}); "
            "use 'int8', which scales per channel, or 'fp32'"
        )
    return Encoded("fp16", tensor.detach().to(torch.float16))


def _channel_dim(tensor: torch.Tensor) -> int | None:
    """Dim 1 (channels of NCHW, features of NC) when there is one; else one scale for all."""
    return 1 if tensor.dim() >= 2 else None


def _encode_int8(tensor: torch.Tensor) -> Encoded:
    """Symmetric per-channel quantisation: ``scale = max|x| / 127``, ``q = round(x / scale)``.

    Rounding to the nearest level keeps every error within ``scale / 2`` of its channel. An
    all-zero channel gets scale 0 and decodes to zeros exactly.
    """
    _check_float("int8", tensor)
    x = tensor.detach().to(torch.float32)
    if not bool(torch.isfinite(x).all()):
        raise CodecError("codec 'int8': the tensor holds inf or nan, which no scale represents")
    dim = _channel_dim(x)
    if dim is None:
        peak = x.abs().amax() if x.numel() else torch.zeros((), device=x.device)
        scale = (peak / INT8_LEVELS).reshape(1)
        divisor = scale
    else:
        others = [d for d in range(x.dim()) if d != dim]
        peak = x.abs().amax(dim=others) if x.numel() else torch.zeros(x.shape[dim], device=x.device)
        scale = peak / INT8_LEVELS
        view = [1] * x.dim()
        view[dim] = -1
        divisor = scale.reshape(view)
    safe = torch.where(divisor > 0, divisor, torch.ones_like(divisor))
    q = torch.round(x / safe).clamp_(-INT8_LEVELS, INT8_LEVELS).to(torch.int8)
    return Encoded("int8", q, scale, dim)


def _decode_cast(encoded: Encoded) -> torch.Tensor:
    return encoded.data.to(torch.float32)


def _decode_int8(encoded: Encoded) -> torch.Tensor:
    if encoded.scale is None:
        raise CodecError("codec 'int8': the encoded tensor carries no scale")
    scale = encoded.scale
    if encoded.dim is not None:
        view = [1] * encoded.data.dim()
        view[encoded.dim] = -1
        scale = scale.reshape(view)
    return encoded.data.to(torch.float32) * scale


def _code_codec(bits: int) -> Codec:
    """A bottleneck's codes (values ``k / (2**bits - 1)``) as integers; 4-bit codes are packed
    two to a byte. Lossless for values on that grid (``hierfl.models.bottleneck``)."""
    name = f"code{bits}"

    def encode_codes(tensor: torch.Tensor) -> Encoded:
        _check_float(name, tensor)
        codes = to_codes(tensor, bits)
        data = pack4(codes.flatten()) if bits == 4 else codes
        return Encoded(name, data, shape=tuple(tensor.shape))

    def decode_codes(encoded: Encoded) -> torch.Tensor:
        shape = encoded.shape_of
        codes = (
            unpack4(encoded.data, math.prod(shape)).reshape(shape) if bits == 4 else encoded.data
        )
        return dequantize(codes, bits)

    return Codec(name, encode_codes, decode_codes)


def pack4(codes: torch.Tensor) -> torch.Tensor:
    """4-bit codes (uint8 values 0..15) packed two to a byte, first in the low nibble.

    >>> pack4(torch.tensor([1, 2, 15], dtype=torch.uint8)).tolist()
    [33, 15]
    """
    flat = codes.flatten().to(torch.uint8)
    if flat.numel() % 2:
        flat = torch.cat([flat, flat.new_zeros(1)])
    return flat[0::2] | (flat[1::2] << 4)


def unpack4(packed: torch.Tensor, count: int) -> torch.Tensor:
    """The first ``count`` 4-bit codes of ``pack4``'s output."""
    low, high = packed & 0x0F, packed >> 4
    return torch.stack([low, high], dim=1).flatten()[:count]


CODECS: dict[str, Codec] = {
    "fp32": Codec("fp32", _encode_fp32, _decode_cast),
    "fp16": Codec("fp16", _encode_fp16, _decode_cast),
    "int8": Codec("int8", _encode_int8, _decode_int8),
    "code8": _code_codec(8),
    "code4": _code_codec(4),
}


def get_codec(name: str) -> Codec:
    """The codec called ``name``.

    Raises:
        UnknownNameError: ``name`` is not a key of ``CODECS``; the message lists them.
    """
    codec = CODECS.get(name)
    if codec is None:
        raise UnknownNameError("codec", name, list(CODECS))
    return codec


def encode(name: str, tensor: torch.Tensor) -> Encoded:
    """Pack ``tensor`` (detached) with codec ``name``, for sending.

    >>> e = encode("int8", torch.tensor([[1.0, -2.0], [0.5, 4.0]]))
    >>> e.data.dtype, e.nbytes  # 4 int8 values + 2 float32 scales
    (torch.int8, 12)
    """
    return get_codec(name).encode(tensor)


def decode(encoded: Encoded) -> torch.Tensor:
    """Unpack ``encoded`` into a float32 tensor of the original shape, on the same device."""
    return get_codec(encoded.codec).decode(encoded)
