"""Plug-in settings: each plug-in's own frozen dataclass, set by dotted keys ``NAME.SETTING``.

Settings are namespaced by the plug-in's name, so a key finds its plug-in in any registry;
values from a command line or a TOML file are coerced to the declared types and checked
against the fields' bounds with the same one-line errors as core keys (``hierfl.options``).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from typing import Any

from hierfl.errors import ConfigError
from hierfl.options import check_fields, coerce, dashed
from hierfl.registry import REGISTRIES
from hierfl.registry.declarations import Plugin


def find(name: str) -> Plugin:
    """The plug-in called ``name`` in any registry (settings are namespaced by name)."""
    for registry in REGISTRIES:
        if name in registry.names():
            return registry.plugin(name)
    known = sorted({n for r in REGISTRIES for n in r.names()})
    raise ConfigError(f"{name}.*", f"no plug-in called {name!r}; known: {', '.join(known)}")


def declared_settings(name: str) -> dict[str, dataclasses.Field]:
    """Plug-in ``name``'s settings fields by outside name."""
    return {dashed(f.name): f for f in dataclasses.fields(find(name).settings)}


def checked_settings(name: str, values: Mapping[str, Any]) -> dict[str, Any]:
    """``values`` (outside setting names) coerced to plug-in ``name``'s types and checked."""
    declared = declared_settings(name)
    defaults = find(name).settings()
    out: dict[str, Any] = {}
    for key, value in values.items():
        if key not in declared:
            allowed = ", ".join(f"{name}.{k}" for k in declared) or "none"
            raise ConfigError(f"{name}.{key}", f"unknown setting; {name} has: {allowed}")
        out[key] = coerce(f"{name}.{key}", value, getattr(defaults, declared[key].name))
    instance = dataclasses.replace(defaults, **{declared[k].name: v for k, v in out.items()})
    check_fields(instance, [declared[k] for k in out], prefix=f"{name}.")
    return out


def settings_of(name: str, values: Mapping[str, Any]) -> Any:
    """Plug-in ``name``'s settings instance with ``values`` applied."""
    declared = declared_settings(name)
    checked = checked_settings(name, values)
    defaults = find(name).settings()
    return dataclasses.replace(defaults, **{declared[k].name: v for k, v in checked.items()})


def all_settings() -> dict[str, dict[str, Any]]:
    """Every registered plug-in's settings at their defaults (for ``pyproject.toml`` and docs)."""
    out: dict[str, dict[str, Any]] = {}
    for registry in REGISTRIES:
        for name in registry.names():
            settings = registry.plugin(name).settings()
            values = {
                dashed(f.name): getattr(settings, f.name) for f in dataclasses.fields(settings)
            }
            if values:
                out[name] = values
    return out
