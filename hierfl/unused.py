"""Keys set to a value that this run never reads: said at start, so no one waits for an effect.

``lwf.alpha=2`` without ``cl=lwf``, ``cloud-lr`` in edge mode or ``local-epochs`` in an online
run are valid values that change nothing. They are not errors (one config file may serve
several modes and methods), but a user who set one expects it to matter, so ``hierfl run``
and ``hierfl.run`` name each, with the reason, before the run starts.
"""

from __future__ import annotations

import dataclasses
from typing import TYPE_CHECKING

from hierfl.options import dashed

if TYPE_CHECKING:
    from hierfl.config import HierConfig

# Core keys that a mode never reads, and why (the mode table, hierfl.modes, says what it does).
_BY_MODE: dict[str, dict[str, str]] = {
    "cloud": {
        "edge-lr": "edges do not train in cloud mode",
        "exit-head": "cloud mode trains no exit",
        "freeze-edge-after": "edges do not train in cloud mode",
        "ship": "cloud mode uploads each input once",
        "codec": "cloud mode uploads raw inputs (raw-codec)",
    },
    "edge": {
        "cloud-lr": "edge mode has no cloud",
        "cloud-epochs": "edge mode has no cloud",
        "codec": "edge mode ships nothing",
        "compress": "edge mode ships nothing",
        "ship": "edge mode ships nothing",
    },
    "split": {
        "exit-head": "split mode trains no exit",
        "ship": "split mode ships every batch's activations for its gradient",
    },
}


def unused_keys(config: HierConfig) -> list[str]:
    """``KEY=VALUE (why)`` for each key left off its default that ``config``'s run never reads.

    ``config`` is validated (plug-in settings coerced).
    """
    from hierfl.config import HierConfig

    plain = HierConfig()
    reasons = dict(_BY_MODE.get(config.mode, {}))
    if config.online:
        reasons["ship"] = "an online run ships each sample once"
        if config.mode != "cloud":  # cloud mode's cloud still takes local-epochs passes
            reasons["local-epochs"] = "an online run trains online-passes passes per round"
    else:
        reasons["online-passes"] = "only online runs (online=true) read it"
    if config.raw_codec != "jpeg":
        reasons["jpeg-quality"] = "only raw-codec=jpeg reads it"
    if not config.bottleneck:
        reasons["code-bits"] = "only a bottleneck (bottleneck > 0) reads it"
        reasons["bottleneck-recon"] = "only a bottleneck (bottleneck > 0) reads it"
    out = []
    for key, why in reasons.items():
        value = getattr(config, key.replace("-", "_"))
        if value != getattr(plain, key.replace("-", "_")):
            out.append(f"{key}={value} ({why})")
    return out + _unused_plugin_settings(config)


def _unused_plugin_settings(config: HierConfig) -> list[str]:
    """Settings of plug-ins this run does not use (``NAME.KEY``), at a value off the default."""
    from hierfl.plugins import REGISTRIES

    active = {config.scenario, config.partition, config.model, config.strategy, *config.methods}
    out = []
    for name, items in sorted(config.plugin_settings.items()):
        if name in active:
            continue
        registry = next(r for r in REGISTRIES if name in r.names())
        defaults = registry.plugin(name).settings()
        for field in dataclasses.fields(defaults):
            key = dashed(field.name)
            if key in items and items[key] != getattr(defaults, field.name):
                out.append(f"{name}.{key}={items[key]} ({name} is not in use in this run)")
    return out


def describe_unused(config: HierConfig) -> str:
    """The warning line for ``unused_keys`` ("" when every key set is read)."""
    unused = unused_keys(config)
    return f"these keys have no effect in this run: {'; '.join(unused)}" if unused else ""
