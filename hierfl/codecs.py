"""Activation codecs for the uplink: fp32 (identity), fp16 and per-channel int8, by name.

An edge encodes the activations at the cut before shipping them and the cloud decodes them back
to float32; ``Encoded.nbytes`` is what the link carries, scales included, and is the figure to
feed the runtime model (``hierfl.runtime.costs_from_flops(activation_scale=...)``).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import torch

from hierfl.errors import HierflError, UnknownNameError

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

    @property
    def shape(self) -> tuple[int, ...]:
        return tuple(self.data.shape)

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


CODECS: dict[str, Codec] = {
    "fp32": Codec("fp32", _encode_fp32, _decode_cast),
    "fp16": Codec("fp16", _encode_fp16, _decode_cast),
    "int8": Codec("int8", _encode_int8, _decode_int8),
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
