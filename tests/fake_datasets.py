"""Tiny fake datasets in torchvision's exact on-disk formats, written by the tests themselves.

Every image encodes its label (channel 0 = label x STEP), a per-class serial number (channel 1)
and a constant (channel 2), plus one marked pixel that checks the row/column order.
"""

from __future__ import annotations

import gzip
import pickle
import struct
from pathlib import Path

import numpy as np

# Pixel code of every fake image: channel 0 holds the label times STEP, channel 1 a per-class
# serial number, channel 2 a constant; one marked pixel checks the row/column order.
STEP = 2
CONST = 200


def images(labels: list[int], channels: int, size: int) -> np.ndarray:
    """uint8 [n, C, H, W] that encode their label, a serial, and orientation (pixel (1, 0))."""
    x = np.zeros((len(labels), channels, size, size), dtype=np.uint8)
    serial: dict[int, int] = {}
    for i, label in enumerate(labels):
        serial[label] = serial.get(label, -1) + 1
        x[i, 0] = label * STEP
        if channels == 3:
            x[i, 1] = serial[label]
            x[i, 2] = CONST
        x[i, :, 1, 0] = 255
    return x


def cifar_batch(path: Path, labels: list[int], label_key: bytes) -> None:
    """A batch as the published files hold it: protocol 2, numpy's pre-2.0 module path."""
    batch = {
        b"batch_label": b"fake",
        b"data": images(labels, 3, 32).reshape(len(labels), 3072),
        label_key: labels,
        b"filenames": [f"{i}.png".encode() for i in range(len(labels))],
    }
    raw = pickle.dumps(batch, protocol=2).replace(b"numpy._core.", b"numpy.core.")
    path.write_bytes(raw)


def fake_cifar10(root: Path, per_class: int = 10) -> Path:
    folder = root / "cifar-10-batches-py"
    folder.mkdir(parents=True)
    labels = [c for c in range(10) for _ in range(per_class)]
    for k in range(5):
        cifar_batch(folder / f"data_batch_{k + 1}", labels[k::5], b"labels")
    cifar_batch(folder / "test_batch", [c for c in range(10) for _ in range(3)], b"labels")
    return folder


def fake_cifar100(root: Path, per_class: int = 2) -> Path:
    folder = root / "cifar-100-python"
    folder.mkdir(parents=True)
    cifar_batch(folder / "train", [c for c in range(100) for _ in range(per_class)], b"fine_labels")
    cifar_batch(folder / "test", list(range(100)), b"fine_labels")
    return folder


def idx_file(path: Path, array: np.ndarray) -> None:
    raw = b"\0\0\x08" + bytes([array.ndim]) + struct.pack(f">{array.ndim}i", *array.shape)
    raw += array.astype(np.uint8).tobytes()
    path.write_bytes(gzip.compress(raw) if path.suffix == ".gz" else raw)


def fake_mnist(folder: Path, suffix: str) -> None:
    folder.mkdir(parents=True)
    for split, per_class in (("train", 3), ("t10k", 2)):
        labels = [c for _ in range(per_class) for c in range(10)]
        idx_file(folder / f"{split}-images-idx3-ubyte{suffix}", images(labels, 1, 28)[:, 0])
        idx_file(folder / f"{split}-labels-idx1-ubyte{suffix}", np.asarray(labels))


def fake_tiny_imagenet(root: Path, wnids: list[str]) -> None:
    from PIL import Image

    def save(path: Path, label: int, serial: int, grey: bool = False) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        pixels = images([label] * (serial + 1), 3, 64)[serial].transpose(1, 2, 0)
        # Lossless content under the published .JPEG names keeps the pixel checks exact; one
        # greyscale image (its label plane alone) stands for the greyscale JPEGs of the real set.
        image = Image.fromarray(np.ascontiguousarray(pixels[:, :, 0] if grey else pixels))
        image.save(path, format="PNG")

    folder = root / "tiny-imagenet-200"
    folder.mkdir(parents=True)
    (folder / "wnids.txt").write_text("\n".join(wnids) + "\n")
    rows = []
    for label, wnid in enumerate(wnids):
        for serial in range(3):
            save(folder / "train" / wnid / "images" / f"{wnid}_{serial}.JPEG", label, serial)
        for serial in range(2):
            name = f"val_{label}_{serial}.JPEG"
            save(folder / "val" / "images" / name, label, serial, grey=(label, serial) == (0, 1))
            rows.append(f"{name}\t{wnid}\t0\t0\t63\t63")
    rows.append("val_other.JPEG\tn99999999\t0\t0\t63\t63")  # a wnid not listed: skipped
    (folder / "val" / "val_annotations.txt").write_text("\n".join(rows) + "\n")
