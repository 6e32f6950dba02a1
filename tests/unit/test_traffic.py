"""Bytes per client and round in the in-process engine, worked out from the model and the data.

Expected figures come from the sizes of things (samples, activation shape, edge weights), not
from the accounting code: fp32 activations are 4 bytes a value, int8 one byte plus one float32
scale per channel, labels one byte (they fit a uint8), every array a 128-byte ``.npy``
header (the serialized payload Flower carries), and each edge gets the weights down and sends
them back up.
"""

from __future__ import annotations

import dataclasses
import json
import math

import pytest

import hierfl
from hierfl.api import edge_streams
from hierfl.config import HierConfig
from hierfl.edge import node as edge_node
from hierfl.models import create_model
from hierfl.testing import make_grid

# fp32 weights and activations without a bottleneck: the byte counts below are worked out for them
BASE = HierConfig(
    clients=2,
    experiences=2,
    rounds=1,
    local_epochs=1,
    cl="naive",
    weight_codec="fp32",
    bottleneck=0,
)
NPY = 128  # numpy's .npy header in front of every serialized array


@pytest.fixture(scope="module")
def small(digits_benchmark):
    """The first 80 training and 40 test samples of each experience: byte counts need no more."""

    def cut(exps, n):
        return tuple(dataclasses.replace(e, x=e.x[:n], y=e.y[:n]) for e in exps)

    return dataclasses.replace(
        digits_benchmark,
        train=cut(digits_benchmark.train, 80),
        test=cut(digits_benchmark.test, 40),
    )


class FakeSleep:
    def __init__(self) -> None:
        self.calls: list[float] = []

    def __call__(self, seconds: float) -> None:
        self.calls.append(seconds)


def _run(bench, config, tmp_path, sleep=None, out=None):
    options = {"sleep": sleep} if sleep is not None else {}
    grid = make_grid(config, bench, tmp_path / config.codec / config.mode, **options)
    result = hierfl.run(config, grid=grid, benchmark=bench, out=out)
    return edge_streams(config, bench), result


def _sizes(bench, config):
    """(edge weights as serialized, values per activation sample, channels at the cut)."""
    model = create_model(
        config.model, cut=config.cut, num_classes=bench.num_classes, input_shape=bench.input_shape
    )
    tensors = model.edge.state_dict().values()
    state = sum(t.numel() * t.element_size() + NPY for t in tensors)
    shape = model.activation_shape()
    return state, math.prod(shape), shape[0]


def test_bytes_per_client_and_round_fp32(small, tmp_path):
    streams, result = _run(small, BASE, tmp_path)
    state, values, _ = _sizes(small, BASE)
    comm = result.communication
    for k in range(2):
        row = comm["per_round"][k]
        n = [len(s.experiences[k].y) for s in streams]
        assert (row["experience"], row["round"]) == (k, 0)
        assert row["downlink_bytes"] == 2 * state
        assert row["uplink_bytes"] == sum(ni * (4 * values + 1) + 2 * NPY + state for ni in n)
        assert (row["uplink_messages"], row["downlink_messages"]) == (2, 2)
    for s in streams:
        client = comm["per_client"][str(s.partition_id)]
        n = sum(len(e.y) for e in s.experiences)
        assert client["uplink_bytes"] == n * (4 * values + 1) + 2 * (2 * NPY + state)
        assert client["downlink_bytes"] == 2 * state
    assert result.time["emulated_link_s"] == 0.0


def test_int8_uplink_is_a_quarter_of_fp32_and_training_still_works(digits_benchmark, tmp_path):
    bench = dataclasses.replace(
        digits_benchmark, train=digits_benchmark.train[:1], test=digits_benchmark.test[:1]
    )
    config = dataclasses.replace(BASE, experiences=1, rounds=2, local_epochs=2)
    int8 = dataclasses.replace(config, codec="int8")
    streams, fp32_result = _run(bench, config, tmp_path)
    _, int8_result = _run(bench, int8, tmp_path)
    state, values, channels = _sizes(bench, config)
    n = sum(len(s.experiences[0].y) for s in streams) * config.local_epochs * config.rounds
    replies = 2 * 2  # clients x rounds
    fp32_up = fp32_result.communication["uplink_bytes"] - replies * (state + 2 * NPY)
    int8_up = int8_result.communication["uplink_bytes"] - replies * (state + 3 * NPY)
    assert fp32_up == n * (4 * values + 1)
    assert int8_up == n * (values + 1) + replies * 4 * channels
    assert 0.24 < int8_up / fp32_up < 0.27
    fp32_acc = fp32_result.accuracy.row("cloud", 0)[-1]
    int8_acc = int8_result.accuracy.row("cloud", 0)[-1]
    assert int8_acc > 0.5  # 5 classes in the experience: chance is 0.2
    assert abs(int8_acc - fp32_acc) <= 0.1


def test_link_emulation_delays_every_message_by_its_size(small, tmp_path):
    config = dataclasses.replace(BASE, bitrate=8e6, downlink_bitrate=4e6, latency=0.01)
    sleep = FakeSleep()
    streams, result = _run(small, config, tmp_path, sleep)
    state, values, _ = _sizes(small, config)
    expected = []  # one wait per exchange: the request down plus the reply up
    for k in range(2):
        for s in streams:
            n = len(s.experiences[k].y)
            down = 0.01 + 8 * state / 4e6  # weights
            up = 0.01 + 8 * (n * (4 * values + 1) + 2 * NPY + state) / 8e6  # chunk + weights
            expected.append(down + up)
    assert sleep.calls == pytest.approx(expected)
    assert result.time["emulated_link_s"] == pytest.approx(sum(expected))
    per_client = result.communication["per_client"]
    # partition 0 ran first in each round: exchanges 0 (experience 0) and 2 (experience 1)
    assert per_client["0"]["emulated_link_s"] == pytest.approx(expected[0] + expected[2])


def test_split_counts_each_batch_both_ways(small, tmp_path):
    config = dataclasses.replace(BASE, mode="split", experiences=2)
    streams, result = _run(small, config, tmp_path)
    state, values, _ = _sizes(small, config)
    n = sum(len(e.y) for s in streams for e in s.experiences)
    batches = sum(math.ceil(len(e.y) / config.batch_size) for s in streams for e in s.experiences)
    replies = 2 * 2  # each edge's round ends with its weights (and no activations)
    comm = result.communication
    up = n * (4 * values + 1) + batches * 2 * NPY + replies * (state + 2 * NPY)
    assert comm["uplink_bytes"] == up
    assert comm["downlink_bytes"] == n * 4 * values + batches * NPY + replies * state


def test_metrics_json_carries_the_communication_blocks(small, tmp_path):
    config = dataclasses.replace(BASE, latency=0.001)
    _run(small, config, tmp_path, FakeSleep(), out=tmp_path / "run")
    metrics = json.loads((tmp_path / "run" / "metrics.json").read_text())
    comm = metrics["communication"]
    assert [r["experience"] for r in comm["per_round"]] == [0, 1]
    assert sorted(comm["per_client"]) == ["0", "1"]
    assert comm["codec"] == "fp32"
    assert comm["raw_codec"] is None  # only cloud mode uploads raw inputs
    assert sum(r["uplink_bytes"] for r in comm["per_round"]) == comm["uplink_bytes"]
    # 2 experiences x 2 edges x (request + reply), 1 ms each
    assert metrics["engine"] == "inprocess"
    assert metrics["time"]["emulated_link_s"] == pytest.approx(8 * 0.001)


def test_edge_slowdown_is_added_to_the_edge_compute(small, tmp_path, monkeypatch):
    calls = []

    def fake_slow_down(compute_s, factor, **_):
        calls.append((compute_s, factor))
        return (factor - 1.0) * compute_s

    monkeypatch.setattr(edge_node, "slow_down", fake_slow_down)
    config = dataclasses.replace(BASE, edge_slowdown=10.0, experiences=2)
    _, result = _run(small, config, tmp_path)
    assert len(calls) == 4 and all(f == 10.0 for _, f in calls)
    assert result.time["edge_compute_s"] == pytest.approx(10.0 * sum(c for c, _ in calls))


def test_last_epoch_ships_one_pass_of_three(small, tmp_path):
    """ship=last-epoch: the edges train 3 epochs but ship the activations of the last only."""
    config = dataclasses.replace(BASE, local_epochs=3)
    streams, every = _run(small, config, tmp_path / "every")
    _, last = _run(small, dataclasses.replace(config, ship="last-epoch"), tmp_path / "last")
    state, values, _ = _sizes(small, config)
    n = sum(len(e.y) for s in streams for e in s.experiences)
    replies = 2 * 2  # clients x experiences
    overhead = replies * (state + 2 * NPY)  # weights and the arrays' headers
    assert every.communication["uplink_bytes"] - overhead == 3 * n * (4 * values + 1)
    assert last.communication["uplink_bytes"] - overhead == n * (4 * values + 1)
    assert [r["examples"] for r in last.metrics["rounds"]] == [
        r["examples"] for r in every.metrics["rounds"]
    ]  # the edges trained the same samples
