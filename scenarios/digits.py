"""The scikit-learn digits set as a class-incremental benchmark: small, bundled, CPU-fast."""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np
import torch

from hierfl.data import Benchmark, ExperienceData, ScenarioSpec
from hierfl.errors import ConfigError

if TYPE_CHECKING:
    from avalanche.benchmarks.scenarios.generic_scenario import CLStream

NUM_CLASSES = 10
INPUT_SHAPE = (1, 8, 8)


def build_digits(spec: ScenarioSpec) -> Benchmark:
    """Split the 1,797 bundled 8x8 digits into ``spec.num_experiences`` class-incremental steps.

    The class order is a permutation drawn from ``spec.seed`` and the held-out test set is a
    stratified ``spec.test_fraction`` of the data, so every node that builds this benchmark from
    the same spec gets identical tensors. No class is ever dropped: when the number of
    experiences does not divide 10, the first experiences take one class more (3 -> 4, 3, 3).

    Args:
        spec: ``num_experiences`` (1..10), ``seed`` and ``test_fraction`` are used; ``data_dir``
            is ignored because the data ship with scikit-learn.

    Returns:
        Train and test experiences with the same classes at each index; ``x`` is float32 in
        [0, 1] with shape [n, 1, 8, 8] and ``y`` int64.

    Raises:
        ConfigError: ``experiences`` outside 1..10 or ``test-fraction`` outside (0, 1).
    """
    if not 1 <= spec.num_experiences <= NUM_CLASSES:
        raise ConfigError(
            "experiences",
            f"got {spec.num_experiences}; allowed 1..{NUM_CLASSES} for digits "
            "(each experience needs at least one of the 10 classes)",
        )
    if not 0.0 < spec.test_fraction < 1.0:
        raise ConfigError("test-fraction", f"must be in (0, 1), got {spec.test_fraction}")

    from sklearn.datasets import load_digits
    from sklearn.model_selection import train_test_split

    x, y = load_digits(return_X_y=True)
    x = (x / 16.0).astype(np.float32).reshape(-1, *INPUT_SHAPE)
    x_train, x_test, y_train, y_test = train_test_split(
        x, y, test_size=spec.test_fraction, stratify=y, random_state=spec.seed
    )
    train = _tensor_dataset(x_train, y_train)
    test = _tensor_dataset(x_test, y_test)

    # Avalanche costs ~10 s to import, so only a build pays for it. Its ``seed=`` argument calls
    # ``torch.manual_seed`` (which also reseeds CUDA); drawing the order from a private generator
    # instead gives the same permutation without touching global state, and fork_rng guards the
    # CPU generator against any other draw Avalanche might make.
    from avalanche.benchmarks.scenarios import class_incremental_benchmark

    class_order = torch.randperm(NUM_CLASSES, generator=torch.Generator().manual_seed(spec.seed))
    with torch.random.fork_rng(devices=[]):
        scenario = class_incremental_benchmark(
            {"train": train, "test": test},
            class_order=class_order.tolist(),
            num_classes_per_exp=_classes_per_experience(spec.num_experiences),
        )
    return Benchmark(
        train=_experiences(scenario.streams["train"]),
        test=_experiences(scenario.streams["test"]),
        num_classes=NUM_CLASSES,
        input_shape=INPUT_SHAPE,
    )


def _classes_per_experience(num_experiences: int) -> list[int]:
    """An as-even-as-possible split of the classes, larger shares first.

    Passed explicitly on every build because Avalanche's ``num_experiences=`` path silently
    drops the remainder classes.
    """
    share, extra = divmod(NUM_CLASSES, num_experiences)
    return [share + (1 if k < extra else 0) for k in range(num_experiences)]


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
