"""The cloud round loop over the in-process grid: metrics, pipelining, rejected replies."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest
import torch
from flwr.app import Array, Message

import hierfl
from hierfl.api import prepare
from hierfl.app.inprocess import InProcessGrid
from hierfl.app.protocol import ACTIVATIONS, decode_result, encode_result, eval_state
from hierfl.config import HierConfig
from hierfl.errors import HierflError
from hierfl.testing import make_grid

TINY = HierConfig(clients=2, experiences=2, rounds=2, local_epochs=2)


def test_run_fills_the_accuracy_matrix(digits_benchmark, tmp_path):
    result = hierfl.run(TINY, benchmark=digits_benchmark, out=tmp_path)
    assert result.accuracy.exits() == ["edge", "cloud"]
    for k in range(2):
        for exit_name in ("edge", "cloud"):
            row = result.accuracy.row(exit_name, k)
            assert len(row) == k + 1
            assert row[-1] > 0.5  # newest experience: 5 classes, chance is 0.2
    assert len(result.metrics["rounds"]) == 4
    assert result.communication["uplink_bytes"] > 0 < result.communication["downlink_bytes"]
    assert result.metrics["rejected_replies"] == 0 and result.metrics["events"] == []
    # node-local state (optimizer + cursor) persisted for each edge
    states = sorted({p.parent.parent.name for p in tmp_path.glob("nodes/*/run-0/edge_state-*")})
    assert states == ["node-0", "node-1"]


def _nan(r):
    return dataclasses.replace(r.chunk, activations=r.chunk.activations * float("nan"))


def _inf(r):
    a = r.chunk.activations.clone()
    a[0].view(-1)[0] = float("inf")
    return dataclasses.replace(r.chunk, activations=a)


CORRUPTIONS = {
    "nan": lambda r: dataclasses.replace(r, chunk=_nan(r)),
    "inf": lambda r: dataclasses.replace(r, chunk=_inf(r)),
    "shape": lambda r: dataclasses.replace(
        r, chunk=dataclasses.replace(r.chunk, activations=r.chunk.activations[:, :1])
    ),
    "labels": lambda r: dataclasses.replace(
        r, chunk=dataclasses.replace(r.chunk, labels=r.chunk.labels + 100)
    ),
    "count": lambda r: dataclasses.replace(
        r, chunk=dataclasses.replace(r.chunk, labels=r.chunk.labels[:-1])
    ),
    "stale-round": lambda r: dataclasses.replace(r, round=r.round + 1),
    "stale-experience": lambda r: dataclasses.replace(r, experience=r.experience + 1),
    "weights": lambda r: dataclasses.replace(r, edge_state={"bogus": torch.zeros(1)}),
}


class _Corrupting(InProcessGrid):
    """Delivers every edge's reply damaged in one way, as a Flower message."""

    corruption = "nan"

    def answer(self, message):
        reply = super().answer(message)
        if self.corruption == "oversize":  # honest edges; the cloud's bound is the problem
            return reply
        if self.corruption == "dtype":  # float64 activations: no codec sends those
            act = reply.content[ACTIVATIONS]["act"].numpy()
            reply.content[ACTIVATIONS]["act"] = Array(act.astype(np.float64))
            return reply
        damaged = CORRUPTIONS[self.corruption](decode_result(reply.content))
        return Message(encode_result(damaged), reply_to=message)


@pytest.mark.parametrize("corruption", [*CORRUPTIONS, "dtype", "oversize"])
def test_rejected_replies_never_touch_the_cloud(corruption, digits_benchmark, tmp_path):
    config = dataclasses.replace(TINY, experiences=1, rounds=1, local_epochs=1)
    grid = make_grid(config, digits_benchmark, tmp_path, _Corrupting)
    grid.corruption = corruption
    if corruption == "oversize":  # the cloud's bound is below one honest chunk
        config = dataclasses.replace(config, max_chunk_mb=0.05)
    session = prepare(config, grid=grid, benchmark=digits_benchmark, max_failed_rounds=0)
    model = session.orchestrator.model
    before = {k: v.clone() for k, v in model.cloud.state_dict().items()}
    result = session.run()
    assert result.metrics["rejected_replies"] == 2
    for k, v in model.cloud.state_dict().items():
        assert torch.equal(v, before[k]), k  # bit-identical
    events = result.metrics["events"]
    assert sorted((e["event"], e["partition"]) for e in events) == [
        ("reply-rejected", 0),
        ("reply-rejected", 1),
    ]


def test_next_round_is_dispatched_before_the_cloud_trains_on_received_chunks(
    digits_benchmark, tmp_path
):
    events: list[str] = []

    class Recording(InProcessGrid):
        def push_messages(self, messages):
            messages = list(messages)
            events.extend(f"dispatch {m.content['config']['round']}" for m in messages)
            return super().push_messages(messages)

    config = dataclasses.replace(TINY, clients=1, experiences=1, rounds=2)
    grid = make_grid(config, digits_benchmark, tmp_path, Recording)
    session = prepare(config, grid=grid, benchmark=digits_benchmark)
    orch = session.orchestrator
    original_step = orch.cloud.step

    def step():
        trained = original_step()
        if trained:
            events.append("cloud step")
        return trained

    orch.cloud.step = step  # type: ignore[method-assign]
    session.run()
    # Round 0's chunk holds dozens of cloud batches; round 1 goes out after at most one of them.
    assert events[0] == "dispatch 0"
    assert events[1:].index("dispatch 1") <= 1
    assert events.count("cloud step") > 20


def test_missing_edges_at_start_are_a_clear_error(digits_benchmark, tmp_path):
    class Partial(InProcessGrid):
        def get_node_ids(self):
            return list(self.nodes)[:-1]

    grid = make_grid(TINY, digits_benchmark, tmp_path, Partial)
    config = dataclasses.replace(TINY, node_wait_timeout=0.01)
    with pytest.raises(HierflError, match="only 1 of 2 edges connected"):
        hierfl.run(config, grid=grid, benchmark=digits_benchmark)


class _Recording(InProcessGrid):
    """Keeps every edge result it delivers."""

    def answer(self, message):
        reply = super().answer(message)
        result = decode_result(reply.content)
        result.edge_state = eval_state(reply.content) or result.edge_state  # the coded exchange
        self.seen_results = getattr(self, "seen_results", []) + [result]
        return reply


@pytest.mark.parametrize("codec", ["topk", "fp32"])
def test_each_edge_gets_its_own_accuracy_matrix(codec, digits_benchmark, tmp_path):
    """From the weights each edge holds: its reply's (fp32) or its eval copy (coded)."""
    from hierfl.train.evaluate import exit_accuracies

    config = dataclasses.replace(TINY, weight_codec=codec)
    grid = make_grid(config, digits_benchmark, tmp_path, _Recording)
    session = prepare(config, grid=grid, benchmark=digits_benchmark)
    orchestrator = session.orchestrator
    result = session.run()
    assert sorted(result.clients) == [0, 1]
    last = TINY.experiences - 1
    finals = [r for r in grid.seen_results if (r.experience, r.round) == (last, TINY.rounds - 1)]
    classes = sorted(c for e in digits_benchmark.test for c in e.classes)
    for r in finals:  # recompute the last row from the edge's own weights and the final cloud
        orchestrator.model.edge.load_state_dict(r.edge_state)
        matrix = result.clients[r.partition_id]
        for j, exp in enumerate(digits_benchmark.test):
            expected = exit_accuracies(orchestrator.model, exp.x, exp.y, classes=classes)
            for exit_name in ("edge", "cloud"):
                assert matrix.row(exit_name, last)[j] == pytest.approx(expected[exit_name])
    assert result.clients[0].rows("edge") != result.clients[1].rows("edge")


def test_the_cloud_queue_is_bounded_by_one_rounds_worth_of_chunks(digits_benchmark, tmp_path):
    config = dataclasses.replace(TINY, max_chunk_mb=0.01)  # cap: 2 clients x 10 KiB
    orch = prepare(config, benchmark=digits_benchmark).orchestrator
    cap = config.clients * config.max_chunk_bytes
    shape = orch.replies.activation_shape
    a = torch.randn(200, *shape)
    for _ in range(3):  # three chunks arrive at once, each bigger than the cap
        orch.cloud.enqueue(a, torch.zeros(200, dtype=torch.long))
        orch.replies._bound_queue()
        assert orch.cloud.queued_bytes <= cap
    assert orch.cloud.stats.examples > 0  # it trained to make room
    queued = sum(x.numel() * x.element_size() for x, _, _, _ in orch.cloud.queue)
    assert queued == orch.cloud.queued_bytes


def test_many_edges_fill_the_queue_past_its_bound_memory_stays_bounded_and_nothing_is_lost(
    digits_benchmark, tmp_path
):
    # 40 edges, 4 asked per round: the bound is 4 chunks' worth, whatever the number of edges
    config = dataclasses.replace(TINY, clients=40, clients_per_round=4, max_chunk_mb=0.01)
    orch = prepare(config, benchmark=digits_benchmark).orchestrator
    cap = config.round_clients * config.max_chunk_bytes * config.cloud_passes
    a = torch.randn(60, *orch.replies.activation_shape)
    peak = 0
    for i in range(40):  # every edge's chunk at once: ten times the bound
        orch.cloud.enqueue(a, torch.full((60,), i % 10, dtype=torch.long))
        orch.replies._bound_queue()
        peak = max(peak, orch.cloud.queued_bytes)
    assert peak <= cap
    orch.cloud.drain()
    assert orch.cloud.stats.examples == 40 * 60 * config.cloud_passes  # every sample trained
