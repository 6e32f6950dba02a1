"""What a plug-in declares: how to build it, its own settings, and what it can do, as data.

Every registry (``hierfl.plugins``) holds declarations of these kinds; a third party points an
entry point at one. A plain function still works (it is a plug-in without settings), so that
older plug-ins keep running.

A plug-in's settings are a small frozen dataclass whose fields use ``hierfl.config.option``
(default, help, bounds). Users set them with dotted keys, ``NAME.SETTING=value``
(``lwf.alpha=1``, ``fedprox.proximal-mu=0.1``); they are validated at the boundary with the
same one-line errors as core keys, and the plug-in receives the typed instance.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

from hierfl.errors import ConfigError
from hierfl.options import dashed

ALL_MODES = ("hierarchical", "split", "cloud", "edge")


@dataclass(frozen=True)
class NoSettings:
    """A plug-in with nothing to set."""


@dataclass(frozen=True)
class Plugin:
    """A registry entry: ``build`` makes the thing; ``settings`` is its settings dataclass."""

    build: Callable[..., Any]
    settings: type = NoSettings
    summary: str = ""  # one line for ``--help`` and the docs

    def make(self, *args: Any, settings: Any = None, **kwargs: Any) -> Any:
        """Call ``build``, passing ``settings=`` only to a plug-in that declares settings."""
        if self.settings is NoSettings:
            return self.build(*args, **kwargs)
        return self.build(*args, settings=settings, **kwargs)


@dataclass(frozen=True)
class Aggregator(Plugin):
    """Edge aggregation: ``build(config, settings=...)`` returns a Flower ``Strategy``.

    ``robust``: it bounds what one edge can do to the aggregate (a median, a trimmed mean),
    the kind to pick when edges are not trusted.
    """

    robust: bool = False


@dataclass(frozen=True)
class ContinualMethod(Plugin):
    """A continual-learning method: ``build(config, settings=...)`` returns its hooks.

    ``sides``: where it acts ("edge", "cloud"); ``modes``: the training modes it supports.
    ``defaults``: per mode, core settings it needs to work there (e.g. cloud latent replay's
    edge-stability policy where an edge learns), applied to every key left at hierfl's own
    default; the log says so.
    """

    sides: tuple[str, ...] = ()
    modes: tuple[str, ...] = ALL_MODES
    defaults: Mapping[str, Mapping[str, Any]] = field(default_factory=dict)


@dataclass(frozen=True)
class Scenario(Plugin):
    """A stream: ``build(spec, settings=...)`` makes the benchmark (maybe slowly);
    ``describe(spec, settings=...)`` answers its class count and input shape cheaply and checks
    a data folder's layout, so that a bad config fails before any process starts."""

    describe: Callable[..., Any] | None = None

    def info(self, spec: Any, settings: Any = None) -> Any:
        """``describe``'s answer, with ``settings=`` for a scenario that declares settings."""
        assert self.describe is not None
        if self.settings is NoSettings:
            return self.describe(spec)
        return self.describe(spec, settings=settings)


@dataclass(frozen=True)
class Partitioner(Plugin):
    """How an experience is split across edges: ``build(benchmark, *, partition_id,
    num_partitions, seed, settings=...)`` returns one edge's ``ClientStream``."""


def as_plugin(item: Any) -> Plugin:
    """A declaration as is; a plain function as a plug-in without settings."""
    if isinstance(item, Plugin):
        return item
    if callable(item):
        return Plugin(build=item, summary=(getattr(item, "__doc__", "") or "").split("\n")[0])
    raise TypeError(f"a plug-in must be a hierfl.plugin.Plugin or a callable, got {item!r}")


def find(name: str) -> Plugin:
    """The plug-in called ``name`` in any registry (settings are namespaced by name)."""
    from hierfl.plugins import REGISTRIES

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
    from hierfl.config import check_fields, coerce

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
    from hierfl.plugins import REGISTRIES

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


def with_method_defaults(config: Any, given: Iterable[str] = ()) -> tuple[Any, dict[str, Any]]:
    """Fill in what the continual methods of ``cl`` need (``ContinualMethod.defaults``).

    A method's default applies to a key left at hierfl's own default; a key the user changed
    wins, and so does a key the user set even to hierfl's default (``freeze-edge-after=-1``):
    one named in ``given`` (dashed or underscored) or in the config's ``set-keys``. The
    returned config records the core keys of ``given`` in ``set-keys``, so the ServerApp and
    the edges, which apply this again, keep them too. Returns the config and the keys that
    were filled in (for the log). Idempotent.
    """
    from hierfl.config import HierConfig
    from hierfl.plugins import CONTINUAL

    plain = HierConfig()
    named = config.user_keys | ({dashed(key) for key in given} & set(HierConfig.keys()))
    if named != config.user_keys:
        config = dataclasses.replace(config, set_keys=",".join(sorted(named)))
    applied: dict[str, Any] = {}
    if not config.cl:
        applied["cl"] = "+".join(config.methods)
    for name in config.methods:
        if name not in CONTINUAL.names():
            continue  # validate() names the unknown method
        defaults = getattr(CONTINUAL.plugin(name), "defaults", {}).get(config.mode, {})
        for key, value in defaults.items():
            attr = key.replace("-", "_")
            if key in applied or key in named:
                continue
            if getattr(config, attr) == getattr(plain, attr):
                applied[key] = value
    if applied:
        config = HierConfig.from_mapping(applied, base=config)
    return config, {k: getattr(config, k.replace("-", "_")) for k in applied}


def describe_defaults(config: Any, applied: Mapping[str, Any]) -> str:
    """The log line for ``with_method_defaults``' result ("" when nothing was filled in)."""
    parts = []
    if "cl" in applied:
        parts.append(f"cl={applied['cl']} (the {config.mode} mode's default)")
    needed = {k: v for k, v in applied.items() if k != "cl"}
    if needed:
        settings = ", ".join(f"{k}={v}" for k, v in needed.items())
        parts.append(f"{settings} (what {config.cl} needs in {config.mode} mode)")
    return f"using {'; '.join(parts)}; set them to change" if parts else ""
