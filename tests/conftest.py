"""Shared fixtures: tiny configs and cached digits benchmarks."""

from __future__ import annotations

import os

import pytest

os.environ.setdefault("FLWR_TELEMETRY_ENABLED", "0")
os.environ.setdefault("FLWR_DISABLE_UPDATE_CHECK", "1")


@pytest.fixture(scope="session")
def digits_benchmark():
    from hierfl.config import HierConfig
    from hierfl.data.streams import build_benchmark

    return build_benchmark(HierConfig(experiences=2))


@pytest.fixture
def fedavg_strategy():
    """A stand-in Flower strategy: one message per node, the plain mean of the replies' weights
    computed by hand (``hierfl.testing.HandAveraging``)."""
    from hierfl.app.inprocess import ensure_task_identity
    from hierfl.testing import HandAveraging

    ensure_task_identity(0)  # Flower's Message needs one outside a Flower runtime
    return HandAveraging()
