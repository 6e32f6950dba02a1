"""Avalanche's class-incremental split of any labelled tensors, with a seeded class order."""

from __future__ import annotations

import warnings
from typing import TYPE_CHECKING

import numpy as np
import torch
import torch.nn.functional as F

from hierfl.plugins import Benchmark, ConfigError, ExperienceData

if TYPE_CHECKING:
    from avalanche.benchmarks.scenarios.generic_scenario import CLStream


def class_incremental(
    train: tuple[np.ndarray, np.ndarray],
    test: tuple[np.ndarray, np.ndarray],
    *,
    num_classes: int,
    num_experiences: int,
    seed: int,
    name: str,
) -> Benchmark:
    """Split ``train`` and ``test`` (x float32 [n, C, H, W], y ints in 0..num_classes-1).

    Never drops a class: when ``num_experiences`` does not divide ``num_classes`` the first
    experiences take one class more (10 in 3 -> 4, 3, 3).

    Raises:
        ConfigError: ``experiences`` outside 1..num_classes.
    """
    if not 1 <= num_experiences <= num_classes:
        raise ConfigError(
            "experiences",
            f"got {num_experiences}; allowed 1..{num_classes} for {name} "
            f"(each experience needs at least one of the {num_classes} classes)",
        )
    # Avalanche costs ~10 s to import, so only a build pays for it. Its ``seed=`` argument calls
    # ``torch.manual_seed`` (which also reseeds CUDA); drawing the order from a private generator
    # instead gives the same permutation without touching global state, and fork_rng guards the
    # CPU generator against any other draw Avalanche might make.
    with warnings.catch_warnings():  # its optional QP solvers are for GEM-type strategies
        warnings.filterwarnings("ignore", message="no QP solver found")
        warnings.filterwarnings("ignore", message="JAXopt is no longer maintained")
        from avalanche.benchmarks.scenarios import class_incremental_benchmark

    class_order = torch.randperm(num_classes, generator=torch.Generator().manual_seed(seed))
    with torch.random.fork_rng(devices=[]):
        scenario = class_incremental_benchmark(
            {"train": _tensor_dataset(*train), "test": _tensor_dataset(*test)},
            class_order=class_order.tolist(),
            num_classes_per_exp=classes_per_experience(num_classes, num_experiences),
        )
    return Benchmark(
        train=_experiences(scenario.streams["train"]),
        test=_experiences(scenario.streams["test"]),
        num_classes=num_classes,
        input_shape=tuple(int(v) for v in train[0].shape[1:]),  # type: ignore[arg-type]
    )


def classes_per_experience(num_classes: int, num_experiences: int) -> list[int]:
    """An as-even-as-possible split of the classes, larger shares first.

    Passed explicitly on every build because Avalanche's ``num_experiences=`` path silently
    drops the remainder classes.
    """
    share, extra = divmod(num_classes, num_experiences)
    return [share + (1 if k < extra else 0) for k in range(num_experiences)]


def as_stored(x: np.ndarray) -> np.ndarray:
    """Pixels in [0, 1] on the uint8 grid (``k / 255``), as an 8-bit image file holds them.

    Every built-in scenario ends with this, so that its images are exactly what a device stores
    and uploading them as uint8 (cloud mode's ``raw-codec=uint8``) loses nothing.
    """
    return (np.round(np.clip(x, 0.0, 1.0) * 255.0) / 255.0).astype(np.float32)


def resize(x: np.ndarray, shape: tuple[int, int, int]) -> np.ndarray:
    """Bilinear resize to HxW and repeat a single channel to C (e.g. digits for a CIFAR model)."""
    c, h, w = shape
    if x.shape[1] not in (1, c):
        raise ConfigError("input-shape", f"cannot turn {x.shape[1]} channels into {c}")
    t = torch.from_numpy(x)
    if tuple(t.shape[2:]) != (h, w):
        t = F.interpolate(t, size=(h, w), mode="bilinear", align_corners=False)
    if t.shape[1] != c:
        t = t.repeat(1, c, 1, 1)
    return t.numpy().astype(np.float32)


def _tensor_dataset(x: np.ndarray, y: np.ndarray) -> torch.utils.data.TensorDataset:
    """Avalanche reads targets from the second tensor and yields ``(x, y, task)`` samples."""
    return torch.utils.data.TensorDataset(
        torch.from_numpy(np.ascontiguousarray(x)), torch.as_tensor(y, dtype=torch.int64)
    )


def _experiences(stream: CLStream) -> tuple[ExperienceData, ...]:
    """Copy each Avalanche experience out into plain tensors, keeping Avalanche's sample order."""
    out = []
    for k, experience in enumerate(stream):
        samples = list(experience.dataset)
        out.append(
            ExperienceData(
                index=k,
                classes=tuple(sorted(int(c) for c in experience.classes_in_this_experience)),
                x=torch.stack([s[0] for s in samples]).to(torch.float32),
                y=torch.as_tensor([int(s[1]) for s in samples], dtype=torch.int64),
            )
        )
    return tuple(out)
