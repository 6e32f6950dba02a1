"""The registries the core looks plug-ins up in: models, edge aggregators, scenarios, partitioners.

The core never imports ``strategies`` or ``scenarios``: those packages are reached through the
entry-point groups declared in ``pyproject.toml``, exactly as a third party's would be.
"""

from __future__ import annotations

from hierfl.registry import Registry

MODELS: Registry = Registry(
    "model",
    "hierfl.models",
    {
        "small-cnn": "hierfl.models.small_cnn:SmallCNN",
        "vgg16": "hierfl.models.vgg:VGG16",
        "resnet18": "hierfl.models.resnet:ResNet18",
    },
)
AGGREGATORS: Registry = Registry("strategy", "hierfl.aggregators")
SCENARIOS: Registry = Registry("scenario", "hierfl.scenarios")
PARTITIONERS: Registry = Registry("partition", "hierfl.partitioners")
CONTINUAL: Registry = Registry("cl", "hierfl.continual")

# Plug-in settings are namespaced by name (``NAME.SETTING``): the registries, in lookup order.
REGISTRIES: tuple[Registry, ...] = (CONTINUAL, AGGREGATORS, PARTITIONERS, SCENARIOS, MODELS)
