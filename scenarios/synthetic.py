"""Seeded, learnable synthetic images of any shape: one smooth pattern per class, plus noise.

Stands in for CIFAR or Tiny ImageNet where those cannot be downloaded, so the large models run
end to end on any machine.
"""

from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F

from hierfl.plugins import Benchmark, ConfigError, Scenario, ScenarioInfo, ScenarioSpec
from scenarios.class_incremental import as_stored, class_incremental

DEFAULT_SHAPE = (3, 32, 32)
DEFAULT_CLASSES = 10
DEFAULT_SAMPLES_PER_CLASS = 60
NOISE = 0.35


def build_synthetic(spec: ScenarioSpec) -> Benchmark:
    """``samples_per_class`` images per class of ``input_shape`` (default 3x32x32, 10 classes).

    Each class's prototype is low-resolution noise upsampled to the image size, so classes
    differ in coarse structure that convolutions pick up; each sample adds Gaussian noise
    (sigma 0.35) and a random brightness shift, and is stored as 8-bit pixels (clipped to
    [0, 1]). Everything is drawn from ``spec.seed``.
    """
    shape = spec.input_shape or DEFAULT_SHAPE
    num_classes = spec.num_classes or DEFAULT_CLASSES
    per_class = spec.samples_per_class or DEFAULT_SAMPLES_PER_CLASS
    if num_classes < 2:
        raise ConfigError("num-classes", f"synthetic needs at least 2 classes, got {num_classes}")
    n_test = round(per_class * spec.test_fraction)
    if not 0 < n_test < per_class:
        raise ConfigError(
            "samples-per-class",
            f"{per_class} samples per class leave no train or test data at test-fraction "
            f"{spec.test_fraction}; use more samples",
        )
    g = torch.Generator().manual_seed(spec.seed)
    c, h, w = shape
    coarse = torch.rand(num_classes, c, max(h // 8, 2), max(w // 8, 2), generator=g)
    prototypes = F.interpolate(coarse, size=(h, w), mode="bilinear", align_corners=False)
    y = torch.arange(num_classes).repeat_interleave(per_class)
    noise = NOISE * torch.randn(len(y), c, h, w, generator=g)
    shift = 0.1 * torch.randn(len(y), 1, 1, 1, generator=g)
    x = (prototypes[y] + noise + shift).to(torch.float32)
    x = torch.from_numpy(as_stored(x.numpy()))  # 8-bit images, as a camera would store them
    is_test = torch.zeros(num_classes, per_class, dtype=torch.bool)
    is_test[:, :n_test] = True  # samples of a class are i.i.d.: the first n_test are held out
    is_test = is_test.flatten()
    xn, yn = x.numpy(), y.numpy().astype(np.int64)
    return class_incremental(
        (xn[~is_test.numpy()], yn[~is_test.numpy()]),
        (xn[is_test.numpy()], yn[is_test.numpy()]),
        num_classes=num_classes,
        num_experiences=spec.num_experiences,
        seed=spec.seed,
        name="synthetic",
    )


def describe_synthetic(spec: ScenarioSpec) -> ScenarioInfo:
    num_classes = spec.num_classes or DEFAULT_CLASSES
    if num_classes < 2:
        raise ConfigError("num-classes", f"synthetic needs at least 2 classes, got {num_classes}")
    return ScenarioInfo(num_classes, spec.input_shape or DEFAULT_SHAPE)


synthetic = Scenario(
    build=build_synthetic,
    describe=describe_synthetic,
    summary="seeded class patterns plus noise, any shape (num-classes, samples-per-class)",
)
