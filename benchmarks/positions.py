"""Bits per position of a top-k update: Golomb-Rice codes against lossless compressors.

Top-k positions at several densities of a tensor the size of ResNet-18's largest edge tensor at
layer3 (2,359,296 entries), drawn uniformly at random (what top-k of a noisy update looks like).
Each coder writes the sorted positions; the table gives bits per position, beside the bound no
coder can beat (log2 of the number of ways to choose them). Writes ``positions.json``.
"""

from __future__ import annotations

import bz2
import lzma
import math
import sys
import time
import zlib

import numpy as np

from benchmarks.harness import markdown_table, parser, results_dir, write_json
from hierfl.codecs.positions import decode_positions, encode_positions

SIZE = 2_359_296
DENSITIES = (0.0001, 0.001, 0.01, 0.1)


def coders(idx: np.ndarray) -> dict[str, int]:
    """Bytes of each coding of the sorted positions ``idx``."""
    deltas = np.diff(idx, prepend=0).astype(np.uint32).tobytes()
    return {
        "int32": 4 * idx.size,
        "rice": int(encode_positions(idx, SIZE)[0].nbytes),
        "zlib-deltas": len(zlib.compress(deltas, 9)),
        "lzma-deltas": len(lzma.compress(deltas)),
        "bz2-deltas": len(bz2.compress(deltas, 9)),
    }


def row(density: float, seed: int) -> dict[str, object]:
    count = math.ceil(density * SIZE)
    idx = np.sort(np.random.default_rng(seed).choice(SIZE, count, replace=False))
    stream, bits = encode_positions(idx, SIZE)
    start = time.perf_counter()
    assert np.array_equal(decode_positions(stream, count, bits, SIZE), idx)
    decode_s = time.perf_counter() - start
    sizes = coders(idx)
    return {
        "density": density,
        "count": count,
        "bytes": sizes,
        "bits_per_position": {k: 8 * v / count for k, v in sizes.items()},
        "entropy_bound_bits": _entropy_bits(count) / count,
        "rice_decode_s": decode_s,
    }


def _entropy_bits(count: int) -> float:
    """log2 of the number of ways to choose ``count`` of ``SIZE``: no coder can do better."""
    return (math.lgamma(SIZE + 1) - math.lgamma(count + 1) - math.lgamma(SIZE - count + 1)) / (
        math.log(2)
    )


def main(argv: list[str] | None = None) -> int:
    p = parser(__doc__)
    p.add_argument("--seed", type=int, default=0)
    args = p.parse_args(argv)
    rows = [row(d, args.seed) for d in DENSITIES]
    names = list(rows[0]["bits_per_position"])  # type: ignore[call-overload]
    lines = [
        f"{r['density']:g} | {r['count']} | "
        + " | ".join(f"{r['bits_per_position'][n]:.2f}" for n in names)  # type: ignore[index]
        + f" | {r['entropy_bound_bits']:.2f}"
        for r in rows
    ]
    header = "density | positions | " + " | ".join(names) + " | bound"
    print(markdown_table(header, lines))
    write_json(results_dir(args.out) / "positions.json", {"size": SIZE, "rows": rows})
    return 0


if __name__ == "__main__":
    sys.exit(main())
