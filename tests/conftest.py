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
