"""The plug-in author's door: everything a model, aggregator, continual method, scenario or
partitioner needs, from one module (docs/plugins.md).

>>> from hierfl.plugins import ContinualMethod, EdgeHooks, StrategyParts, option
>>> sorted(CONTINUAL.names())[:3]
['cloud-replay', 'edge-replay', 'ewc']

Declare a plug-in (``Aggregator``, ``ContinualMethod``, ``Scenario``, ``Partitioner``, or a
``SplitModel`` subclass), give it settings with ``option`` fields, and point an entry point of
the matching group at it (``hierfl.aggregators``, ``hierfl.continual``, ``hierfl.scenarios``,
``hierfl.partitioners``, ``hierfl.models``); or ``register`` it in its registry for one process.
Nothing in hierfl imports this module: it only hands on names defined in their own rooms.
"""

from __future__ import annotations

from hierfl.config import HierConfig
from hierfl.data.containers import (
    Benchmark,
    ClientStream,
    ExperienceData,
    ScenarioInfo,
    ScenarioSpec,
)
from hierfl.errors import ConfigError
from hierfl.models import EdgeModule, EdgeOutput, SplitModel
from hierfl.options import option
from hierfl.registry import AGGREGATORS, CONTINUAL, MODELS, PARTITIONERS, SCENARIOS
from hierfl.registry.declarations import (
    Aggregator,
    ContinualMethod,
    NoSettings,
    Partitioner,
    Plugin,
    Scenario,
)
from hierfl.train.continual import Batch, CloudHooks, EdgeHooks, StrategyParts

__all__ = [
    "AGGREGATORS",
    "CONTINUAL",
    "MODELS",
    "PARTITIONERS",
    "SCENARIOS",
    "Aggregator",
    "Batch",
    "Benchmark",
    "ClientStream",
    "CloudHooks",
    "ConfigError",
    "ContinualMethod",
    "EdgeHooks",
    "EdgeModule",
    "EdgeOutput",
    "ExperienceData",
    "HierConfig",
    "NoSettings",
    "Partitioner",
    "Plugin",
    "Scenario",
    "ScenarioInfo",
    "ScenarioSpec",
    "SplitModel",
    "StrategyParts",
    "option",
]
