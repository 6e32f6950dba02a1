"""An edge that goes silent: the round ends at reply-timeout, the event is recorded, the edge
rejoins later and continues from its node-local state."""

from __future__ import annotations

import itertools

from hierfl.api import edge_streams, prepare
from hierfl.app.inprocess import InProcessGrid
from hierfl.edge.state import latest_edge_state
from hierfl.testing import make_grid, tiny_config

CONFIG = tiny_config(cl="naive", **{"reply-timeout": 10.0})
SILENT = {(0, 1), (1, 0)}  # (experience, round) in which partition 1 never answers


class Silent(InProcessGrid):
    """Partition 1's process is gone for the rounds in SILENT: its requests are never answered;
    it is back for the rounds after."""

    def answer(self, message):
        cfg = message.content["config"]
        when = (int(cfg["experience"]), int(cfg["round"]))
        if self.nodes[message.metadata.dst_node_id].stream.partition_id == 1 and when in SILENT:
            return None
        return super().answer(message)


def test_a_silent_edge_is_dropped_after_the_timeout_and_rejoins(digits_benchmark, tmp_path):
    ticks = itertools.count()  # a clock that moves one second per reading: no real waiting
    grid = make_grid(CONFIG, digits_benchmark, tmp_path, Silent)
    session = prepare(
        CONFIG, grid=grid, benchmark=digits_benchmark, clock=lambda: float(next(ticks))
    )
    result = session.run()

    assert result.accuracy.num_experiences() == 2  # the run went on to the end
    events = result.metrics["events"]
    assert sorted((e["partition"], e["experience"], e["round"]) for e in events) == [
        (1, 0, 1),
        (1, 1, 0),
    ]
    assert all("reply-timeout" in e["reason"] for e in events)
    # partition 1 answered rounds (0,0) and (1,1): its node-local cursor counts both, so it
    # resumed from its saved state after each absence instead of starting over
    streams = edge_streams(CONFIG, digits_benchmark)
    saved = latest_edge_state(tmp_path / "node-1" / "run-0")
    sizes = [len(e) for e in streams[1].experiences]
    assert saved["cursor"]["samples_seen"] == sizes[0] + sizes[1]
    assert (saved["cursor"]["experience"], saved["cursor"]["round"]) == (1, 1)
    full = latest_edge_state(tmp_path / "node-0" / "run-0")
    assert full["cursor"]["samples_seen"] == 2 * sum(len(e) for e in streams[0].experiences)


class SlowEdge(InProcessGrid):
    """Partition 2 never answers in time; every request's TTL is recorded."""

    ttls: list[float] = []

    def push_messages(self, messages):
        messages = list(messages)
        self.ttls += [m.metadata.ttl for m in messages]
        return super().push_messages(messages)

    def answer(self, message):
        if self.nodes[message.metadata.dst_node_id].stream.partition_id == 2:
            return None
        return super().answer(message)


def test_a_round_closes_at_the_quorum_without_waiting_for_a_slow_edge(digits_benchmark, tmp_path):
    ticks = itertools.count()  # one second per clock reading
    config = tiny_config(
        clients=3, cl="naive", **{"reply-timeout": 1000.0, "min-replies": 2, "quorum-grace": 3.0}
    )
    grid = make_grid(config, digits_benchmark, tmp_path, SlowEdge)
    grid.ttls = []
    session = prepare(
        config, grid=grid, benchmark=digits_benchmark, clock=lambda: float(next(ticks))
    )
    result = session.run()
    assert result.accuracy.num_experiences() == 2
    events = result.metrics["events"]
    rounds = config.experiences * config.rounds
    assert [(e["event"], e["partition"]) for e in events] == [("edge-late", 2)] * rounds
    # each round closed a few clock seconds after the quorum, far before reply-timeout
    assert all(r["reply_latency_s"] < 100 for r in result.metrics["rounds"])
    assert set(grid.ttls) == {1000.0}  # a request lives as long as the cloud waits for it


def test_min_replies_above_clients_is_refused():
    import pytest

    from hierfl.errors import ConfigError

    with pytest.raises(ConfigError, match="min-replies"):
        tiny_config(clients=2, **{"min-replies": 3})


def test_the_reply_wait_does_not_count_the_clouds_evaluation(digits_benchmark, tmp_path):
    """Round k+1 is requested before the cloud evaluates experience k; an evaluation that takes
    1000 clock seconds is the cloud's time, not the edges' reply latency (nor Flower's fixed
    overhead, which metrics.json derives from it)."""
    ticks = itertools.count()  # one second per reading, plus 1000 per evaluation
    evaluations = []
    config = tiny_config(cl="naive", rounds=1)
    grid = make_grid(config, digits_benchmark, tmp_path)
    session = prepare(
        config,
        grid=grid,
        benchmark=digits_benchmark,
        clock=lambda: float(next(ticks) + 1000 * len(evaluations)),
    )
    evaluate = session.orchestrator._evaluate

    def slow_evaluate(*args, **kwargs):
        evaluations.append(1)
        return evaluate(*args, **kwargs)

    session.orchestrator._evaluate = slow_evaluate
    result = session.run()
    assert len(evaluations) == 2  # every round ends an experience: each next one waits on it
    rounds = result.metrics["rounds"]
    assert all(r["wall_s"] > 1000 for r in rounds[:-1])  # the evaluation is in the round's time
    assert all(r["reply_latency_s"] < 100 for r in rounds)  # but not in the reply wait
