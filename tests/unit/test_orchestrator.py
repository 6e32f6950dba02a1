"""The cloud round loop over the in-process federation: metrics, pipelining, rejected replies."""

from __future__ import annotations

import dataclasses

import pytest
import torch

from hierfl.config import HierConfig
from hierfl.errors import HierflError
from hierfl.local import LocalFederation, weighted_average
from hierfl.orchestrator import Orchestrator
from hierfl.plugins import PARTITIONERS

TINY = HierConfig(clients=2, experiences=2, rounds=2, local_epochs=2)


def _federation(bench, config, tmp_path):
    streams = [
        PARTITIONERS.get("iid")(bench, partition_id=i, num_partitions=config.clients, seed=0)
        for i in range(config.clients)
    ]
    return LocalFederation(config, streams, state_root=tmp_path)


def test_weighted_average_by_hand():
    a = {"w": torch.tensor([1.0, 2.0]), "n": torch.tensor(7)}
    b = {"w": torch.tensor([4.0, 8.0]), "n": torch.tensor(9)}
    out = weighted_average([a, b], [1.0, 2.0])
    torch.testing.assert_close(out["w"], torch.tensor([3.0, 6.0]))
    assert int(out["n"]) == 7


def test_run_fills_the_accuracy_matrix(digits_benchmark, tmp_path):
    fed = _federation(digits_benchmark, TINY, tmp_path)
    result = Orchestrator(TINY, fed, digits_benchmark, poll_interval=0.0).run()
    assert result.matrix.exits() == ["edge", "cloud"]
    for k in range(2):
        for exit_name in ("edge", "cloud"):
            row = result.matrix.row(exit_name, k)
            assert len(row) == k + 1
            assert all(0.0 <= v <= 1.0 for v in row)
            assert row[-1] > 0.5  # newest experience: 5 classes, chance is 0.2
    assert len(result.rounds) == 4
    up, down = fed.traffic()
    assert up > 0 and down > 0
    assert result.rejected == 0 and result.failures == []
    # node-local state (optimizer + cursor) persisted for each edge
    assert sorted(p.parent.name for p in tmp_path.glob("node-*/edge_state.pt")) == [
        "node-0",
        "node-1",
    ]


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
    "dtype": lambda r: dataclasses.replace(
        r, chunk=dataclasses.replace(r.chunk, activations=r.chunk.activations.double())
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


class _Corrupting(LocalFederation):
    """Delivers every edge result damaged in one way."""

    corruption = "nan"

    def poll(self):
        damage = CORRUPTIONS.get(self.corruption, lambda r: r)  # "oversize": sent as is
        return [damage(r) for r in super().poll()]


@pytest.mark.parametrize("corruption", [*CORRUPTIONS, "oversize"])
def test_rejected_replies_never_touch_the_cloud(corruption, digits_benchmark, tmp_path, caplog):
    config = dataclasses.replace(TINY, experiences=1, rounds=1, local_epochs=1)
    if corruption == "oversize":  # honest edges, but the cloud's bound is below one chunk
        config = dataclasses.replace(config, max_chunk_mb=0.05)
    streams = [
        PARTITIONERS.get("iid")(digits_benchmark, partition_id=i, num_partitions=2, seed=0)
        for i in range(2)
    ]
    fed = _Corrupting(dataclasses.replace(config, max_chunk_mb=64.0), streams, state_root=tmp_path)
    fed.corruption = corruption
    orch = Orchestrator(config, fed, digits_benchmark, poll_interval=0.0)
    before = {k: v.clone() for k, v in orch.model.cloud.state_dict().items()}
    with caplog.at_level("WARNING", logger="hierfl"):
        result = orch.run()
    assert result.rejected == 2
    for k, v in orch.model.cloud.state_dict().items():
        assert torch.equal(v, before[k]), k  # bit-identical
    rejected = [r.getMessage() for r in caplog.records if "rejected reply" in r.getMessage()]
    assert sorted(m.split(":")[0] for m in rejected) == [
        "rejected reply from edge 0",
        "rejected reply from edge 1",
    ]


def test_next_round_is_dispatched_before_the_cloud_trains_on_received_chunks(
    digits_benchmark, tmp_path
):
    events: list[str] = []

    class Recording(LocalFederation):
        def dispatch(self, request, edge_state):
            events.append(f"dispatch {request.round}")
            return super().dispatch(request, edge_state)

    config = dataclasses.replace(TINY, clients=1, experiences=1, rounds=2)
    streams = [PARTITIONERS.get("iid")(digits_benchmark, partition_id=0, num_partitions=1, seed=0)]
    orch = Orchestrator(
        config, Recording(config, streams, state_root=tmp_path), digits_benchmark, poll_interval=0
    )
    original_step = orch.cloud.step

    def step():
        trained = original_step()
        if trained:
            events.append("cloud step")
        return trained

    orch.cloud.step = step  # type: ignore[method-assign]
    orch.run()
    # Round 0's chunk holds dozens of cloud batches; round 1 goes out after at most one of them.
    assert events[0] == "dispatch 0"
    assert events[1:].index("dispatch 1") <= 1
    assert events.count("cloud step") > 20


def test_missing_edges_at_start_are_a_clear_error(digits_benchmark, tmp_path):
    class Partial(LocalFederation):
        def wait_for_edges(self, count, timeout):
            return count - 1

    fed = _federation(digits_benchmark, TINY, tmp_path)
    fed.__class__ = Partial
    with pytest.raises(HierflError, match="only 1 of 2 edges connected"):
        Orchestrator(TINY, fed, digits_benchmark).run()


class _Recording(LocalFederation):
    """Keeps every edge result it delivers."""

    def poll(self):
        out = super().poll()
        self.seen_results = getattr(self, "seen_results", []) + out
        return out


def test_each_edge_gets_its_own_accuracy_matrix(digits_benchmark, tmp_path):
    from hierfl.evaluate import exit_accuracies

    fed = _Recording(
        TINY, _federation(digits_benchmark, TINY, tmp_path).streams, state_root=tmp_path
    )
    orchestrator = Orchestrator(TINY, fed, digits_benchmark, poll_interval=0.0)
    result = orchestrator.run()
    assert sorted(result.clients) == [0, 1]
    last = TINY.experiences - 1
    finals = [r for r in fed.seen_results if (r.experience, r.round) == (last, TINY.rounds - 1)]
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
    orch = Orchestrator(config, _federation(digits_benchmark, config, tmp_path), digits_benchmark)
    cap = config.clients * config.max_chunk_bytes
    shape = orch.activation_shape
    a = torch.randn(200, *shape)
    for _ in range(3):  # three chunks arrive at once, each bigger than the cap
        orch.cloud.enqueue(a, torch.zeros(200, dtype=torch.long))
        orch._bound_queue()
        assert orch.cloud.queued_bytes <= cap
    assert orch.cloud.stats.examples > 0  # it trained to make room
    queued = sum(x.numel() * x.element_size() for x, _, _ in orch.cloud.queue)
    assert queued == orch.cloud.queued_bytes
