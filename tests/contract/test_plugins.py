"""Every registered plug-in runs a tiny ``hierfl.run`` in process: the registries generate the
cases, so a new aggregator, continual method, scenario or partitioner is tested as it lands.
Models run in every mode in ``test_modes_models.py``."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass

import pytest
import torch
from fake_datasets import fake_cifar10, fake_cifar100, fake_mnist, fake_tiny_imagenet

import hierfl
from hierfl.api import prepare
from hierfl.data.streams import build_benchmark
from hierfl.errors import ConfigError
from hierfl.modes import MODES
from hierfl.options import option
from hierfl.preflight import describe
from hierfl.registry import AGGREGATORS, CONTINUAL, PARTITIONERS, SCENARIOS
from hierfl.registry.declarations import ContinualMethod
from hierfl.train.continual import CloudHooks, StrategyParts

TINY = {"clients": 2, "experiences": 2, "rounds": 1, "local-epochs": 1, "batch-size": 8}


@pytest.fixture(scope="module")
def small(digits_benchmark):
    """Digits, 60 training and 30 test samples an experience: enough to run every plug-in."""

    def cut(experiences, n):
        return tuple(dataclasses.replace(e, x=e.x[:n], y=e.y[:n]) for e in experiences)

    return dataclasses.replace(
        digits_benchmark, train=cut(digits_benchmark.train, 60), test=cut(digits_benchmark.test, 30)
    )


@pytest.mark.parametrize("name", AGGREGATORS.names())
def test_every_aggregator_runs(name, small):
    result = hierfl.run(TINY, strategy=name, benchmark=small)
    assert result.status == "completed" and result.accuracy.exits() == ["edge", "cloud"]
    assert result.metrics["config"]["strategy"] == name


def test_the_configured_aggregator_is_the_one_that_aggregates(small):
    """FedMedian and FedAvg, same seed, same replies from 3 edges (the median of two values is
    their mean): different aggregated edge weights."""
    seen = {}
    for name in ("fedavg", "fedmedian"):
        session = prepare(TINY, clients=3, strategy=name, benchmark=small)
        session.run()
        seen[name] = {k: v.clone() for k, v in session.orchestrator.model.edge.state_dict().items()}
    assert any(not torch.equal(seen["fedavg"][k], seen["fedmedian"][k]) for k in seen["fedavg"])


@pytest.mark.parametrize(
    ("name", "mode"), [(n, m) for n in CONTINUAL.names() for m in MODES], ids=lambda v: v
)
def test_every_continual_method_in_every_mode_it_declares(name, mode, small):
    if not CONTINUAL.plugin(name).supports(mode):
        with pytest.raises(ConfigError, match=f"cl: '{name}' works in"):
            hierfl.run(TINY, cl=name, mode=mode, benchmark=small)
        return
    result = hierfl.run(TINY, cl=name, mode=mode, benchmark=small)
    assert result.status == "completed"
    assert result.accuracy.exits() == list(MODES[mode].exits)


@pytest.mark.parametrize("name", PARTITIONERS.names())
def test_every_partitioner_splits_each_experience_disjointly_and_runs(name, small):
    from hierfl.api import edge_streams
    from hierfl.config import HierConfig

    config = HierConfig.from_mapping({**TINY, "partition": name}).validate()
    streams = edge_streams(config, small)
    for k, experience in enumerate(small.train):
        shares = torch.cat([s.experiences[k].y for s in streams])
        assert sorted(shares.tolist()) == sorted(experience.y.tolist())  # disjoint, complete
    assert hierfl.run(config, benchmark=small).status == "completed"


FOLDER_DATA = {  # what each folder scenario reads, written small by the test
    "cifar10": lambda root: fake_cifar10(root, per_class=4),
    "cifar100": fake_cifar100,
    "mnist": lambda root: fake_mnist(root / "MNIST" / "raw", ""),
    "fashion-mnist": lambda root: fake_mnist(root / "FashionMNIST" / "raw", ".gz"),
    "tiny-imagenet": lambda root: fake_tiny_imagenet(root, ["n01", "n02", "n03", "n04"]),
}


@pytest.mark.parametrize("name", SCENARIOS.names())
def test_every_scenario_describes_itself_as_it_builds_and_runs(name, tmp_path):
    values = {**TINY, "scenario": name}
    if name in FOLDER_DATA:
        FOLDER_DATA[name](tmp_path)
        values["data-dir"] = str(tmp_path)
    elif name == "synthetic":
        values.update({"num-classes": 4, "samples-per-class": 8, "input-shape": "1x8x8"})
    elif name == "digits":
        values.update({"rounds": 1, "local-epochs": 1, "test-fraction": 0.9})  # a small train
    else:
        pytest.fail(f"add fake data for scenario {name!r} to FOLDER_DATA")
    config = hierfl.HierConfig.from_mapping(values).validate()
    info, bench = describe(config), build_benchmark(config)
    assert (info.num_classes, info.input_shape) == (bench.num_classes, bench.input_shape)
    assert hierfl.run(config, benchmark=bench).status == "completed"


# ---- a third-party plug-in with settings of its own ---------------------------------------------
@dataclass(frozen=True)
class RepeatSettings:
    times: int = option(1, "how many times the cloud sees each batch", ge=1)


class Repeat(CloudHooks):
    def __init__(self, times: int) -> None:
        self.times = times

    def batch(self, a, y, *, experience):
        return torch.cat([a] * self.times), torch.cat([y] * self.times)


REPEAT = ContinualMethod(
    build=lambda config, settings: StrategyParts(cloud=Repeat(settings.times)),
    settings=RepeatSettings,
    sides=("cloud",),
    modes=("hierarchical",),
    summary="a test plug-in: the cloud trains on each batch several times",
)


def test_a_third_party_plugin_with_its_own_settings(small):
    CONTINUAL.register("repeat", REPEAT)
    try:
        examples = {}
        for times in (1, 3):
            session = prepare(TINY, cl="repeat", benchmark=small, **{"repeat.times": times})
            session.run()
            examples[times] = session.orchestrator.cloud.stats.examples
        assert examples[3] == 3 * examples[1] > 0  # the setting reached the plug-in
        with pytest.raises(ConfigError, match="repeat.times: must be >= 1"):
            hierfl.run(TINY, cl="repeat", benchmark=small, **{"repeat.times": 0})
    finally:
        CONTINUAL.unregister("repeat")
