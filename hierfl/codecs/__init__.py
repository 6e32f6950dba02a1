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
