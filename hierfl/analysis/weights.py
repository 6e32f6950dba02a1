"""What the edge-weight exchange costs a round, and where hierarchical training breaks even.

A round moves an edge's weights twice: the cloud's change down, the edge's update up. With
``weight-codec=fp32`` both are the full fp32 weights; with ``topk`` each is ``density`` of the
entries, their values (1 byte each for ``q8``, 4 for ``fp32``, 1 bit for ``sign``) and their
positions, Golomb-Rice coded at about ``b + 2`` bits each (``hierfl.codecs.positions``), plus a
9-byte header per tensor and the 128-byte header of the one array. An estimate from the
parameter count: tensors too small for ``density`` still send one entry each.

Break-even: per edge and round, hierarchical training ships ``n`` samples' codes plus the
weights, cloud-only ``n`` inputs as stored; below ``weights / (input - code)`` samples per edge
per round, uploading the inputs ships fewer bytes (never, when a code is no smaller than the
input).
"""

from __future__ import annotations

import math

from hierfl.codecs import auto_density
from hierfl.codecs.positions import rice_bits

NPY_HEADER_BYTES = 128
TENSOR_HEADER_BYTES = 9
_VALUE_BYTES = {"fp32": 4.0, "q8": 1.0, "sign": 1 / 8}


def message_bytes(
    params: int, codec: str = "topk", density: float = 0.001, values: str = "q8", tensors: int = 0
) -> float:
    """Bytes of one weight message (either way) for ``params`` exchanged parameters."""
    if codec == "fp32":
        return 4.0 * params + NPY_HEADER_BYTES * max(tensors, 1)
    density = density or auto_density(params)
    kept = params if density >= 1 else min(params, math.ceil(density * params))
    position_bits = 0 if kept >= params else rice_bits(kept, params) + 2
    payload = kept * (_VALUE_BYTES[values] + position_bits / 8)
    return payload + TENSOR_HEADER_BYTES * tensors + NPY_HEADER_BYTES


def round_bytes(
    params: int,
    codec: str = "topk",
    density: float = 0.001,
    values: str = "q8",
    *,
    sync_every: int = 1,
    tensors: int = 0,
) -> float:
    """Weight bytes per edge per round, both ways, averaged over ``sync-every`` rounds."""
    return 2 * message_bytes(params, codec, density, values, tensors) / sync_every


def break_even(weight_bytes_per_round: float, code_bytes: float, input_bytes: float) -> float:
    """Samples per edge per round above which hierarchical training ships fewer bytes than
    uploading the inputs (``math.inf``: never)."""
    saved = input_bytes - code_bytes
    return weight_bytes_per_round / saved if saved > 0 else math.inf
