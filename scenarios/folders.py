"""CIFAR-10/100, MNIST, Fashion-MNIST and Tiny ImageNet read from a local folder, never downloaded.

The folder (``data-dir``) holds the files in torchvision's own layout, so a copy made once with
``torchvision.datasets.X(root, download=True)`` on a machine with network serves every node.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from functools import partial
from pathlib import Path

import numpy as np

from hierfl.plugins import Benchmark, ConfigError, Scenario, ScenarioInfo, ScenarioSpec
from scenarios import readers
from scenarios.class_incremental import as_stored, class_incremental, resize

# Why not torchvision.datasets.CIFAR10(root, download=False)? It verifies the md5 of every batch,
# so only the exact published files load (no test can fake them), and it would import
# torchvision for nothing: the batch format is a documented pickle that scenarios.readers
# parses in a few lines (and, unlike torchvision, without running arbitrary pickled code).


@dataclass(frozen=True)
class _Layout:
    """Where a dataset lives under ``data-dir`` and how to tell the user to get it."""

    name: str
    folder: str  # relative to data-dir
    files: tuple[str, ...]  # shown, indented, in the error message
    fetch: str
    required: tuple[str, ...] = ()  # files checked before anything is read ("x[.gz]": either)
    num_classes: int = 0  # 0: counted from the folder (Tiny ImageNet's wnids.txt)
    input_shape: tuple[int, int, int] = (3, 32, 32)


def _torchvision_fetch(cls: str) -> str:
    return f"run torchvision.datasets.{cls}(ROOT, download=True) with network, then copy ROOT"


CIFAR10 = _Layout(
    "cifar10",
    "cifar-10-batches-py",
    ("data_batch_1 ... data_batch_5", "test_batch"),
    _torchvision_fetch("CIFAR10"),
    required=(*(f"data_batch_{k}" for k in range(1, 6)), "test_batch"),
    num_classes=10,
)
CIFAR100 = _Layout(
    "cifar100",
    "cifar-100-python",
    ("train", "test"),
    _torchvision_fetch("CIFAR100"),
    required=("train", "test"),
    num_classes=100,
)
_IDX_FILES = tuple(
    f"{split}-{kind}[.gz]"
    for split in ("train", "t10k")
    for kind in ("images-idx3-ubyte", "labels-idx1-ubyte")
)
MNIST = _Layout(
    "mnist",
    "MNIST/raw",
    _IDX_FILES,
    _torchvision_fetch("MNIST"),
    required=_IDX_FILES,
    num_classes=10,
    input_shape=(1, 28, 28),
)
FASHION_MNIST = _Layout(
    "fashion-mnist",
    "FashionMNIST/raw",
    _IDX_FILES,
    _torchvision_fetch("FashionMNIST"),
    required=_IDX_FILES,
    num_classes=10,
    input_shape=(1, 28, 28),
)
TINY_IMAGENET = _Layout(
    "tiny-imagenet",
    "tiny-imagenet-200",
    ("wnids.txt", "train/<wnid>/images/*.JPEG", "val/images/*.JPEG", "val/val_annotations.txt"),
    "unzip http://cs231n.stanford.edu/tiny-imagenet-200.zip into data-dir",
    required=("wnids.txt", "val/val_annotations.txt"),
    input_shape=(3, 64, 64),
)


def build_cifar10(spec: ScenarioSpec) -> Benchmark:
    """CIFAR-10 from ``<data-dir>/cifar-10-batches-py/``: 10 classes, 3x32x32, 50,000 + 10,000."""
    files = [f"data_batch_{k}" for k in range(1, 6)]
    return _build(spec, CIFAR10, partial(_cifar, files, ["test_batch"], b"labels", 10))


def build_cifar100(spec: ScenarioSpec) -> Benchmark:
    """CIFAR-100 from ``<data-dir>/cifar-100-python/``: the 100 fine classes, 3x32x32."""
    return _build(spec, CIFAR100, partial(_cifar, ["train"], ["test"], b"fine_labels", 100))


def build_mnist(spec: ScenarioSpec) -> Benchmark:
    """MNIST from ``<data-dir>/MNIST/raw/`` (idx files, plain or .gz): 10 classes, 1x28x28."""
    return _build(spec, MNIST, readers.read_mnist)


def build_fashion_mnist(spec: ScenarioSpec) -> Benchmark:
    """Fashion-MNIST from ``<data-dir>/FashionMNIST/raw/``, in MNIST's idx format."""
    return _build(spec, FASHION_MNIST, readers.read_mnist)


def build_tiny_imagenet(spec: ScenarioSpec) -> Benchmark:
    """Tiny ImageNet from ``<data-dir>/tiny-imagenet-200/``: one class per wnid, 3x64x64.

    The classes are the lines of ``wnids.txt`` (200 in the published set) in file order, and the
    labelled ``val`` split is the test set since the published test split has no labels.
    """
    return _build(spec, TINY_IMAGENET, readers.read_tiny_imagenet)


def _describe(layout: _Layout, spec: ScenarioSpec) -> ScenarioInfo:
    """Check the folder's layout by name only (nothing is read but Tiny ImageNet's class list)."""
    root, folder = _folder(layout, spec)
    for name in layout.required:
        stem = name.removesuffix("[.gz]")
        candidates = [folder / stem, folder / f"{stem}.gz"] if name != stem else [folder / stem]
        if not any(path.is_file() for path in candidates):
            raise _missing(layout, root, f"{folder} has no {name}")
    num_classes = layout.num_classes
    if not num_classes:
        num_classes = len((folder / "wnids.txt").read_text().split())
    if spec.num_classes not in (None, num_classes):
        raise ConfigError("num-classes", f"{layout.name} has {num_classes} classes")
    return ScenarioInfo(num_classes, spec.input_shape or layout.input_shape)


def _folder(layout: _Layout, spec: ScenarioSpec) -> tuple[Path, Path]:
    """``data-dir`` and its folder of this dataset; a ConfigError showing the layout if missing."""
    if not spec.data_dir:
        raise _missing(layout, None, "data-dir is not set")
    root = Path(spec.data_dir).expanduser().absolute()
    folder = root / layout.folder
    if not folder.is_dir():
        raise _missing(layout, root, f"there is no folder {folder}")
    return root, folder


def _cifar(
    train: list[str],
    test: list[str],
    label_key: bytes,
    num_classes: int,
    folder: Path,
    keep: readers.Keep,
) -> readers.Loaded:
    return readers.read_cifar(folder, train, test, label_key, num_classes, keep)


def _build(
    spec: ScenarioSpec,
    layout: _Layout,
    read: Callable[[Path, readers.Keep], readers.Loaded],
) -> Benchmark:
    """Read the dataset's own train and test splits and split them class-incrementally.

    ``spec.test_fraction`` is only validated: these datasets come with a fixed test split, and
    carving another out of the training data would make results incomparable with the
    literature. ``spec.samples_per_class`` caps the training samples of each class (drawn from
    ``spec.seed``) so CPU runs stay small; the test split is always whole.

    Raises:
        ConfigError: ``data-dir`` empty, missing or incomplete (the message shows the layout);
            ``test-fraction``, ``samples-per-class``, ``num-classes`` or ``experiences`` invalid.
    """
    if not 0.0 < spec.test_fraction < 1.0:
        raise ConfigError("test-fraction", f"must be in (0, 1), got {spec.test_fraction}")
    per_class = spec.samples_per_class
    if per_class is not None and per_class < 1:
        raise ConfigError("samples-per-class", f"must be at least 1, got {per_class}")
    root, folder = _folder(layout, spec)
    keep = partial(keep_per_class, per_class=per_class, seed=spec.seed)
    try:
        data = read(folder, keep)
    except (OSError, ValueError) as e:
        raise _missing(layout, root, f"{folder} is incomplete: {e}") from None
    if spec.num_classes not in (None, data.num_classes):
        raise ConfigError("num-classes", f"{layout.name} has {data.num_classes} classes")
    x_train, x_test = _to_float(data.x_train, spec), _to_float(data.x_test, spec)
    return class_incremental(
        (x_train, data.y_train),
        (x_test, data.y_test),
        num_classes=data.num_classes,
        num_experiences=spec.num_experiences,
        seed=spec.seed,
        name=layout.name,
    )


def keep_per_class(y: np.ndarray, *, per_class: int | None, seed: int) -> np.ndarray:
    """Indices of at most ``per_class`` samples of each class, a seeded draw, in file order."""
    if per_class is None:
        return np.arange(len(y))
    order = np.random.default_rng(seed).permutation(len(y))
    chosen = [order[y[order] == c][:per_class] for c in np.unique(y)]
    return np.sort(np.concatenate(chosen)) if chosen else np.arange(0)


def _to_float(x: np.ndarray, spec: ScenarioSpec) -> np.ndarray:
    """uint8 -> float32 in [0, 1], resized when ``input_shape`` asks for another shape."""
    out = x.astype(np.float32)
    out /= 255.0
    if spec.input_shape is not None and tuple(spec.input_shape) != out.shape[1:]:
        out = as_stored(resize(out, spec.input_shape))
    return out


def _missing(layout: _Layout, root: Path | None, detail: str) -> ConfigError:
    """A ConfigError that says what is wrong and draws the expected tree under data-dir."""
    top = f"{root}/" if root is not None else "<data-dir>/"
    tree = "\n".join(f"            {line}" for line in layout.files)
    return ConfigError(
        "data-dir",
        f"{layout.name}: {detail}. hierfl never downloads datasets; it reads this layout:\n"
        f"    {top}\n        {layout.folder}/\n{tree}\n"
        f"To get the files, {layout.fetch}.",
    )


def _scenario(layout: _Layout, build: Callable[[ScenarioSpec], Benchmark]) -> Scenario:
    return Scenario(
        build=build,
        describe=partial(_describe, layout),
        summary=f"{layout.name} from data-dir ({layout.folder}/), never downloaded",
    )


cifar10 = _scenario(CIFAR10, build_cifar10)
cifar100 = _scenario(CIFAR100, build_cifar100)
mnist = _scenario(MNIST, build_mnist)
fashion_mnist = _scenario(FASHION_MNIST, build_fashion_mnist)
tiny_imagenet = _scenario(TINY_IMAGENET, build_tiny_imagenet)
