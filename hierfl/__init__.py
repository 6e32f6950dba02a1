"""hierfl: hierarchical edge-cloud training with early exits.

Importing this package is cheap: it pulls in neither torch, Flower nor Avalanche until
``hierfl.run`` is called.

>>> import hierfl
>>> hierfl.__version__
'0.1.0'
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any, Unpack

__version__ = "0.1.0"
__all__ = ["HierConfig", "Result", "RunFailed", "__version__", "run"]

if TYPE_CHECKING:
    from hierfl.api import Grid, Result, RunKeys
    from hierfl.config import HierConfig
    from hierfl.errors import RunFailed


def run(
    config: HierConfig | Mapping[str, Any] | None = None,
    /,
    *,
    grid: Grid | None = None,
    benchmark: Any = None,
    out: str | Path | None = None,
    state_key: str = "",
    **overrides: Unpack[RunKeys],
) -> Result:
    """Train and evaluate one run; ``hierfl.api.run`` says what each argument does.

    Keyword overrides are config keys with underscores (``hierfl.run(clients=2,
    local_epochs=1)``), typed: a misspelt key or a wrong type is caught by a type checker.
    """
    from hierfl.api import run as _run

    return _run(config, grid=grid, benchmark=benchmark, out=out, state_key=state_key, **overrides)


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
