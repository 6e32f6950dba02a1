"""Non-IID edges: Dirichlet shares and clients that meet new classes late, or never."""

from __future__ import annotations

import dataclasses

import pytest
import torch

from hierfl.config import HierConfig
from hierfl.data.containers import Benchmark, ExperienceData
from hierfl.data.streams import partition_stream
from hierfl.errors import ConfigError
from scenarios.dirichlet import partition_dirichlet


def _bench() -> Benchmark:
    def exp(k: int, classes: tuple[int, ...]) -> ExperienceData:
        y = torch.tensor([c for c in classes for _ in range(40)])
        x = torch.arange(len(y), dtype=torch.float32).view(-1, 1, 1, 1) + 1000 * k
        return ExperienceData(k, classes, x, y)

    train = (exp(0, (0, 1)), exp(1, (2, 3)), exp(2, (4, 5)))
    return Benchmark(train=train, test=train, num_classes=6, input_shape=(1, 1, 1))


def test_dirichlet_shares_are_disjoint_complete_and_skewed():
    bench = _bench()
    shares = [
        partition_dirichlet(bench, partition_id=i, num_partitions=4, seed=0, alpha=0.1)
        for i in range(4)
    ]
    for k in range(3):
        ids = torch.cat([s.experiences[k].x.flatten() for s in shares])
        assert sorted(ids.tolist()) == sorted(bench.train[k].x.flatten().tolist())
    sizes = [len(s.experiences[0]) for s in shares]
    assert max(sizes) - min(sizes) > 20  # alpha 0.1 is far from an even 20/20/20/20
    again = partition_dirichlet(bench, partition_id=2, num_partitions=4, seed=0, alpha=0.1)
    assert torch.equal(again.experiences[1].x, shares[2].experiences[1].x)
    with pytest.raises(ConfigError, match="dirichlet.alpha"):
        partition_dirichlet(bench, partition_id=0, num_partitions=4, seed=0, alpha=0.0)


def test_late_and_never_clients():
    bench = _bench()
    config = HierConfig(clients=3, experiences=3, late_clients="1:1,2:never")
    on_time = partition_stream(config, bench, 0, 3)
    late = partition_stream(config, bench, 1, 3)
    never = partition_stream(config, bench, 2, 3)
    assert [e.classes for e in on_time.experiences] == [(0, 1), (2, 3), (4, 5)]
    assert [e.classes for e in late.experiences] == [(), (0, 1), (2, 3)]
    assert len(late.experiences[0]) == 0
    assert [len(e) for e in never.experiences][1:] == [0, 0]
    assert never.experiences[0].classes == (0, 1)


@pytest.mark.parametrize("value", ["1", "5:1", "1:0", "x:never", "1:soon"])
def test_bad_late_clients_values(value):
    with pytest.raises(ConfigError, match="late-clients"):
        dataclasses.replace(HierConfig(clients=3), late_clients=value).validate()
