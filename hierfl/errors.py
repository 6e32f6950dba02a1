"""Exceptions that carry a message telling the user what to change."""


class HierflError(Exception):
    """Base class of every error hierfl raises on purpose."""


class ConfigError(HierflError, ValueError):
    """A configuration value is invalid; the message names the key and what is allowed."""

    def __init__(self, key: str, message: str) -> None:
        super().__init__(f"{key}: {message}")
        self.key = key


class UnknownNameError(ConfigError):
    """A name (model, cut, strategy, scenario, ...) is not registered."""

    def __init__(self, key: str, name: str, allowed: list[str]) -> None:
        shown = ", ".join(n or "'' (empty: the default)" for n in sorted(allowed))
        super().__init__(key, f"unknown value {name!r}; allowed: {shown}")
        self.allowed = sorted(allowed)


class ChunkRejected(HierflError):
    """A reply from an edge failed validation and was not used."""


class UplinkDown(HierflError):
    """The edge trained but could not send its reply (an emulated uplink outage, ``link-down``);
    its chunk waits in the node-local backlog."""


class RunFailed(HierflError):
    """A run stopped on a systematic failure (every edge failing, a non-finite cloud loss).

    ``result`` is the ``hierfl.api.Result`` of the stopped run: ``status`` is ``failed`` and
    ``metrics["reason"]`` says why; its last checkpoint, if any, is kept.
    """

    def __init__(self, reason: str, result: object = None) -> None:
        super().__init__(reason)
        self.result = result
