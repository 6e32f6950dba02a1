"""Named plug-in registries: built-ins registered explicitly, third parties via entry points."""

from __future__ import annotations

import importlib
from collections.abc import Callable
from importlib.metadata import entry_points
from typing import Generic, TypeVar

from hierfl.errors import UnknownNameError
from hierfl.plugin import Plugin, as_plugin

T = TypeVar("T")


class Registry(Generic[T]):
    """Maps names to factories.

    Built-ins are passed explicitly (an object, or a ``"module:attr"`` string imported on first
    use); anything declared under the entry-point ``group`` is listed
    by name without importing it and loaded only when asked for, so listing stays cheap and no
    plug-in registers itself by import side effect.
    """

    def __init__(self, key: str, group: str, builtins: dict[str, T | str] | None = None) -> None:
        self.key = key
        self.group = group
        self._builtins: dict[str, T | str] = dict(builtins or {})
        self._found: dict[str, object] | None = None  # entry points, read once (10 ms a read)

    def register(self, name: str, item: T) -> None:
        if name in self.names():
            raise ValueError(f"{self.key} {name!r} is already registered")
        self._builtins[name] = item

    def unregister(self, name: str) -> None:
        """Forget a plug-in registered with ``register`` (entry points stay)."""
        self._builtins.pop(name, None)

    def _entry_points(self) -> dict[str, object]:
        if self._found is None:
            self._found = {ep.name: ep for ep in entry_points(group=self.group)}
        return self._found

    def names(self) -> list[str]:
        return sorted(set(self._builtins) | set(self._entry_points()))

    def check(self, name: str) -> None:
        """Raise ``UnknownNameError`` naming the allowed values if ``name`` is not registered."""
        if name not in self.names():
            raise UnknownNameError(self.key, name, self.names())

    def get(self, name: str) -> T:
        if name in self._builtins:
            item = self._builtins[name]
            if isinstance(item, str):  # "module:attr", imported on first use
                module, _, attr = item.partition(":")
                item = getattr(importlib.import_module(module), attr)
                self._builtins[name] = item
            return item  # type: ignore[return-value]
        ep = self._entry_points().get(name)
        if ep is None:
            raise UnknownNameError(self.key, name, self.names())
        return ep.load()  # type: ignore[attr-defined, no-any-return]

    def plugin(self, name: str) -> Plugin:
        """``name``'s declaration (``hierfl.plugin``); a plain function is one without settings."""
        return as_plugin(self.get(name))


Factory = Callable[..., object]
