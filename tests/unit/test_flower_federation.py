"""GridFederation against a fake Grid: replies as they arrive, errors named by partition."""

from __future__ import annotations

import itertools
from types import SimpleNamespace

import torch

from hierfl.app.grid_federation import GridFederation
from hierfl.app.protocol import encode_result
from hierfl.boundary import EdgeChunk, EdgeFailure, RoundRequest, RoundResult

STATE = {"w": torch.ones(2, 2)}


def _result(partition: int, request: RoundRequest, scale: float) -> RoundResult:
    chunk = EdgeChunk(torch.zeros(4, 3), torch.tensor([0, 1, 2, 3]), 1, 0.5, 2, 0.01)
    return RoundResult(
        partition, request.experience, request.round, {"w": STATE["w"] * scale}, chunk
    )


class FakeGrid:
    """Node 11 is partition 0, node 12 is partition 1; replies arrive one per pull."""

    def __init__(self, scripts):
        self.scripts = scripts  # round -> {node: callable(msg_id) -> reply}
        self.ids = itertools.count()
        self.inbox: list = []
        self.round = 0

    def get_node_ids(self):
        return [11, 12]

    def push_messages(self, messages):
        self.round += 1
        ids = []
        for msg in messages:
            mid = f"m{next(self.ids)}"
            ids.append(mid)
            self.inbox.append(self.scripts[self.round][msg.metadata.dst_node_id](mid))
        return ids

    def pull_messages(self, ids):
        return [self.inbox.pop(0)] if self.inbox else []


def _ok(partition, request, scale):
    def make(mid):
        content = encode_result(_result(partition, request, scale))
        return SimpleNamespace(
            metadata=SimpleNamespace(reply_to_message_id=mid),
            has_error=lambda: False,
            content=content,
        )

    return make


def _error(reason):
    def make(mid):
        return SimpleNamespace(
            metadata=SimpleNamespace(reply_to_message_id=mid),
            has_error=lambda: True,
            error=SimpleNamespace(code=5, reason=reason),
        )

    return make


def test_replies_flow_and_an_error_is_named_by_partition(fedavg_strategy):
    r1, r2 = RoundRequest(0, 0), RoundRequest(0, 1)
    grid = FakeGrid(
        {
            1: {11: _ok(0, r1, 1.0), 12: _ok(1, r1, 3.0)},
            2: {11: _ok(0, r2, 5.0), 12: _error("node unavailable")},
        }
    )
    fed = GridFederation(grid, fedavg_strategy, message_ttl=60)
    assert fed.dispatch(r1, STATE) == 2
    got = fed.poll() + fed.poll()
    assert [g.partition_id for g in got] == [0, 1]
    assert fed.outstanding() == 0
    torch.testing.assert_close(fed.aggregate()["w"], STATE["w"] * 2.0)

    fed.dispatch(r2, STATE)
    got = fed.poll() + fed.poll()
    failures = [g for g in got if isinstance(g, EdgeFailure)]
    assert len(failures) == 1 and "partition 1" in failures[0].node
    # the round goes on with the edge that answered
    torch.testing.assert_close(fed.aggregate()["w"], STATE["w"] * 5.0)
    up, down = fed.traffic()
    assert up > 0 and down > 0


def test_expire_names_missing_edges(fedavg_strategy):
    r1 = RoundRequest(0, 0)
    grid = FakeGrid({1: {11: _ok(0, r1, 1.0), 12: _ok(1, r1, 1.0)}})
    fed = GridFederation(grid, fedavg_strategy, message_ttl=60)
    fed.dispatch(r1, STATE)
    fed.poll()
    failures = fed.expire()
    assert len(failures) == 1 and "node 12" in failures[0].node
    assert fed.outstanding() == 0
