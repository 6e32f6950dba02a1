"""Plain tensor containers for streams: what scenarios produce and engines consume."""

from __future__ import annotations

from dataclasses import dataclass

import torch


@dataclass(frozen=True)
class ExperienceData:
    """One experience's samples: ``x`` float32 [n, C, H, W], ``y`` int64 [n]."""

    index: int
    classes: tuple[int, ...]
    x: torch.Tensor
    y: torch.Tensor

    def __len__(self) -> int:
        return int(self.y.shape[0])


@dataclass(frozen=True)
class Benchmark:
    """A class-incremental benchmark: train and test experiences with the same class split."""

    train: tuple[ExperienceData, ...]
    test: tuple[ExperienceData, ...]
    num_classes: int
    input_shape: tuple[int, int, int]
    train_sizes: tuple[int, ...] = ()  # samples per training experience, when train is left out

    @property
    def sizes(self) -> tuple[int, ...]:
        """Training samples per experience (all edges together)."""
        return tuple(len(e) for e in self.train) if self.train else self.train_sizes


@dataclass(frozen=True)
class ScenarioSpec:
    """What a scenario builder needs; builders are plain functions of this spec."""

    name: str
    num_experiences: int
    seed: int
    test_fraction: float
    data_dir: str = ""
    input_shape: tuple[int, int, int] | None = None  # None: the scenario's own
    num_classes: int | None = None  # None: the scenario's own
    samples_per_class: int | None = None  # None: the scenario's own (synthetic data)


@dataclass(frozen=True)
class ClientStream:
    """One edge device's private stream: its share of every training experience."""

    partition_id: int
    num_partitions: int
    experiences: tuple[ExperienceData, ...]
    num_classes: int
    input_shape: tuple[int, int, int]


@dataclass(frozen=True)
class ScenarioInfo:
    """What a scenario answers cheaply, before anything is built (``Scenario.describe``)."""

    num_classes: int
    input_shape: tuple[int, int, int]
