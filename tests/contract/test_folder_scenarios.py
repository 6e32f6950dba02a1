"""Datasets read from a local folder: tiny fake files in torchvision's exact on-disk formats."""

from __future__ import annotations

import pickle
from collections.abc import Callable
from pathlib import Path

import pytest
import torch
from fake_datasets import (
    CONST,
    STEP,
    fake_cifar10,
    fake_cifar100,
    fake_mnist,
    fake_tiny_imagenet,
)

from hierfl.data.containers import Benchmark, ScenarioSpec
from hierfl.errors import ConfigError
from scenarios import folders


def _spec(tmp_path: Path, **kw: object) -> ScenarioSpec:
    base: dict[str, object] = {
        "name": "x",
        "num_experiences": 5,
        "seed": 0,
        "test_fraction": 0.25,
        "data_dir": str(tmp_path),
    }
    base.update(kw)
    return ScenarioSpec(**base)  # type: ignore[arg-type]


def _check(
    bench: Benchmark, num_classes: int, shape: tuple[int, int, int], resized: bool = False
) -> None:
    """Shapes, dtype, range, every class exactly once, and (unresized) labels match the pixels."""
    assert bench.num_classes == num_classes and bench.input_shape == shape
    assert sorted(c for e in bench.train for c in e.classes) == list(range(num_classes))
    for train, test in zip(bench.train, bench.test, strict=True):
        assert train.classes == test.classes
        for e in (train, test):
            assert e.x.dtype == torch.float32 and e.x.shape[1:] == shape
            assert float(e.x.min()) >= 0.0 and float(e.x.max()) <= 1.0
            assert set(e.y.tolist()) == set(e.classes)
            if not resized:
                assert torch.equal(torch.round(e.x[:, 0, 0, 0] * 255).long(), e.y * STEP)
                assert torch.all(e.x[:, :, 1, 0] == 1.0) and torch.all(e.x[:, :, 0, 1] < 1.0)


# ---- CIFAR --------------------------------------------------------------------------------------


def test_cifar10(tmp_path: Path) -> None:
    fake_cifar10(tmp_path)
    bench = folders.build_cifar10(_spec(tmp_path))
    _check(bench, 10, (3, 32, 32))
    assert [len(e) for e in bench.train] == [20] * 5 and [len(e) for e in bench.test] == [6] * 5
    x = bench.train[0].x
    assert torch.all(x[:, 2, 0, 0] == CONST / 255)  # channel planes in R, G, B order


def test_cifar10_samples_per_class_is_seeded(tmp_path: Path) -> None:
    fake_cifar10(tmp_path)

    def serials(seed: int) -> list[list[int]]:
        bench = folders.build_cifar10(_spec(tmp_path, seed=seed, samples_per_class=3))
        assert [len(e) for e in bench.train] == [6] * 5
        assert [len(e) for e in bench.test] == [6] * 5  # the test split stays whole
        xs = torch.cat([e.x for e in bench.train])
        return sorted(torch.round(xs[:, :2, 0, 0] * 255).long().tolist())

    assert serials(0) == serials(0)
    assert serials(0) != serials(1)


def test_cifar100(tmp_path: Path) -> None:
    fake_cifar100(tmp_path)
    bench = folders.build_cifar100(_spec(tmp_path))
    _check(bench, 100, (3, 32, 32))
    assert [len(e) for e in bench.train] == [40] * 5 and [len(e) for e in bench.test] == [20] * 5


# ---- MNIST --------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("build", "folder", "suffix"),
    [(folders.build_mnist, "MNIST", ""), (folders.build_fashion_mnist, "FashionMNIST", ".gz")],
)
def test_mnist_formats(
    tmp_path: Path, build: Callable[[ScenarioSpec], Benchmark], folder: str, suffix: str
) -> None:
    fake_mnist(tmp_path / folder / "raw", suffix)
    bench = build(_spec(tmp_path, num_experiences=2))
    _check(bench, 10, (1, 28, 28))
    assert [len(e) for e in bench.train] == [15, 15] and [len(e) for e in bench.test] == [10, 10]


def test_mnist_resized_for_cifar_models(tmp_path: Path) -> None:
    fake_mnist(tmp_path / "MNIST" / "raw", ".gz")
    bench = folders.build_mnist(_spec(tmp_path, input_shape=(3, 32, 32)))
    _check(bench, 10, (3, 32, 32), resized=True)
    assert torch.equal(bench.train[0].x[:, 0], bench.train[0].x[:, 2])


# ---- Tiny ImageNet ------------------------------------------------------------------------------


def test_tiny_imagenet(tmp_path: Path) -> None:
    wnids = ["n01443537", "n01629819", "n01641577", "n01644900"]
    fake_tiny_imagenet(tmp_path, wnids)
    bench = folders.build_tiny_imagenet(_spec(tmp_path, num_experiences=2))
    _check(bench, 4, (3, 64, 64))
    assert [len(e) for e in bench.train] == [6, 6] and [len(e) for e in bench.test] == [4, 4]
    small = folders.build_tiny_imagenet(
        _spec(tmp_path, num_experiences=4, samples_per_class=1, input_shape=(3, 32, 32))
    )
    _check(small, 4, (3, 32, 32), resized=True)
    assert [len(e) for e in small.train] == [1] * 4 and [len(e) for e in small.test] == [2] * 4


# ---- missing or incomplete folders --------------------------------------------------------------

BUILDERS = {
    "cifar-10-batches-py": folders.build_cifar10,
    "cifar-100-python": folders.build_cifar100,
    "MNIST/raw": folders.build_mnist,
    "FashionMNIST/raw": folders.build_fashion_mnist,
    "tiny-imagenet-200": folders.build_tiny_imagenet,
}


@pytest.mark.parametrize("folder", list(BUILDERS))
def test_missing_folder_shows_the_layout(tmp_path: Path, folder: str) -> None:
    with pytest.raises(ConfigError) as caught:
        BUILDERS[folder](_spec(tmp_path))
    message = str(caught.value)
    assert caught.value.key == "data-dir" and message.startswith("data-dir: ")
    assert str(tmp_path / folder) in message and f"\n        {folder}/\n" in message
    assert "never downloads" in message


def test_unset_data_dir(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="data-dir is not set") as caught:
        folders.build_cifar10(_spec(tmp_path, data_dir=""))
    assert "<data-dir>/" in str(caught.value) and "data_batch_1 ... data_batch_5" in str(
        caught.value
    )


def test_incomplete_folders_name_the_missing_file(tmp_path: Path) -> None:
    (fake_cifar10(tmp_path / "a") / "data_batch_3").unlink()
    with pytest.raises(ConfigError, match="data_batch_3") as caught:
        folders.build_cifar10(_spec(tmp_path / "a"))
    assert "test_batch" in str(caught.value)  # the layout is shown too
    fake_mnist(tmp_path / "b" / "MNIST" / "raw", "")
    (tmp_path / "b" / "MNIST" / "raw" / "t10k-labels-idx1-ubyte").unlink()
    with pytest.raises(ConfigError, match=r"t10k-labels-idx1-ubyte\[\.gz\] not found"):
        folders.build_mnist(_spec(tmp_path / "b"))


def test_corrupt_or_unsafe_batches_are_config_errors(tmp_path: Path) -> None:
    folder = fake_cifar10(tmp_path)
    (folder / "test_batch").write_bytes(b"not a pickle")
    with pytest.raises(ConfigError, match="test_batch is not a CIFAR batch"):
        folders.build_cifar10(_spec(tmp_path))
    (folder / "test_batch").write_bytes(pickle.dumps({b"data": Path("x")}, protocol=2))
    with pytest.raises(ConfigError, match="refusing to load pathlib"):
        folders.build_cifar10(_spec(tmp_path))


def test_spec_values_are_checked(tmp_path: Path) -> None:
    fake_cifar10(tmp_path)
    with pytest.raises(ConfigError, match="num-classes"):
        folders.build_cifar10(_spec(tmp_path, num_classes=100))
    with pytest.raises(ConfigError, match="test-fraction"):
        folders.build_cifar10(_spec(tmp_path, test_fraction=1.0))
    with pytest.raises(ConfigError, match="experiences"):
        folders.build_cifar10(_spec(tmp_path, num_experiences=11))


def test_cifar10_through_the_registry(tmp_path: Path) -> None:
    """Needs the ``cifar10`` entry point in ``pyproject.toml`` (and a reinstall)."""
    from hierfl.config import HierConfig
    from hierfl.data.streams import build_benchmark

    fake_cifar10(tmp_path)
    config = HierConfig(scenario="cifar10", data_dir=str(tmp_path), experiences=5).validate()
    _check(build_benchmark(config), 10, (3, 32, 32))
