"""Named plug-in registries: built-ins registered explicitly, third parties via entry points."""

from __future__ import annotations

import importlib
from importlib.metadata import entry_points
from typing import Any, Generic, TypeVar

from hierfl.errors import UnknownNameError
from hierfl.registry.declarations import Plugin, as_plugin

P = TypeVar("P", bound=Plugin)


class Registry(Generic[P]):
    """Maps names to plug-ins of one kind (a ``Plugin`` subclass, ``kind``).

    Built-ins are passed explicitly (an object, or a ``"module:attr"`` string imported on first
    use); anything declared under the entry-point ``group`` is listed by name without
    importing it and loaded only when asked for, so listing stays cheap and no plug-in
    registers itself by import side effect.
    """

    def __init__(
        self, key: str, group: str, kind: type[P], builtins: dict[str, Any] | None = None
    ) -> None:
        self.key = key
        self.group = group
        self.kind = kind
        self._builtins: dict[str, Any] = dict(builtins or {})
        self._found: dict[str, Any] | None = None  # entry points, read once (10 ms a read)

    def register(self, name: str, item: Any) -> None:
        if name in self.names():
            raise ValueError(f"{self.key} {name!r} is already registered")
        self._builtins[name] = item

    def unregister(self, name: str) -> None:
        """Forget a plug-in registered with ``register`` (entry points stay)."""
        self._builtins.pop(name, None)

    def _entry_points(self) -> dict[str, Any]:
        if self._found is None:
            self._found = {ep.name: ep for ep in entry_points(group=self.group)}
        return self._found

    def names(self) -> list[str]:
        return sorted(set(self._builtins) | set(self._entry_points()))

    def check(self, name: str) -> None:
        """Raise ``UnknownNameError`` naming the allowed values if ``name`` is not registered."""
        if name not in self.names():
            raise UnknownNameError(self.key, name, self.names())

    def get(self, name: str) -> Any:
        """What is registered as ``name``: a declaration, a plain function, or a model class."""
        if name in self._builtins:
            item = self._builtins[name]
            if isinstance(item, str):  # "module:attr", imported on first use
                module, _, attr = item.partition(":")
                item = getattr(importlib.import_module(module), attr)
                self._builtins[name] = item
            return item
        ep = self._entry_points().get(name)
        if ep is None:
            raise UnknownNameError(self.key, name, self.names())
        return ep.load()

    def plugin(self, name: str) -> P:
        """``name``'s declaration, of this registry's kind (a plain function is one without
        settings, with the kind's defaults)."""
        return as_plugin(self.get(name), self.kind)
