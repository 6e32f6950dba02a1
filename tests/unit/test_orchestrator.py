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


class _Corrupting(LocalFederation):
    """Delivers edge results with NaN activations."""

    def poll(self):
        out = []
        for r in super().poll():
            bad = dataclasses.replace(r.chunk, activations=r.chunk.activations * float("nan"))
            out.append(dataclasses.replace(r, chunk=bad))
        return out


def test_rejected_replies_never_touch_the_cloud(digits_benchmark, tmp_path):
    config = dataclasses.replace(TINY, experiences=1, rounds=1)
    streams = [
        PARTITIONERS.get("iid")(digits_benchmark, partition_id=i, num_partitions=2, seed=0)
        for i in range(2)
    ]
    fed = _Corrupting(config, streams, state_root=tmp_path)
    orch = Orchestrator(config, fed, digits_benchmark, poll_interval=0.0)
    before = {k: v.clone() for k, v in orch.model.cloud.state_dict().items()}
    result = orch.run()
    assert result.rejected == 2
    for k, v in orch.model.cloud.state_dict().items():
        assert torch.equal(v, before[k]), k


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
