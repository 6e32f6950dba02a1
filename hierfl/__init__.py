"""hierfl: hierarchical edge-cloud training with early exits.

Importing this package is cheap: it pulls in neither torch, Flower nor Avalanche until
``hierfl.run`` is first used.

>>> import hierfl
>>> hierfl.__version__
'0.1.0'
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

__version__ = "0.1.0"
__all__ = ["HierConfig", "Result", "RunFailed", "__version__", "run"]

if TYPE_CHECKING:
    from hierfl.api import Result, run
    from hierfl.config import HierConfig
    from hierfl.errors import RunFailed


def __getattr__(name: str) -> Any:
    """``hierfl.run`` (``hierfl.api.run``, with its typed signature), ``hierfl.HierConfig``,
    ``hierfl.Result`` and ``hierfl.RunFailed``, imported on first use."""
    if name in ("run", "Result"):
        from hierfl import api

        return getattr(api, name)
    if name == "HierConfig":
        from hierfl.config import HierConfig

        return HierConfig
    if name == "RunFailed":
        from hierfl.errors import RunFailed

        return RunFailed
    raise AttributeError(f"module 'hierfl' has no attribute {name!r}")
