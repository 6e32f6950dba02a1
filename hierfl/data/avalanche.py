"""Bring a scenario built with Avalanche's generators: its streams as hierfl tensors.

Any object with ``train_stream`` and ``test_stream`` of experiences whose ``dataset`` yields
``(x, y, ...)`` samples works (Avalanche 0.6's ``class_incremental_benchmark``,
``benchmark_from_datasets``, ``nc_benchmark``, ...). Avalanche itself is not imported here.
"""

from __future__ import annotations

from typing import Any

import torch

from hierfl.data.containers import Benchmark, ExperienceData
from hierfl.errors import ConfigError


def from_avalanche(benchmark: Any) -> Benchmark:
    """Convert ``benchmark``'s train and test streams, experience by experience.

    Raises:
        ConfigError: the object has no ``train_stream``/``test_stream``, the two streams differ
            in length, or samples are not image tensors of one shape.
    """
    if not (hasattr(benchmark, "train_stream") and hasattr(benchmark, "test_stream")):
        raise ConfigError(
            "benchmark",
            f"expected hierfl.data.Benchmark or an Avalanche benchmark (train_stream and "
            f"test_stream), got {type(benchmark).__name__}",
        )
    train = tuple(_experience(i, e) for i, e in enumerate(benchmark.train_stream))
    test = tuple(_experience(i, e) for i, e in enumerate(benchmark.test_stream))
    if len(train) != len(test) or not train:
        raise ConfigError(
            "benchmark",
            f"train and test streams must have the same, non-zero number of experiences; "
            f"got {len(train)} and {len(test)}",
        )
    shapes = {tuple(e.x.shape[1:]) for e in train + test if len(e)}
    if len(shapes) != 1 or len(next(iter(shapes))) != 3:
        raise ConfigError("benchmark", f"samples must be CxHxW tensors of one shape, got {shapes}")
    labels = torch.cat([e.y for e in train + test])
    num_classes = int(getattr(benchmark, "n_classes", 0) or int(labels.max()) + 1)
    return Benchmark(train, test, num_classes, next(iter(shapes)))  # type: ignore[arg-type]


def _experience(index: int, experience: Any) -> ExperienceData:
    dataset = experience.dataset
    xs, ys = [], []
    for i in range(len(dataset)):
        sample = dataset[i]
        xs.append(torch.as_tensor(sample[0], dtype=torch.float32))
        ys.append(int(sample[1]))
    x = torch.stack(xs) if xs else torch.zeros(0)
    y = torch.tensor(ys, dtype=torch.long)
    classes = getattr(experience, "classes_in_this_experience", None)
    classes = sorted(int(c) for c in (classes if classes is not None else y.unique().tolist()))
    return ExperienceData(index, tuple(classes), x, y)
