"""The one typed run configuration, parsed and validated once at the boundary.

Sources, later ones winning: the defaults, a ``--config FILE.toml``, CLI flags and
``key=value`` overrides. Keys use dashes on the outside (TOML, Flower run config, CLI) and
underscores inside. ``keys``: every core key, its help and its allowed range or choices as
metadata (validation, the bad-value tests and ``docs/reference.md``'s table are generated from
it); ``core``: ``HierConfig``, those keys with their derived values and cross-key checks.

Plug-ins own their settings (``hierfl.registry.settings``): a dotted key ``NAME.SETTING``
(``lwf.alpha=1``, ``dirichlet.alpha=0.3``) sets one of plug-in NAME's settings; they are kept in
``plugin_settings`` and checked against the plug-in's own settings dataclass.
"""

from hierfl.config.core import HierConfig
from hierfl.config.keys import (
    AUTO_BOTTLENECK,
    CLASS_MASKS,
    DEVICES,
    OPTIMIZERS,
    PER_EDGE_KEYS,
    PRESETS,
    core_fields,
    is_plain_name,
)

__all__ = [
    "AUTO_BOTTLENECK",
    "CLASS_MASKS",
    "DEVICES",
    "OPTIMIZERS",
    "PER_EDGE_KEYS",
    "PRESETS",
    "HierConfig",
    "core_fields",
    "is_plain_name",
]
