"""The run's Flower strategy, and a hush for Flower's own log lines while it works."""

from __future__ import annotations

import logging
from collections.abc import Iterator
from contextlib import contextmanager

from flwr.serverapp.strategy import Strategy

from hierfl.config import HierConfig
from hierfl.registry import AGGREGATORS


@contextmanager
def quiet_flower() -> Iterator[None]:
    """Hold back Flower's INFO lines and its warning that federated evaluation is skipped
    (the cloud evaluates both exits itself): they mean nothing to a hierfl user."""
    logger = logging.getLogger("flwr")
    level = logger.level
    logger.setLevel(logging.ERROR)
    try:
        yield
    finally:
        logger.setLevel(level)


def build_strategy(config: HierConfig) -> Strategy:
    """The run's edge-aggregation strategy, from the ``hierfl.aggregators`` registry."""
    plugin = AGGREGATORS.plugin(config.strategy)
    with quiet_flower():
        return plugin.make(config, settings=config.settings(config.strategy))  # type: ignore[no-any-return]


def keeps_state(config: HierConfig) -> bool:
    """The run's strategy keeps server-side state across rounds (moments, momentum)."""
    return bool(AGGREGATORS.plugin(config.strategy).keeps_state)
