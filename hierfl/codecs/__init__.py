"""How tensors travel on the link: activation codecs, a bottleneck's codes, raw inputs as stored.

The names are defined here once and stay light (no torch): the config's choices, the CLI,
the reply checks and the docs read them. ``hierfl.codecs.tensor`` implements the activation
codecs; ``hierfl.app.wire`` packs the encoded tensors, raw inputs and labels into Flower arrays.
``hierfl.codecs.updates`` (with ``positions``) compresses weight updates.
"""

ACTIVATION_CODECS = ("fp32", "fp16", "int8")
"""What ``codec`` may name: how activations travel without a bottleneck."""
CODE_BITS = (4, 8)
"""Bits per bottleneck code (``code-bits``); 4-bit codes go two to a byte."""
RAW_CODECS = ("uint8", "png", "jpeg", "fp32")
"""How cloud mode uploads raw inputs (``raw-codec``): as stored (the default), as image files,
or as float32."""
COMPRESSIONS = ("none", "zlib", "lzma", "bz2")
"""The lossless stage on the uplink payload's bytes (``compress``)."""
WEIGHT_VALUES = ("fp32", "q8", "sign")
"""How a compressed weight update's kept entries travel (``weight-values``): float32, 8-bit with
a scale per tensor, or one sign bit each with a scale (``hierfl.codecs.updates``)."""
AVERAGED = ("all", "segment", "exit", "none")
"""Which edge parameters the edges and the cloud average (``averaged``): all of them, the segment
without the exit head, only the exit head, or none (each edge keeps its own)."""

AUTO_MIN_DENSITY = 0.001
AUTO_MIN_ENTRIES = 1000


def auto_density(params: int, cycle: int = 1) -> float:
    """``weight-density=0`` (the default): the share of entries a weight message sends for a
    model exchanging ``params`` parameters: at least 0.1 % and at least 1,000 entries, so that a
    large model sends 0.1 % (ResNet-18 to layer3: 3,080 entries) and a small one enough to keep
    its edges together (the small CNN: 4.7 %); measured in docs/results.md.

    With client sampling an edge is asked once in ``cycle`` rounds (``clients-per-round``), so
    a visit sends ``cycle`` times as many entries: each edge sends as many a cycle, and the
    federation as many a round, as when every edge is asked every round. Fewer would leave
    most of what an edge learned a visit in its residual until its next visit, ``cycle``
    rounds later, and the edges would drift apart (docs/results.md, 100 edges).

    >>> auto_density(3_080_000), round(auto_density(21_386), 4), auto_density(500)
    (0.001, 0.0468, 1.0)
    >>> auto_density(3_080_000, cycle=10), round(auto_density(21_386, cycle=10), 3)
    (0.01, 0.468)
    """
    return min(1.0, cycle * max(AUTO_MIN_DENSITY, AUTO_MIN_ENTRIES / max(params, 1)))


def code_codec(bits: int) -> str:
    """The codec of a bottleneck's ``bits``-bit codes: ``code8`` or ``code4``."""
    return f"code{bits}"


def raw_encoding(raw_codec: str) -> str:
    """How a reply names raw inputs sent with ``raw_codec``: ``raw-uint8``, ``raw-png``, ..."""
    return f"raw-{raw_codec}"


ENCODINGS = (
    *ACTIVATION_CODECS,
    *(code_codec(b) for b in CODE_BITS),
    *(raw_encoding(r) for r in RAW_CODECS),
)
"""Every encoding a reply's ``chunk["encoding"]`` may name."""
