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
    next_zero = _next_zero(bits)
    starts = _codeword_starts(next_zero, count, b)
    if starts is None:
        raise ChunkRejected("the positions stream ends early")
    stops = next_zero[starts]  # each codeword's unary part ends at its first zero
    gaps = (stops - starts) << b
    for j in range(b):  # the remainders, most significant bit first
        gaps |= bits[stops + 1 + j].astype(np.int64) << (b - 1 - j)
    indices = np.cumsum(gaps + 1) - 1
    if indices[-1] >= size:
        raise ChunkRejected(f"position {int(indices[-1])} outside a tensor of {size}")
    return indices


def _next_zero(bits: np.ndarray) -> np.ndarray:
    """For each position 0..len(bits), the first zero bit at or after it (len(bits): none)."""
    n = bits.size
    at = np.where(bits == 0, np.arange(n), n)
    return np.append(np.minimum.accumulate(at[::-1])[::-1], n)


def _codeword_starts(next_zero: np.ndarray, count: int, b: int) -> np.ndarray | None:
    """Where each of the first ``count`` codewords starts (None: the stream ends before them),
    from ``_next_zero`` of the stream's bits.

    A codeword starting at p ends b bits after its first zero, which gives the next start: a
    jump table over every bit position, walked for all codewords at once by pointer doubling
    (log2(count) whole-array steps instead of a Python step per codeword).
    """
    n = next_zero.size - 1  # the stream's bits
    end = n + 1  # "past the stream": a codeword that does not fit
    jump = next_zero + 1 + b
    jump[jump > n] = end  # no zero left, or its remainder cut short
    jump = np.append(jump, end)  # the end stays at the end
    starts, power = np.zeros(1, dtype=np.int64), jump  # power: ``jump`` applied len(starts) times
    while starts.size < count:
        starts = np.concatenate([starts, power[starts]])
        power = power[power]
    starts = starts[:count]
    if starts[-1] >= n or jump[starts[-1]] == end:
        return None
    return starts


def _ranges(counts: np.ndarray) -> np.ndarray:
    """``0..c-1`` for each ``c`` in ``counts``, concatenated."""
    total = int(counts.sum())
    if not total:
        return np.zeros(0, dtype=np.int64)
    ends = np.cumsum(counts)
    return np.arange(total) - np.repeat(ends - counts, counts)
