"""How a chunk's tensors travel: activations through their codec, raw inputs in their stored
form, labels in the smallest integer type, and an optional lossless stage on the bytes.

- Activations: ``fp32``, ``fp16``, ``int8`` (per-channel scale) or, with a bottleneck, its
  integer codes (``code8``, ``code4`` packed two to a byte; ``hierfl.codecs``).
- Raw inputs (``cloud`` mode only) as they are stored: ``uint8`` pixels, ``png`` or ``jpeg``
  files (Pillow's encoders; one file per image), or ``fp32``.
- Labels as ``uint8`` when they fit (``int64`` otherwise).
- ``compress`` (``zlib``, ``lzma``, ``bz2``) squeezes the activation or image bytes further.

Every array travels as numpy ``.npy`` bytes in a Flower ``Array``; the bytes counted on the
link are exactly those (``protocol.payload_bytes``). Which encoding was used travels in the
reply's ``chunk`` record, so the cloud decodes without guessing.
"""

from __future__ import annotations

import bz2
import io
import lzma
import math
import zlib
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
from flwr.app import Array, ArrayRecord

from hierfl.codecs import raw_encoding
from hierfl.codecs.images import as_pixels, image_file
from hierfl.codecs.tensor import Encoded, decode, encode

COMPRESSORS: dict[str, tuple[Callable[[bytes], bytes], Callable[[bytes], bytes]]] = {
    "zlib": (lambda b: zlib.compress(b, 9), zlib.decompress),
    "lzma": (lzma.compress, lzma.decompress),
    "bz2": (lambda b: bz2.compress(b, 9), bz2.decompress),
}
WIRE_DTYPE = {  # codec -> dtype of the ``act`` array before compression
    "fp32": np.float32,
    "fp16": np.float16,
    "int8": np.int8,
    "code8": np.uint8,
    "code4": np.uint8,
    "raw-fp32": np.float32,
    "raw-uint8": np.uint8,
    "raw-png": np.uint8,
    "raw-jpeg": np.uint8,
}


@dataclass(frozen=True)
class Wire:
    """The encodings of one run (``HierConfig.wire_codec``, ``compress``, ``raw-codec``)."""

    codec: str = "fp32"
    compress: str = "none"
    raw_codec: str = "fp32"
    jpeg_quality: int = 90

    @classmethod
    def of(cls, config: Any) -> Wire:
        return cls(config.wire_codec, config.compress, config.raw_codec, config.jpeg_quality)


def encode_tensors(
    x: torch.Tensor, y: torch.Tensor, wire: Wire, *, raw: bool
) -> tuple[ArrayRecord, str]:
    """The arrays of a chunk, and the name of the encoding used (for the ``chunk`` record)."""
    arrays: dict[str, np.ndarray] = {}
    if raw:
        name = raw_encoding(wire.raw_codec)
        data = _encode_images(x, wire, arrays)
    else:
        name = wire.codec
        encoded = encode(wire.codec, x)
        data = encoded.data.numpy()
        if encoded.scale is not None:
            arrays["act-scale"] = encoded.scale.numpy()
        if encoded.shape is not None:  # packed
            arrays["act-shape"] = np.asarray(encoded.shape, dtype=np.int64)
    if wire.compress != "none":
        arrays.setdefault("act-shape", np.asarray(data.shape, dtype=np.int64))
        packed = COMPRESSORS[wire.compress][0](np.ascontiguousarray(data).tobytes())
        data = np.frombuffer(packed, dtype=np.uint8)
    fits = y.numel() == 0 or (int(y.min()) >= 0 and int(y.max()) < 256)
    arrays["act"] = np.ascontiguousarray(data)
    arrays["y"] = y.numpy().astype(np.uint8 if fits else np.int64)
    return ArrayRecord({k: Array(np.ascontiguousarray(v)) for k, v in arrays.items()}), name


def _encode_images(x: torch.Tensor, wire: Wire, arrays: dict[str, np.ndarray]) -> np.ndarray:
    if wire.raw_codec == "fp32":
        return x.to(torch.float32).numpy()
    pixels = as_pixels(x)
    if wire.raw_codec == "uint8":
        return pixels.numpy()
    files = [image_file(p.numpy(), wire.raw_codec, wire.jpeg_quality) for p in pixels]
    arrays["act-sizes"] = np.asarray([len(f) for f in files], dtype=np.uint32)
    arrays["act-shape"] = np.asarray(x.shape[1:], dtype=np.int64)
    return np.frombuffer(b"".join(files), dtype=np.uint8)


def decode_tensors(
    record: ArrayRecord, name: str, compress: str
) -> tuple[torch.Tensor, torch.Tensor]:
    """Float32 activations (or raw inputs) and int64 labels, as copies that own their memory.

    Raises:
        ValueError: the arrays do not fit the encoding they claim (a malformed reply).
    """
    if name not in WIRE_DTYPE:
        raise ValueError(f"unknown encoding {name!r}")
    if compress != "none" and compress not in COMPRESSORS:
        raise ValueError(f"unknown compression {compress!r}")
    act = record["act"].numpy()
    shape = tuple(int(v) for v in record["act-shape"].numpy()) if "act-shape" in record else None
    if compress != "none":
        raw = COMPRESSORS[compress][1](act.tobytes())
        act = np.frombuffer(raw, dtype=WIRE_DTYPE[name])
        if not name.startswith("code4") and name not in ("raw-png", "raw-jpeg"):
            act = act.reshape(shape)
    if act.dtype != WIRE_DTYPE[name]:
        want = np.dtype(WIRE_DTYPE[name])
        raise ValueError(f"{name} activations must be {want}, got {act.dtype}")
    y = record["y"].numpy()
    if y.dtype not in (np.uint8, np.int64) or y.ndim != 1:
        raise ValueError(f"labels must be uint8 or int64 [n], got {y.dtype} {y.shape}")
    labels = torch.from_numpy(y.astype(np.int64))
    if name.startswith("raw-"):
        return _decode_images(act, name, record, shape), labels
    data = torch.from_numpy(act.copy())
    scale = torch.from_numpy(record["act-scale"].numpy().copy()) if "act-scale" in record else None
    dim = 1 if data.dim() >= 2 and scale is not None else None
    if name == "int8":
        if scale is None or scale.numel() != (data.shape[1] if dim == 1 else 1):
            raise ValueError(f"act-scale does not fit activations of shape {tuple(data.shape)}")
    if name == "code4":
        if shape is None or data.numel() != math.ceil(math.prod(shape) / 2):
            raise ValueError("4-bit codes do not fill their declared shape")
    return decode(Encoded(name, data, scale, dim, shape if name == "code4" else None)), labels


def _decode_images(
    act: np.ndarray, name: str, record: ArrayRecord, shape: tuple[int, ...] | None
) -> torch.Tensor:
    if name == "raw-fp32":
        return torch.from_numpy(act.copy())
    if name == "raw-uint8":
        return torch.from_numpy(act.astype(np.float32) / 255.0)
    from PIL import Image

    sizes = record["act-sizes"].numpy().astype(np.int64)
    if not sizes.size and not act.size:  # a reply without images (a later round)
        return torch.zeros(0)
    if shape is None or len(shape) != 3 or sizes.sum() != act.size:
        raise ValueError("image files do not add up to their declared sizes")
    images, start = [], 0
    for size in sizes:
        with Image.open(io.BytesIO(act[start : start + size].tobytes())) as image:
            array = np.asarray(image.convert("L" if shape[0] == 1 else "RGB"))
        images.append(array[None] if array.ndim == 2 else array.transpose(2, 0, 1))
        start += size
    if not images:
        return torch.zeros(0, *shape)
    out = torch.from_numpy(np.stack(images).astype(np.float32) / 255.0)
    if tuple(out.shape[1:]) != shape:
        raise ValueError(f"images decode to {tuple(out.shape[1:])}, declared {shape}")
    return out
