"""hierfl: hierarchical edge-cloud training with early exits.

Importing this package is cheap: it pulls in neither torch, Flower nor Avalanche until
``hierfl.run`` is called.

>>> import hierfl
>>> hierfl.__version__
'0.1.0'
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

__version__ = "0.1.0"
__all__ = ["HierConfig", "Result", "RunFailed", "__version__", "run"]

if TYPE_CHECKING:
    from hierfl.api import Result
    from hierfl.config import HierConfig
    from hierfl.errors import RunFailed


def run(*args: Any, **kwargs: Any) -> Result:
    """Train and evaluate one run; see ``hierfl.api.run`` for the arguments."""
    from hierfl.api import run as _run

    return _run(*args, **kwargs)


def __getattr__(name: str) -> Any:
    """``hierfl.HierConfig``, ``hierfl.Result`` and ``hierfl.RunFailed``, imported on use."""
    if name == "HierConfig":
        from hierfl.config import HierConfig

        return HierConfig
    if name == "Result":
        from hierfl.api import Result

        return Result
    if name == "RunFailed":
        from hierfl.errors import RunFailed

        return RunFailed
    raise AttributeError(f"module 'hierfl' has no attribute {name!r}")
