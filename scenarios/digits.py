"""The scikit-learn digits set as a class-incremental benchmark: small, bundled, CPU-fast."""

from __future__ import annotations

import numpy as np

from hierfl.plugins import Benchmark, ConfigError, Scenario, ScenarioInfo, ScenarioSpec
from scenarios.class_incremental import as_stored, class_incremental, resize

NUM_CLASSES = 10
INPUT_SHAPE = (1, 8, 8)


def build_digits(spec: ScenarioSpec) -> Benchmark:
    """Split the 1,797 bundled 8x8 digits into ``spec.num_experiences`` class-incremental steps.

    The class order is a permutation drawn from ``spec.seed`` and the held-out test set is a
    stratified ``spec.test_fraction`` of the data, so every node that builds this benchmark from
    the same spec gets identical tensors.

    Args:
        spec: ``num_experiences`` (1..10), ``seed``, ``test_fraction`` and optionally
            ``input_shape`` (upscaled bilinearly, channels repeated: e.g. 3x32x32 for the CIFAR
            models) are used; ``data_dir`` is ignored because the data ship with scikit-learn.

    Returns:
        Train and test experiences with the same classes at each index; ``x`` is float32 in
        [0, 1] on the uint8 grid (``k / 255``) with shape [n, 1, 8, 8] (or ``input_shape``) and
        ``y`` int64.

    Raises:
        ConfigError: ``experiences`` outside 1..10, ``test-fraction`` outside (0, 1), or a
            ``num-classes`` other than 10.
    """
    if not 0.0 < spec.test_fraction < 1.0:
        raise ConfigError("test-fraction", f"must be in (0, 1), got {spec.test_fraction}")
    if spec.num_classes not in (None, NUM_CLASSES):
        raise ConfigError("num-classes", f"digits has exactly {NUM_CLASSES} classes")

    from sklearn.datasets import load_digits
    from sklearn.model_selection import train_test_split

    x, y = load_digits(return_X_y=True)
    x = (x / 16.0).astype(np.float32).reshape(-1, *INPUT_SHAPE)
    if spec.input_shape is not None and spec.input_shape != INPUT_SHAPE:
        x = resize(x, spec.input_shape)
    x = as_stored(x)  # 8-bit pixels, as the images are stored
    x_train, x_test, y_train, y_test = train_test_split(
        x, y, test_size=spec.test_fraction, stratify=y, random_state=spec.seed
    )
    return class_incremental(
        (x_train, y_train),
        (x_test, y_test),
        num_classes=NUM_CLASSES,
        num_experiences=spec.num_experiences,
        seed=spec.seed,
        name="digits",
    )


def describe_digits(spec: ScenarioSpec) -> ScenarioInfo:
    """10 classes; 1x8x8, or ``spec.input_shape`` when the images are upscaled."""
    if spec.num_classes not in (None, NUM_CLASSES):
        raise ConfigError("num-classes", f"digits has exactly {NUM_CLASSES} classes")
    return ScenarioInfo(NUM_CLASSES, spec.input_shape or INPUT_SHAPE)


digits = Scenario(
    build=build_digits,
    describe=describe_digits,
    summary="scikit-learn's bundled 8x8 digits (1,797 images, 10 classes): nothing to download",
)
