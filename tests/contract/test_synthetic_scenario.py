"""The synthetic scenario: any shape, seeded, learnable; and digits upscaled for CIFAR models."""

from __future__ import annotations

import pytest
import torch

from hierfl.data.containers import ScenarioSpec
from hierfl.errors import ConfigError
from scenarios.digits import build_digits
from scenarios.synthetic import build_synthetic


def _spec(**kw) -> ScenarioSpec:
    base = {"name": "synthetic", "num_experiences": 5, "seed": 0, "test_fraction": 0.25}
    base.update(kw)
    return ScenarioSpec(**base)


@pytest.fixture(scope="module")
def bench():
    return build_synthetic(_spec(input_shape=(3, 16, 16), samples_per_class=40))


def test_shapes_classes_and_split(bench):
    assert bench.input_shape == (3, 16, 16) and bench.num_classes == 10
    seen = sorted(c for e in bench.train for c in e.classes)
    assert seen == list(range(10))
    for tr, te in zip(bench.train, bench.test, strict=True):
        assert tr.classes == te.classes
        assert len(tr) == 2 * 30 and len(te) == 2 * 10  # 40 per class, 25 % held out
        assert tr.x.shape[1:] == (3, 16, 16) and tr.x.dtype == torch.float32


def test_seeded(bench):
    again = build_synthetic(_spec(input_shape=(3, 16, 16), samples_per_class=40))
    assert torch.equal(again.train[2].x, bench.train[2].x)
    other = build_synthetic(_spec(input_shape=(3, 16, 16), samples_per_class=40, seed=1))
    assert not torch.equal(other.test[0].x, bench.test[0].x)


def test_learnable_by_nearest_class_mean(bench):
    """Class means of the training data classify held-out samples far above chance."""
    x = torch.cat([e.x for e in bench.train]).flatten(1)
    y = torch.cat([e.y for e in bench.train])
    means = torch.stack([x[y == c].mean(0) for c in range(10)])
    xt = torch.cat([e.x for e in bench.test]).flatten(1)
    yt = torch.cat([e.y for e in bench.test])
    accuracy = float((torch.cdist(xt, means).argmin(1) == yt).float().mean())
    assert accuracy > 0.9


def test_bad_sizes():
    with pytest.raises(ConfigError, match="samples-per-class"):
        build_synthetic(_spec(samples_per_class=1))
    with pytest.raises(ConfigError, match="num-classes"):
        build_synthetic(_spec(num_classes=1))


def test_digits_upscaled_to_cifar_shape():
    b = build_digits(ScenarioSpec("digits", 1, 0, 0.25, input_shape=(3, 32, 32)))
    x = b.train[0].x
    assert x.shape[1:] == (3, 32, 32)
    assert torch.equal(x[:, 0], x[:, 2])  # the grey channel repeated
