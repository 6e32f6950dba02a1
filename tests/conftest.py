"""Shared fixtures: tiny configs and cached digits benchmarks."""

from __future__ import annotations

import os

import pytest

os.environ.setdefault("FLWR_TELEMETRY_ENABLED", "0")
os.environ.setdefault("FLWR_DISABLE_UPDATE_CHECK", "1")


@pytest.fixture(scope="session")
def digits_benchmark():
    from hierfl.config import HierConfig
    from hierfl.streams import build_benchmark

    return build_benchmark(HierConfig(experiences=2))


@pytest.fixture
def fedavg_strategy():
    """A stand-in Flower strategy: one message per node, FedAvg of the 'arrays' records by hand."""
    from types import SimpleNamespace

    from flwr.app import ArrayRecord, MetricRecord, RecordDict

    class FakeStrategy:
        def configure_train(self, server_round, arrays, config, grid):
            return [
                SimpleNamespace(
                    metadata=SimpleNamespace(dst_node_id=n, ttl=None),
                    content=RecordDict({"arrays": arrays, "config": config}),
                )
                for n in grid.get_node_ids()
            ]

        def aggregate_train(self, server_round, replies):
            replies = list(replies)
            assert all(len(r.content.array_records) == 1 for r in replies)
            states = [r.content["arrays"].to_torch_state_dict() for r in replies]
            averaged = {k: sum(s[k] for s in states) / len(states) for k in states[0]}
            return ArrayRecord(averaged), MetricRecord({})

    return FakeStrategy()
