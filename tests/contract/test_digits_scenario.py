"""The digits scenario: class split, test fraction, tensor contract, determinism, RNG hygiene."""

from __future__ import annotations

import pytest
import torch

from hierfl.data.containers import Benchmark, ScenarioSpec
from hierfl.errors import ConfigError
from scenarios.digits import build_digits

TOTAL_SAMPLES = 1797  # scikit-learn's bundled digits


def _spec(num_experiences: int = 5, seed: int = 0) -> ScenarioSpec:
    return ScenarioSpec(
        name="digits", num_experiences=num_experiences, seed=seed, test_fraction=0.25
    )


@pytest.fixture(scope="module")
def benchmark() -> Benchmark:
    return build_digits(_spec())


@pytest.fixture(scope="module")
def benchmark_other_seed() -> Benchmark:
    return build_digits(_spec(seed=1))


def _class_order(benchmark: Benchmark) -> list[tuple[int, ...]]:
    return [experience.classes for experience in benchmark.train]


def test_five_experiences_of_two_classes_cover_all_classes_once(benchmark: Benchmark) -> None:
    assert len(benchmark.train) == len(benchmark.test) == 5
    assert [len(c) for c in _class_order(benchmark)] == [2] * 5
    assert sorted(c for classes in _class_order(benchmark) for c in classes) == list(range(10))
    assert benchmark.num_classes == 10
    assert benchmark.input_shape == (1, 8, 8)


def test_train_and_test_have_the_same_classes(benchmark: Benchmark) -> None:
    for k, (train, test) in enumerate(zip(benchmark.train, benchmark.test, strict=True)):
        assert train.index == test.index == k
        assert train.classes == test.classes
        assert sorted(set(train.y.tolist())) == list(train.classes)
        assert sorted(set(test.y.tolist())) == list(test.classes)


def test_test_fraction_and_nothing_lost(benchmark: Benchmark) -> None:
    num_train = sum(len(e) for e in benchmark.train)
    num_test = sum(len(e) for e in benchmark.test)
    assert num_train + num_test == TOTAL_SAMPLES
    assert 0.24 <= num_test / TOTAL_SAMPLES <= 0.26


def test_tensor_contract(benchmark: Benchmark) -> None:
    for experience in benchmark.train + benchmark.test:
        assert experience.x.dtype == torch.float32
        assert experience.x.shape == (len(experience), 1, 8, 8)
        assert experience.x.min() >= 0.0 and experience.x.max() <= 1.0
        assert experience.y.dtype == torch.int64
        assert experience.y.shape == (len(experience),)
    assert max(float(e.x.max()) for e in benchmark.train) == 1.0  # scaled by 16, not by max


def test_every_experience_holds_out_its_share(benchmark: Benchmark) -> None:
    # The split is stratified by class, so each experience keeps about the global 25 %.
    for train, test in zip(benchmark.train, benchmark.test, strict=True):
        assert 0.22 < len(test) / (len(train) + len(test)) < 0.28


def test_same_seed_gives_identical_tensors(benchmark: Benchmark) -> None:
    again = build_digits(_spec())
    assert _class_order(again) == _class_order(benchmark)
    for a, b in zip(again.train + again.test, benchmark.train + benchmark.test, strict=True):
        assert torch.equal(a.x, b.x) and torch.equal(a.y, b.y)


def test_other_seed_gives_other_class_order(
    benchmark: Benchmark, benchmark_other_seed: Benchmark
) -> None:
    assert _class_order(benchmark_other_seed) != _class_order(benchmark)


def test_uneven_split_drops_no_class() -> None:
    benchmark = build_digits(_spec(num_experiences=3))
    assert [len(c) for c in _class_order(benchmark)] == [4, 3, 3]
    assert sorted(c for classes in _class_order(benchmark) for c in classes) == list(range(10))
    assert sum(len(e) for e in benchmark.train + benchmark.test) == TOTAL_SAMPLES
    assert [e.classes for e in benchmark.test] == _class_order(benchmark)


@pytest.mark.parametrize("num_experiences", [0, 11])
def test_bad_number_of_experiences(num_experiences: int) -> None:
    with pytest.raises(ConfigError) as caught:
        build_digits(_spec(num_experiences=num_experiences))
    assert caught.value.key == "experiences"
    assert "1..10" in str(caught.value)


def test_global_torch_rng_is_untouched() -> None:
    torch.manual_seed(12345)
    before = torch.random.get_rng_state()
    build_digits(_spec(seed=3))
    assert torch.equal(torch.random.get_rng_state(), before)
