"""How plug-ins are declared and found: declarations, registries by name, plug-in settings.

The registries below are the ones the core looks plug-ins up in. The core never imports
``strategies`` or ``scenarios``: those packages are reached through the entry-point groups
declared in ``pyproject.toml``, exactly as a third party's would be. Plug-in authors import
from ``hierfl.plugins``, the public door; this package imports only ``hierfl.options`` and
``hierfl.errors``.
"""

from __future__ import annotations

from hierfl.registry.declarations import (
    Aggregator,
    ContinualMethod,
    Partitioner,
    Plugin,
    Scenario,
)
from hierfl.registry.lookup import Registry

MODELS: Registry[Plugin] = Registry(
    "model",
    "hierfl.models",
    Plugin,
    {
        "small-cnn": "hierfl.models.small_cnn:SmallCNN",
        "vgg16": "hierfl.models.vgg:VGG16",
        "resnet18": "hierfl.models.resnet:ResNet18",
    },
)
AGGREGATORS: Registry[Aggregator] = Registry("strategy", "hierfl.aggregators", Aggregator)
SCENARIOS: Registry[Scenario] = Registry("scenario", "hierfl.scenarios", Scenario)
PARTITIONERS: Registry[Partitioner] = Registry("partition", "hierfl.partitioners", Partitioner)
CONTINUAL: Registry[ContinualMethod] = Registry("cl", "hierfl.continual", ContinualMethod)
WEIGHT_CODECS: Registry[Plugin] = Registry(
    "weight-codec",
    "hierfl.weight_codecs",
    Plugin,
    {"fp32": "hierfl.codecs.weight_codecs:fp32", "topk": "hierfl.codecs.weight_codecs:topk"},
)

# Plug-in settings are namespaced by name (``NAME.SETTING``): the registries, in lookup order.
REGISTRIES: tuple[Registry, ...] = (
    CONTINUAL,
    AGGREGATORS,
    PARTITIONERS,
    SCENARIOS,
    MODELS,
    WEIGHT_CODECS,
)
# The config keys whose values name a plug-in: key -> its registry.
BY_KEY: dict[str, Registry] = {r.key: r for r in REGISTRIES}
