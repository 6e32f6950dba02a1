"""An edge that goes silent: the round ends at reply-timeout, the event is recorded, the edge
rejoins later and continues from its node-local state."""

from __future__ import annotations

import torch

from hierfl.config import HierConfig
from hierfl.local import LocalFederation
from hierfl.orchestrator import Orchestrator
from hierfl.plugins import PARTITIONERS

CONFIG = HierConfig(clients=2, experiences=2, rounds=2, local_epochs=1, reply_timeout=10.0)
SILENT = {(0, 1), (1, 0)}  # (experience, round) in which partition 1 never answers


class Silent(LocalFederation):
    """Partition 1's process is gone for the rounds in SILENT: it takes the request, never
    replies, and is back for the rounds after."""

    def dispatch(self, request, edge_state):
        self.silent: list[int] = []
        return super().dispatch(request, edge_state)

    def poll(self):
        if (
            self._queue
            and self._queue[0] == 1
            and (
                self._request.experience,
                self._request.round,
            )
            in SILENT
        ):
            self.silent.append(self._queue.pop(0))
            return []
        return super().poll()

    def outstanding(self):
        return super().outstanding() + len(self.silent)

    def expire(self):
        self._queue += self.silent
        self.silent = []
        return super().expire()


def test_a_silent_edge_is_dropped_after_the_timeout_and_rejoins(digits_benchmark, tmp_path):
    streams = [
        PARTITIONERS.get("iid")(digits_benchmark, partition_id=i, num_partitions=2, seed=0)
        for i in range(2)
    ]
    fed = Silent(CONFIG, streams, state_root=tmp_path)
    result = Orchestrator(CONFIG, fed, digits_benchmark, poll_interval=0.01).run()

    assert result.matrix.num_experiences() == 2  # the run went on to the end
    events = [(e["partition"], e["experience"], e["round"]) for e in result.failures]
    assert sorted(events) == [(1, 0, 1), (1, 1, 0)]
    assert all("reply-timeout" in e["reason"] for e in result.failures)
    # partition 1 answered rounds (0,0) and (1,1): its node-local cursor counts both, so it
    # resumed from its saved state after each absence instead of starting over
    saved = torch.load(tmp_path / "node-1" / "edge_state.pt", weights_only=True)
    sizes = [len(e) for e in streams[1].experiences]
    assert saved["cursor"]["samples_seen"] == sizes[0] + sizes[1]
    assert (saved["cursor"]["experience"], saved["cursor"]["round"]) == (1, 1)
    full = torch.load(tmp_path / "node-0" / "edge_state.pt", weights_only=True)
    assert full["cursor"]["samples_seen"] == 2 * sum(len(e) for e in streams[0].experiences)
