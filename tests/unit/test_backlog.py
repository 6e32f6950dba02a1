"""An edge whose uplink is down keeps training and ships a bounded backlog when it is back."""

from __future__ import annotations

import pytest
import torch

from hierfl.api import edge_streams, prepare
from hierfl.config import HierConfig
from hierfl.edge.backlog import Backlog
from hierfl.errors import ConfigError


def _run(digits_benchmark, tmp_path, **changes):
    config = HierConfig.from_mapping(
        {"clients": 2, "experiences": 1, "rounds": 4, "local-epochs": 1, "cl": "naive", **changes}
    ).validate()
    session = prepare(config, benchmark=digits_benchmark, out=tmp_path)
    result = session.run()
    return session.orchestrator, result, edge_streams(config, digits_benchmark)


def test_the_backlog_of_an_outage_reaches_the_cloud_when_the_link_returns(
    digits_benchmark, tmp_path
):
    orchestrator, result, streams = _run(digits_benchmark, tmp_path, **{"link-down": "1:2-3"})
    down = [e for e in result.metrics["events"] if e["event"] == "edge-failed"]
    assert [(e["partition"], e["round"]) for e in down] == [(1, 1), (1, 2)]
    assert all("UplinkDown" in e["reason"] for e in down)
    (shipped,) = [e for e in result.metrics["events"] if e["event"] == "backlog-shipped"]
    n1 = len(streams[1].experiences[0])
    assert (shipped["partition"], shipped["round"]) == (1, 3)
    assert (shipped["shipped"], shipped["dropped"]) == (2 * n1, 0)  # both missed rounds
    n0 = len(streams[0].experiences[0])
    # the cloud trained on 4 rounds of edge 0, 2 of edge 1 and edge 1's 2-round backlog
    assert orchestrator.cloud.stats.examples == 4 * n0 + 4 * n1
    assert not (tmp_path / "nodes" / "node-1" / "run-0" / "backlog.pt").exists()


def test_the_backlog_is_bounded_and_counts_what_it_drops(digits_benchmark, tmp_path):
    per_sample = 4 * orchestrator_activation_numel(digits_benchmark) + 8
    bound_mb = 100 * per_sample / 2**20  # room for 100 samples
    settings = {"link-down": "1:1-3", "backlog-mb": bound_mb, "bottleneck": 0}  # fp32 rows
    _, result, streams = _run(digits_benchmark, tmp_path, **settings)
    (shipped,) = [e for e in result.metrics["events"] if e["event"] == "backlog-shipped"]
    n1 = len(streams[1].experiences[0])
    assert shipped["shipped"] == 100
    assert shipped["dropped"] == 3 * n1 - 100


def orchestrator_activation_numel(bench) -> int:
    from hierfl.models import create_model

    model = create_model(
        "small-cnn", cut="", num_classes=bench.num_classes, input_shape=bench.input_shape
    )
    return int(torch.Size(model.activation_shape()).numel())


def test_trim_keeps_a_uniform_subsample():
    backlog = Backlog()
    backlog.add(torch.arange(1000.0).view(-1, 1), torch.zeros(1000, dtype=torch.long))
    dropped = backlog.trim(100 * (4 + 8), torch.Generator().manual_seed(0))
    assert dropped == 900 and len(backlog) == 100 and backlog.dropped == 900
    assert 300 < float(backlog.activations.mean()) < 700  # drawn from the whole span


@pytest.mark.parametrize("value", ["1", "5:1-2", "1:3-2", "1:0-1", "1:1-99", "x:1"])
def test_malformed_link_down_is_a_config_error(value):
    with pytest.raises(ConfigError) as err:
        HierConfig(clients=2, link_down=value).validate()
    assert err.value.key == "link-down"
