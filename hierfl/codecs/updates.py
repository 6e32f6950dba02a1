"""Compressed weight updates: top-k entries, quantized values, coded positions, error feedback.

An update (new weights minus the weights last exchanged) is encoded tensor by tensor:

- ``density`` keeps the largest-magnitude fraction of each tensor's entries (top-k, Deep Gradient
  Compression, Lin et al. 2018); 1 keeps them all (dense, no positions travel);
- ``values`` says how the kept entries travel: ``fp32``; ``q8``, symmetric 8-bit with one scale
  per tensor; or ``sign``, one bit each and one scale, the mean magnitude of the kept entries
  (Sparse Ternary Compression, Sattler et al. 2020);
- positions travel Golomb-Rice coded (``hierfl.codecs.positions``).

``ErrorFeedback`` keeps what was not sent and adds it to the next update (Karimireddy et al.
2019; Stich et al. 2018): over rounds, what was sent plus the residual equals the sum of the true
updates. ``decode`` checks each encoded tensor against the tensor it must fill before it
allocates anything.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass

import numpy as np
import torch

from hierfl.codecs import WEIGHT_VALUES
from hierfl.codecs.positions import decode_positions, encode_positions
from hierfl.errors import ChunkRejected

VALUE_CODECS = WEIGHT_VALUES
Q8_LEVELS = 127
_VALUE_DTYPES = {"fp32": np.float32, "q8": np.int8, "sign": np.uint8}


@dataclass(frozen=True)
class UpdateCodec:
    """How an update travels: the share of entries kept per tensor, and how their values go."""

    density: float = 1.0
    values: str = "fp32"

    def __post_init__(self) -> None:
        if not 0 < self.density <= 1:
            raise ValueError(f"density must be in (0, 1], got {self.density}")
        if self.values not in VALUE_CODECS:
            raise ValueError(f"values must be one of {', '.join(VALUE_CODECS)}, got {self.values}")

    def kept(self, size: int) -> int:
        """Entries kept of a tensor of ``size`` (at least one of a non-empty tensor)."""
        return size if self.density >= 1 else min(size, max(1, math.ceil(self.density * size)))


@dataclass(frozen=True)
class EncodedTensor:
    """One tensor's update as it travels: ``count`` values, their positions unless dense."""

    values: str  # the value codec
    count: int
    values_data: np.ndarray  # float32 [count], int8 [count] or uint8 [ceil(count / 8)]
    scale: float = 1.0
    positions: np.ndarray | None = None  # Rice-coded (uint8); None: dense
    rice_bits: int = 0

    @property
    def nbytes(self) -> int:
        """Payload bytes: values, positions and the scale (names and shapes come from the model)."""
        positions = 0 if self.positions is None else self.positions.nbytes
        return self.values_data.nbytes + positions + (4 if self.values != "fp32" else 0)


def encode_tensor(update: torch.Tensor, codec: UpdateCodec) -> EncodedTensor:
    """``update``'s top entries (all when dense), their values quantized as ``codec`` says."""
    if not update.is_floating_point():
        raise ValueError(f"updates are floating-point tensors, got {update.dtype}")
    flat = update.detach().to(torch.float32).flatten().cpu()
    count = codec.kept(flat.numel())
    positions, bits = None, 0
    if count < flat.numel():
        top = torch.topk(flat.abs(), count, sorted=False).indices.sort().values
        positions, bits = encode_positions(top.numpy(), flat.numel())
        flat = flat[top]
    data, scale = _quantize(flat.numpy(), codec.values)
    return EncodedTensor(codec.values, count, data, scale, positions, bits)


def decode_tensor(
    encoded: EncodedTensor, shape: tuple[int, ...], codec: UpdateCodec | None = None
) -> torch.Tensor:
    """The dense float32 update of ``shape`` that ``encoded`` stands for.

    With the run's ``codec`` the count and the value codec must be exactly what it sends, so a
    reply cannot make the receiver decode more than the run's own updates.

    Raises:
        ChunkRejected: anything that does not fit a tensor of ``shape`` (count, positions,
            value dtype or length, a non-finite scale), found before the tensor is allocated.
    """
    size = math.prod(shape)
    if encoded.values not in VALUE_CODECS:
        raise ChunkRejected(f"unknown value codec {encoded.values!r}")
    if codec is not None and (encoded.values, encoded.count) != (codec.values, codec.kept(size)):
        raise ChunkRejected(
            f"{encoded.count} {encoded.values} values for a tensor of {size}; this run sends "
            f"{codec.kept(size)} {codec.values}"
        )
    if not 0 <= encoded.count <= size or (encoded.positions is None and encoded.count != size):
        raise ChunkRejected(f"{encoded.count} values for a tensor of {size}")
    if not math.isfinite(encoded.scale):
        raise ChunkRejected("a non-finite scale")
    values = _dequantize(encoded)
    out = torch.zeros(size, dtype=torch.float32)
    if encoded.positions is None:
        out[:] = torch.from_numpy(values)
    else:
        index = decode_positions(encoded.positions, encoded.count, encoded.rice_bits, size)
        out[torch.from_numpy(index)] = torch.from_numpy(values)
    return out.reshape(shape)


def _quantize(values: np.ndarray, kind: str) -> tuple[np.ndarray, float]:
    if kind == "fp32":
        return values.astype(np.float32), 1.0
    if kind == "q8":
        peak = float(np.abs(values).max()) if values.size else 0.0
        scale = peak / Q8_LEVELS if peak else 1.0
        return np.clip(np.round(values / scale), -Q8_LEVELS, Q8_LEVELS).astype(np.int8), scale
    scale = float(np.abs(values).mean()) if values.size else 0.0
    return np.packbits(values >= 0), scale


def _dequantize(encoded: EncodedTensor) -> np.ndarray:
    data, count = encoded.values_data, encoded.count
    want = _VALUE_DTYPES[encoded.values]
    length = math.ceil(count / 8) if encoded.values == "sign" else count
    if data.dtype != want or data.ndim != 1 or data.size != length:
        raise ChunkRejected(
            f"{encoded.values} values: {data.dtype} [{data.size}], expected {np.dtype(want)} "
            f"[{length}]"
        )
    if encoded.values == "fp32":
        if not np.isfinite(data).all():
            raise ChunkRejected("non-finite update values")
        return data.astype(np.float32)
    if encoded.values == "q8":
        return data.astype(np.float32) * np.float32(encoded.scale)
    signs = np.unpackbits(data)[:count].astype(np.float32) * 2 - 1
    return signs * np.float32(encoded.scale)


def encode_update(
    update: Mapping[str, torch.Tensor], codec: UpdateCodec
) -> dict[str, EncodedTensor]:
    """Every tensor of ``update``, encoded."""
    return {name: encode_tensor(t, codec) for name, t in update.items()}


def decode_update(
    encoded: Mapping[str, EncodedTensor],
    shapes: Mapping[str, tuple[int, ...]],
    codec: UpdateCodec | None = None,
) -> dict[str, torch.Tensor]:
    """The dense update, checked against ``shapes``: exactly the expected tensor names."""
    if set(encoded) != set(shapes):
        missing, extra = sorted(set(shapes) - set(encoded)), sorted(set(encoded) - set(shapes))
        raise ChunkRejected(f"update tensors: missing {missing}, unexpected {extra}")
    return {name: decode_tensor(encoded[name], tuple(shapes[name]), codec) for name in shapes}


def update_nbytes(encoded: Mapping[str, EncodedTensor]) -> int:
    return sum(e.nbytes for e in encoded.values())


class ErrorFeedback:
    """What earlier updates left unsent, added to the next one before it is encoded."""

    def __init__(self, residual: Mapping[str, torch.Tensor] | None = None) -> None:
        self.residual = {k: v.clone() for k, v in (residual or {}).items()}

    def encode(
        self, update: Mapping[str, torch.Tensor], codec: UpdateCodec
    ) -> tuple[dict[str, EncodedTensor], dict[str, torch.Tensor]]:
        """Encode ``update`` plus the residual; return the encoding and what it decodes to (what
        the receiver applies). The rest becomes the new residual."""
        encoded, sent = {}, {}
        for name, tensor in update.items():
            corrected = tensor.detach().to(torch.float32).cpu()
            if name in self.residual:
                corrected = corrected + self.residual[name]
            encoded[name] = encode_tensor(corrected, codec)
            sent[name] = decode_tensor(encoded[name], tuple(corrected.shape))
            self.residual[name] = corrected - sent[name]
        return encoded, sent

    def state_dict(self) -> dict[str, torch.Tensor]:
        return dict(self.residual)
