"""What a plug-in declares: how to build it, its own settings, and what it can do, as data.

Every registry (``hierfl.registry``) holds declarations of these kinds; a third party points an
entry point at one. A plain function still works (it is a plug-in without settings), so that
older plug-ins keep running.

A plug-in's settings are a small frozen dataclass whose fields use ``hierfl.options.option``
(default, help, bounds). Users set them with dotted keys, ``NAME.SETTING=value``
(``lwf.alpha=1``, ``fedprox.proximal-mu=0.1``); they are validated at the boundary with the
same one-line errors as core keys, and the plug-in receives the typed instance.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any, TypeVar

P = TypeVar("P", bound="Plugin")


@dataclass(frozen=True)
class NoSettings:
    """A plug-in with nothing to set."""


@dataclass(frozen=True)
class Plugin:
    """A registry entry: ``build`` makes the thing; ``settings`` is its settings dataclass."""

    build: Callable[..., Any]
    settings: type = NoSettings
    summary: str = ""  # one line for ``--help`` and the docs

    @classmethod
    def wrap(cls: type[P], build: Callable[..., Any]) -> P:
        """A plain function as a plug-in of this kind, without settings."""
        return cls(build=build, summary=(getattr(build, "__doc__", "") or "").split("\n")[0])

    def make(self, *args: Any, settings: Any = None, **kwargs: Any) -> Any:
        """Call ``build``, passing ``settings=`` only to a plug-in that declares settings."""
        if self.settings is NoSettings:
            return self.build(*args, **kwargs)
        return self.build(*args, settings=settings, **kwargs)


@dataclass(frozen=True)
class Aggregator(Plugin):
    """Edge aggregation: ``build(config, settings=...)`` returns a Flower ``Strategy``.

    ``robust``: it bounds what one edge can do to the aggregate (a median, a trimmed mean),
    the kind to pick when edges are not trusted. ``keeps_state``: it keeps server-side state
    from round to round (FedAdam's moments, FedAvgM's momentum): with edges at several depths
    it is shown the mean per set of holders as one reply and steps once over every weight
    (``hierfl.app.aggregation``), where a stateless strategy is called once per set.
    """

    robust: bool = False
    keeps_state: bool = False  # server-side state across rounds (moments, momentum)


@dataclass(frozen=True)
class ContinualMethod(Plugin):
    """A continual-learning method: ``build(config, settings=...)`` returns its hooks.

    ``sides``: where it acts ("edge", "cloud"); ``modes``: the training modes it supports
    (empty: every mode). ``defaults``: per mode, core settings it needs to work there (e.g.
    cloud latent replay's edge-stability policy where an edge learns), applied to every key
    left at hierfl's own default; the log says so.
    """

    sides: tuple[str, ...] = ()
    modes: tuple[str, ...] = ()
    defaults: Mapping[str, Mapping[str, Any]] = field(default_factory=dict)

    @classmethod
    def wrap(cls, build: Callable[..., Any]) -> ContinualMethod:
        """A plain function: a method that may act on the edge, in every mode."""
        return cls(
            build=build,
            summary=(getattr(build, "__doc__", "") or "").split("\n")[0],
            sides=("edge",),
        )

    def supports(self, mode: str) -> bool:
        return not self.modes or mode in self.modes


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


def as_plugin(item: Any, kind: type[P]) -> P:
    """A declaration of ``kind`` as is; a plain ``Plugin`` or a plain function (a model class,
    say) as a ``kind`` without settings."""
    if isinstance(item, kind):
        return item
    if isinstance(item, Plugin):
        return dataclasses.replace(
            kind.wrap(item.build), settings=item.settings, summary=item.summary
        )
    if callable(item):
        return kind.wrap(item)
    raise TypeError(f"a plug-in must be a hierfl.plugins.Plugin or a callable, got {item!r}")
