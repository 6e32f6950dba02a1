"""Positions of a sparse update as few bits: gaps between sorted indices, Golomb-Rice coded.

Top-k positions of an update are close to uniformly spread over a tensor, so the gaps between
them are close to geometric, for which a Golomb-Rice code is near optimal: gap ``g`` is written as
``g >> b`` ones and a zero (unary), then the low ``b`` bits of ``g``, with ``b`` about
``log2(mean gap)``. That is about ``b + 2`` bits an index, e.g. 12 bits at 0.1 % density where a
plain index costs 32 (Sparse Ternary Compression, Sattler et al. 2020, codes its positions so).

Decoding checks every bound before it allocates: the count against the tensor's size, the
stream's length against what that count can need, and each index against the tensor's size.
"""

from __future__ import annotations

import numpy as np

from hierfl.errors import ChunkRejected

MAX_RICE_BITS = 40


def rice_bits(count: int, size: int) -> int:
    """The Rice parameter for ``count`` positions among ``size``: about log2 of the mean gap."""
    if count <= 0 or size <= count:
        return 0
    return max(int(np.floor(np.log2(size / count * np.log(2)))), 0)


def encode_positions(indices: np.ndarray, size: int) -> tuple[np.ndarray, int]:
    """Strictly increasing ``indices`` in ``[0, size)`` as a Rice-coded byte stream (uint8) and
    its parameter ``b``."""
    idx = np.asarray(indices, dtype=np.int64)
    if idx.size and (idx[0] < 0 or idx[-1] >= size or np.any(np.diff(idx) <= 0)):
        raise ValueError("positions must be strictly increasing and inside the tensor")
    b = rice_bits(int(idx.size), size)
    gaps = np.diff(idx, prepend=-1) - 1  # >= 0
    quotients = gaps >> b
    lengths = quotients + 1 + b
    starts = np.concatenate([[0], np.cumsum(lengths)[:-1]]) if idx.size else np.zeros(0, np.int64)
    bits = np.zeros(int(lengths.sum()), dtype=np.uint8)
    ones = np.repeat(starts, quotients) + _ranges(quotients)
    bits[ones] = 1
    for j in range(b):  # the remainders, most significant bit first
        bits[starts + quotients + 1 + j] = (gaps >> (b - 1 - j)) & 1
    return np.packbits(bits), b


def decode_positions(stream: np.ndarray, count: int, b: int, size: int) -> np.ndarray:
    """The ``count`` indices ``encode_positions`` coded into ``stream``.

    Raises:
        ChunkRejected: a count, parameter or stream that cannot describe ``count`` strictly
            increasing positions inside a tensor of ``size`` entries.
    """
    if not 0 <= count <= size:
        raise ChunkRejected(f"{count} positions in a tensor of {size}")
    if not 0 <= b <= MAX_RICE_BITS:
        raise ChunkRejected(f"Rice parameter {b} outside 0..{MAX_RICE_BITS}")
    most = count * (1 + b) + (size >> b) + 1  # bits that count gaps within size can take
    if stream.dtype != np.uint8 or stream.ndim != 1 or stream.size * 8 > most + 7:
        raise ChunkRejected(f"a positions stream of {stream.size} bytes for {count} positions")
    if not count:
        return np.zeros(0, dtype=np.int64)
    bits = np.unpackbits(stream)
    zeros = np.flatnonzero(bits == 0)
    indices = np.empty(count, dtype=np.int64)
    position, previous = 0, -1
    weights = 1 << np.arange(b - 1, -1, -1, dtype=np.int64)
    for i in range(count):
        k = np.searchsorted(zeros, position)
        if k == zeros.size or zeros[k] + 1 + b > bits.size:
            raise ChunkRejected("the positions stream ends early")
        stop = int(zeros[k])
        remainder = int(bits[stop + 1 : stop + 1 + b] @ weights) if b else 0
        previous += (((stop - position) << b) | remainder) + 1
        if previous >= size:
            raise ChunkRejected(f"position {previous} outside a tensor of {size}")
        indices[i] = previous
        position = stop + 1 + b
    return indices


def _ranges(counts: np.ndarray) -> np.ndarray:
    """``0..c-1`` for each ``c`` in ``counts``, concatenated."""
    total = int(counts.sum())
    if not total:
        return np.zeros(0, dtype=np.int64)
    ends = np.cumsum(counts)
    return np.arange(total) - np.repeat(ends - counts, counts)
