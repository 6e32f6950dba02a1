"""Readers for torchvision's on-disk dataset formats, in numpy, with no download and no md5 check.

Each reader returns uint8 images [n, C, H, W] with int64 labels and raises ``OSError`` for a
missing or unreadable file and ``ValueError`` for a malformed one; the builders in
``scenarios.folders`` turn both into a ``ConfigError`` that shows the expected layout.
"""

from __future__ import annotations

import gzip
import pickle
from collections.abc import Callable
from pathlib import Path
from typing import NamedTuple

import numpy as np

Keep = Callable[[np.ndarray], np.ndarray]
"""Maps training labels to the indices of the training samples to load."""


class Loaded(NamedTuple):
    """A dataset's own train and test splits; images uint8 [n, C, H, W], labels int64."""

    x_train: np.ndarray
    y_train: np.ndarray
    x_test: np.ndarray
    y_test: np.ndarray
    num_classes: int


def check_labels(y: np.ndarray, num_classes: int, where: str) -> np.ndarray:
    """Every label in 0..num_classes-1 and every class present: a split lacking one is broken."""
    y = np.asarray(y, dtype=np.int64)
    if y.size and (y.min() < 0 or y.max() >= num_classes):
        raise ValueError(f"{where}: labels outside 0..{num_classes - 1}")
    missing = np.setdiff1d(np.arange(num_classes), y)
    if missing.size:
        raise ValueError(f"{where}: no samples of class(es) {missing[:10].tolist()}")
    return y


class _ArrayUnpickler(pickle.Unpickler):
    """Unpickles only plain containers and numpy arrays.

    CIFAR's batches are pickles, and a plain ``pickle.load`` of a file from a user-named folder
    could run arbitrary code; the batches need nothing beyond arrays, so nothing else is allowed.
    """

    _ALLOWED = {
        ("numpy.core.multiarray", "_reconstruct"),  # how the published files name it
        ("numpy._core.multiarray", "_reconstruct"),
        ("numpy.core.numeric", "_frombuffer"),
        ("numpy._core.numeric", "_frombuffer"),
        ("numpy", "ndarray"),
        ("numpy", "dtype"),
        ("_codecs", "encode"),  # bytes pickled by Python 3 at protocol 2
    }

    def find_class(self, module: str, name: str) -> object:
        if (module, name) not in self._ALLOWED:
            raise pickle.UnpicklingError(f"refusing to load {module}.{name}")
        return super().find_class(module, name)


def read_cifar(
    folder: Path,
    train_files: list[str],
    test_files: list[str],
    label_key: bytes,
    num_classes: int,
    keep: Keep,
) -> Loaded:
    """CIFAR-10/100 python batches: dicts whose ``b"data"`` rows are 1024 R, 1024 G, 1024 B."""

    def read(names: list[str]) -> tuple[np.ndarray, np.ndarray]:
        xs, ys = [], []
        for name in names:
            with open(folder / name, "rb") as f:
                try:
                    batch = _ArrayUnpickler(f, encoding="bytes").load()
                    x = np.asarray(batch[b"data"], dtype=np.uint8).reshape(-1, 3, 32, 32)
                    y = np.asarray(batch[label_key], dtype=np.int64).reshape(-1)
                except (pickle.UnpicklingError, EOFError, KeyError, TypeError) as e:
                    raise ValueError(f"{name} is not a CIFAR batch ({e!r})") from None
            if len(x) != len(y):
                raise ValueError(f"{name}: {len(x)} images but {len(y)} labels")
            xs.append(x)
            ys.append(y)
        return np.concatenate(xs), np.concatenate(ys)

    x_train, y_train = read(train_files)
    check_labels(y_train, num_classes, "train")
    x_test, y_test = read(test_files)
    chosen = keep(y_train)
    return Loaded(
        x_train[chosen],
        y_train[chosen],
        x_test,
        check_labels(y_test, num_classes, "test"),
        num_classes,
    )


_IDX_TYPES = {0x08: ">u1", 0x09: ">i1", 0x0B: ">i2", 0x0C: ">i4", 0x0D: ">f4", 0x0E: ">f8"}


def read_idx(path: Path) -> np.ndarray:
    """One idx file (LeCun's format: 2 zero bytes, type code, ndim, big-endian int32 sizes)."""
    raw = gzip.decompress(path.read_bytes()) if path.suffix == ".gz" else path.read_bytes()
    if len(raw) < 4 or raw[:2] != b"\0\0" or raw[2] not in _IDX_TYPES:
        raise ValueError(f"{path.name} is not an idx file")
    ndim = raw[3]
    shape = tuple(int(v) for v in np.frombuffer(raw, ">i4", count=ndim, offset=4))
    data = np.frombuffer(raw, _IDX_TYPES[raw[2]], offset=4 + 4 * ndim)
    if data.size != int(np.prod(shape)):
        raise ValueError(f"{path.name}: header says {shape} but holds {data.size} values")
    return data.reshape(shape)


def find_idx(folder: Path, stem: str) -> Path:
    """``stem`` plain or gzipped; torchvision keeps both after a download, and either will do."""
    for path in (folder / stem, folder / f"{stem}.gz"):
        if path.is_file():
            return path
    raise FileNotFoundError(f"{stem}[.gz] not found")


def read_mnist(folder: Path, keep: Keep) -> Loaded:
    """MNIST or Fashion-MNIST idx files: 28x28 greyscale, ten classes."""

    def read(prefix: str) -> tuple[np.ndarray, np.ndarray]:
        x = read_idx(find_idx(folder, f"{prefix}-images-idx3-ubyte"))
        y = read_idx(find_idx(folder, f"{prefix}-labels-idx1-ubyte"))
        if x.dtype != np.uint8 or x.ndim != 3 or y.ndim != 1 or len(x) != len(y):
            raise ValueError(f"{prefix} files: images {x.shape} do not match labels {y.shape}")
        return x[:, None], check_labels(y, 10, prefix)

    x_train, y_train = read("train")
    x_test, y_test = read("t10k")
    chosen = keep(y_train)
    return Loaded(x_train[chosen], y_train[chosen], x_test, y_test, 10)


def read_tiny_imagenet(folder: Path, keep: Keep) -> Loaded:
    """Tiny ImageNet: classes are the wnids in ``wnids.txt`` order; the val split is the test set.

    Only the kept training images are decoded (all 100,000 take ~5 GB as float32). Validation
    rows whose wnid is not in ``wnids.txt`` are skipped, so a trimmed ``wnids.txt`` selects a
    subset of the classes.
    """
    wnids = (folder / "wnids.txt").read_text().split()
    if not wnids or len(set(wnids)) != len(wnids):
        raise ValueError("wnids.txt must list distinct class ids, one a line")
    label = {wnid: k for k, wnid in enumerate(wnids)}
    train_paths: list[Path] = []
    train_y: list[int] = []
    for wnid in wnids:
        images = folder / "train" / wnid / "images"
        found = sorted(p for p in images.glob("*") if p.is_file() and not p.name.startswith("."))
        if not found:
            raise FileNotFoundError(f"no images in {images}")
        train_paths += found
        train_y += [label[wnid]] * len(found)
    test_paths: list[Path] = []
    test_y: list[int] = []
    for line in (folder / "val" / "val_annotations.txt").read_text().splitlines():
        fields = line.split()
        if len(fields) >= 2 and fields[1] in label:
            test_paths.append(folder / "val" / "images" / fields[0])
            test_y.append(label[fields[1]])
    chosen = keep(np.asarray(train_y, dtype=np.int64))
    y_train = np.asarray(train_y, dtype=np.int64)[chosen]
    y_test = check_labels(np.asarray(test_y, dtype=np.int64), len(wnids), "val")
    x_train = _decode([train_paths[i] for i in chosen], 64)
    return Loaded(x_train, y_train, _decode(test_paths, 64), y_test, len(wnids))


def _decode(paths: list[Path], size: int) -> np.ndarray:
    """RGB images as uint8 [n, 3, size, size]; some Tiny ImageNet JPEGs are greyscale."""
    from PIL import Image

    out = np.empty((len(paths), 3, size, size), dtype=np.uint8)
    for i, path in enumerate(paths):
        with Image.open(path) as image:
            rgb = image.convert("RGB")
            if rgb.size != (size, size):
                rgb = rgb.resize((size, size), Image.Resampling.BILINEAR)
            out[i] = np.asarray(rgb).transpose(2, 0, 1)
    return out
