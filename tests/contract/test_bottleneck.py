"""The learned bottleneck at the cut, on every registered model and cut: the split model equals
the monolithic one through the wire's codes, no cloud gradient reaches the edge, and the codes
and raw-image encodings carry exactly what they should."""

from __future__ import annotations

import io

import numpy as np
import pytest
import torch
from PIL import Image

from hierfl.app.wire import Wire, decode_tensors, encode_tensors
from hierfl.cloud.trainer import CloudTrainer
from hierfl.codecs.tensor import decode, encode, pack4, unpack4
from hierfl.models import create_model
from hierfl.models.bottleneck import dequantize, quantize, to_codes
from hierfl.registry import MODELS

SHAPES = {"small-cnn": (1, 8, 8)}
CASES = [
    (name, cut, bits)
    for name in MODELS.names()
    for cut in MODELS.get(name).cut_points
    for bits in (8, 4)
]


@pytest.mark.parametrize(("name", "cut", "bits"), CASES)
def test_the_split_model_is_the_whole_model_through_the_codes(name, cut, bits):
    shape = SHAPES.get(name, (3, 32, 32))
    model = create_model(
        name, cut=cut, num_classes=10, input_shape=shape, seed=0, bottleneck=4, code_bits=bits
    ).eval()
    x = torch.rand(3, *shape)
    with torch.no_grad():
        codes = model.forward_edge(x).activations
        received = decode(encode(f"code{bits}", codes))  # what the cloud gets off the wire
        torch.testing.assert_close(received, codes, rtol=0, atol=0)  # the codes are lossless
        assert tuple(codes.shape[1:2]) == (4,) and model.activation_shape()[0] == 4
        torch.testing.assert_close(model.forward_cloud(received), model(x), rtol=0, atol=0)


@pytest.mark.parametrize("name", MODELS.names())
def test_no_gradient_of_the_cloud_loss_reaches_the_edge(name):
    shape = SHAPES.get(name, (3, 32, 32))
    model = create_model(name, cut="", num_classes=4, input_shape=shape, seed=0, bottleneck=2)
    out = model.forward_edge(torch.rand(4, *shape))
    cloud = CloudTrainer(model.cloud, lr=0.1)
    cloud.train_batch(out.activations.detach(), torch.tensor([0, 1, 2, 3]))  # as shipped
    assert all(p.grad is None for p in model.edge.parameters())
    assert any(p.grad is not None for p in model.cloud.parameters())


def test_the_quantizer_is_within_half_a_step_and_passes_the_gradient_straight_through():
    for bits in (4, 8):
        z = torch.rand(1000, requires_grad=True)
        q = quantize(z, bits)
        step = 1 / (2**bits - 1)
        assert float((q - z).detach().abs().max()) <= step / 2 + 1e-7
        assert torch.equal(q, dequantize(to_codes(z, bits), bits))  # what the cloud decodes
        q.sum().backward()
        assert torch.equal(z.grad, torch.ones_like(z))


def test_packed_4_bit_codes_round_trip_exactly():
    codes = torch.randint(0, 16, (2 * 7 * 5 + 1,), dtype=torch.uint8)  # an odd count
    packed = pack4(codes)
    assert packed.numel() == (codes.numel() + 1) // 2  # two codes a byte
    assert torch.equal(unpack4(packed, codes.numel()), codes)
    values = dequantize(codes.reshape(1, 71), 4)
    encoded = encode("code4", values)
    assert encoded.nbytes == 36 and torch.equal(decode(encoded), values)


@pytest.mark.parametrize("compress", ["none", "zlib", "lzma", "bz2"])
def test_codes_through_the_wire_with_every_compressor(compress):
    codes = dequantize(torch.randint(0, 16, (5, 4, 3, 3)), 4)
    y = torch.tensor([0, 1, 2, 3, 9])
    record, name = encode_tensors(codes, y, Wire("code4", compress), raw=False)
    got, labels = decode_tensors(record, name, compress)
    assert torch.equal(got, codes) and torch.equal(labels, y)
    assert record["y"].numpy().dtype == np.uint8  # labels that fit a byte travel as one


def _file_bytes(pixels: np.ndarray, fmt: str, quality: int = 90) -> bytes:
    """The image as a file, written here with Pillow directly."""
    out = io.BytesIO()
    image = Image.fromarray(pixels.transpose(1, 2, 0))
    image.save(
        out,
        format="PNG" if fmt == "png" else "JPEG",
        **({} if fmt == "png" else {"quality": quality}),
    )
    return out.getvalue()


@pytest.mark.parametrize("raw_codec", ["uint8", "png", "jpeg"])
def test_raw_uploads_are_exactly_the_stored_or_encoded_images(raw_codec):
    rng = np.random.default_rng(0)
    coarse = rng.integers(0, 256, (3, 3, 4, 4)).astype(np.float32)  # smooth, photo-like images
    pixels = np.kron(coarse, np.ones((1, 1, 4, 4))).astype(np.uint8)
    x = torch.from_numpy(pixels.astype(np.float32) / 255)
    y = torch.tensor([1, 2, 3])
    record, name = encode_tensors(x, y, Wire(raw_codec=raw_codec), raw=True)
    sizes = {k: len(record[k].data) for k in record}
    header = 128  # numpy's .npy header of every array
    if raw_codec == "uint8":
        assert sizes["act"] == pixels.size + header
    else:
        files = [_file_bytes(p, raw_codec) for p in pixels]
        assert sizes["act"] == sum(len(f) for f in files) + header
        assert sizes["act-sizes"] == 4 * 3 + header
    got, labels = decode_tensors(record, name, "none")
    assert torch.equal(labels, y)
    if raw_codec == "jpeg":  # lossy: the cloud sees what a JPEG reader sees
        files = [_file_bytes(p, "jpeg") for p in pixels]
        seen = [np.asarray(Image.open(io.BytesIO(f))).transpose(2, 0, 1) for f in files]
        torch.testing.assert_close(got, torch.from_numpy(np.stack(seen) / 255.0).float())
        assert float((got - x).abs().mean()) < 0.1
    else:
        torch.testing.assert_close(got, x, rtol=0, atol=0)  # lossless


def test_a_reply_without_images_decodes_to_nothing():
    """Cloud mode uploads in each experience's first round; later replies carry no images."""
    record, name = encode_tensors(
        torch.zeros(0), torch.zeros(0, dtype=torch.long), Wire(raw_codec="png"), raw=True
    )
    got, labels = decode_tensors(record, name, "none")
    assert got.numel() == 0 and labels.numel() == 0
