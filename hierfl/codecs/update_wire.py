"""A compressed weight update as one byte string: a small header per tensor, then the payloads.

Names, shapes and order come from the model both sides hold, and the number of values of each
tensor from the run's codec (``UpdateCodec.kept``), so none of them travels. Per tensor the header
holds the positions' length (uint32), the value scale (float32) and the Rice parameter (uint8):
9 bytes; then, tensor after tensor, its values and its Rice-coded positions. One array per
message keeps Flower's per-array framing (a 128-byte ``.npy`` header) out of the byte count.

``unpack`` checks the whole layout against the model and the codec before it returns views into
the message: nothing is allocated on a sender's say.
"""

from __future__ import annotations

import math
from collections.abc import Mapping

import numpy as np

from hierfl.codecs.updates import EncodedTensor, UpdateCodec
from hierfl.errors import ChunkRejected

_HEADER = np.dtype([("positions", "<u4"), ("scale", "<f4"), ("bits", "u1")])
HEADER_BYTES = _HEADER.itemsize  # 9


def values_nbytes(codec: UpdateCodec, count: int) -> int:
    """Bytes of ``count`` values in ``codec.values``: 4, 1 or 1/8 a value."""
    return {"fp32": 4 * count, "q8": count, "sign": math.ceil(count / 8)}[codec.values]


def pack(encoded: Mapping[str, EncodedTensor], names: tuple[str, ...]) -> np.ndarray:
    """``encoded``'s tensors, in ``names``' order, as one uint8 array."""
    header = np.zeros(len(names), dtype=_HEADER)
    parts: list[bytes] = []
    for i, name in enumerate(names):
        item = encoded[name]
        positions = b"" if item.positions is None else item.positions.tobytes()
        header[i] = (len(positions), np.float32(item.scale), item.rice_bits)
        parts += [np.ascontiguousarray(item.values_data).tobytes(), positions]
    return np.frombuffer(header.tobytes() + b"".join(parts), dtype=np.uint8)


def unpack(
    blob: np.ndarray, shapes: Mapping[str, tuple[int, ...]], codec: UpdateCodec
) -> dict[str, EncodedTensor]:
    """The encoded tensors ``pack`` wrote for a model of ``shapes`` (in its order) and ``codec``.

    Raises:
        ChunkRejected: a blob that is not uint8, or whose length, header or positions do not
            add up to exactly what ``codec`` sends for ``shapes``.
    """
    if blob.dtype != np.uint8 or blob.ndim != 1:
        raise ChunkRejected(f"an update must be uint8 [n], got {blob.dtype} {blob.shape}")
    names = list(shapes)
    head = len(names) * HEADER_BYTES
    if blob.size < head:
        raise ChunkRejected(f"an update of {blob.size} bytes is shorter than its header ({head})")
    header = np.frombuffer(blob[:head].tobytes(), dtype=_HEADER)
    out: dict[str, EncodedTensor] = {}
    offset = head
    for i, name in enumerate(names):
        size = math.prod(shapes[name])
        count = codec.kept(size)
        n_values = values_nbytes(codec, count)
        n_positions = int(header["positions"][i])
        dense = count == size
        if dense and n_positions:
            raise ChunkRejected(f"{name}: positions for a dense tensor")
        if offset + n_values + n_positions > blob.size:
            raise ChunkRejected(f"{name}: the update ends before its payload ({blob.size} bytes)")
        values = blob[offset : offset + n_values]
        offset += n_values
        positions = None if dense else blob[offset : offset + n_positions]
        offset += n_positions
        out[name] = EncodedTensor(
            codec.values,
            count,
            values.view(_VALUE_VIEW[codec.values]),
            float(header["scale"][i]),
            positions,
            int(header["bits"][i]),
        )
    if offset != blob.size:
        raise ChunkRejected(f"an update of {blob.size} bytes holds {offset} bytes of payload")
    return out


_VALUE_VIEW = {"fp32": np.float32, "q8": np.int8, "sign": np.uint8}
