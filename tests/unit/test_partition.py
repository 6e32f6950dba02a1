"""IID partitioning: disjoint, complete, stratified and seeded, on small synthetic tensors."""

from __future__ import annotations

from collections import Counter

import pytest
import torch

from hierfl.data.containers import Benchmark, ClientStream, ExperienceData
from hierfl.errors import ConfigError
from scenarios.partition import partition_iid

NUM_PARTITIONS = 3


def _experience(index: int, counts: dict[int, int]) -> ExperienceData:
    """Samples whose first pixel is a unique id, so shares can be compared by id."""
    y = torch.tensor([c for c, n in counts.items() for _ in range(n)], dtype=torch.int64)
    x = torch.zeros(len(y), 1, 2, 2)
    x[:, 0, 0, 0] = torch.arange(len(y), dtype=torch.float32) + 1000 * index
    perm = torch.randperm(len(y), generator=torch.Generator().manual_seed(index))
    return ExperienceData(index=index, classes=tuple(sorted(counts)), x=x[perm], y=y[perm])


@pytest.fixture(scope="module")
def benchmark() -> Benchmark:
    train = (_experience(0, {0: 7, 1: 5}), _experience(1, {2: 9, 3: 4, 4: 1}))
    test = (_experience(0, {0: 2, 1: 2}), _experience(1, {2: 2, 3: 2, 4: 2}))
    return Benchmark(train=train, test=test, num_classes=5, input_shape=(1, 2, 2))


def _ids(experience: ExperienceData) -> list[int]:
    return experience.x[:, 0, 0, 0].long().tolist()


def _all(benchmark: Benchmark, seed: int = 0) -> list[ClientStream]:
    return [
        partition_iid(benchmark, partition_id=p, num_partitions=NUM_PARTITIONS, seed=seed)
        for p in range(NUM_PARTITIONS)
    ]


def test_shares_are_disjoint_and_complete(benchmark: Benchmark) -> None:
    streams = _all(benchmark)
    for k, experience in enumerate(benchmark.train):
        ids = [i for stream in streams for i in _ids(stream.experiences[k])]
        assert len(ids) == len(set(ids))
        assert sorted(ids) == sorted(_ids(experience))


def test_shares_keep_labels_with_their_samples(benchmark: Benchmark) -> None:
    for stream in _all(benchmark):
        for share, experience in zip(stream.experiences, benchmark.train, strict=True):
            label_of = dict(zip(_ids(experience), experience.y.tolist(), strict=True))
            assert share.y.tolist() == [label_of[i] for i in _ids(share)]
            assert share.index == experience.index
            assert share.classes == experience.classes
            assert share.x.shape[1:] == experience.x.shape[1:]


def test_shares_are_stratified(benchmark: Benchmark) -> None:
    streams = _all(benchmark)
    for k, experience in enumerate(benchmark.train):
        for label in experience.classes:
            counts = [Counter(s.experiences[k].y.tolist())[label] for s in streams]
            assert max(counts) - min(counts) <= 1


def test_stream_metadata(benchmark: Benchmark) -> None:
    stream = partition_iid(benchmark, partition_id=2, num_partitions=NUM_PARTITIONS, seed=0)
    assert (stream.partition_id, stream.num_partitions) == (2, NUM_PARTITIONS)
    assert (stream.num_classes, stream.input_shape) == (5, (1, 2, 2))
    assert len(stream.experiences) == len(benchmark.train)


def test_same_seed_same_split(benchmark: Benchmark) -> None:
    for first, second in zip(_all(benchmark, seed=7), _all(benchmark, seed=7), strict=True):
        for a, b in zip(first.experiences, second.experiences, strict=True):
            assert torch.equal(a.x, b.x) and torch.equal(a.y, b.y)


def test_other_seed_other_split(benchmark: Benchmark) -> None:
    first, second = _all(benchmark, seed=0), _all(benchmark, seed=1)
    assert any(
        _ids(a.experiences[k]) != _ids(b.experiences[k])
        for a, b in zip(first, second, strict=True)
        for k in range(len(benchmark.train))
    )


def test_single_partition_is_the_whole_experience(benchmark: Benchmark) -> None:
    stream = partition_iid(benchmark, partition_id=0, num_partitions=1, seed=0)
    for share, experience in zip(stream.experiences, benchmark.train, strict=True):
        assert torch.equal(share.x, experience.x) and torch.equal(share.y, experience.y)


def test_more_clients_than_samples_gives_empty_shares(benchmark: Benchmark) -> None:
    streams = [partition_iid(benchmark, partition_id=p, num_partitions=20, seed=0) for p in (0, 19)]
    assert len(streams[0].experiences[0]) == 2  # one sample of each of the two classes
    assert len(streams[1].experiences[0]) == 0
    assert streams[1].experiences[0].x.shape == (0, 1, 2, 2)


@pytest.mark.parametrize("partition_id", [-1, NUM_PARTITIONS, NUM_PARTITIONS + 5])
def test_bad_partition_id(benchmark: Benchmark, partition_id: int) -> None:
    with pytest.raises(ConfigError) as caught:
        partition_iid(benchmark, partition_id=partition_id, num_partitions=NUM_PARTITIONS, seed=0)
    assert caught.value.key == "partition-id"


def test_bad_num_partitions(benchmark: Benchmark) -> None:
    with pytest.raises(ConfigError) as caught:
        partition_iid(benchmark, partition_id=0, num_partitions=0, seed=0)
    assert caught.value.key == "clients"


def test_negative_seed(benchmark: Benchmark) -> None:
    with pytest.raises(ConfigError) as caught:
        partition_iid(benchmark, partition_id=0, num_partitions=NUM_PARTITIONS, seed=-1)
    assert caught.value.key == "seed"
