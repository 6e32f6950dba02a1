"""Test a plug-in in a few lines: a tiny config, a tiny in-process run, an in-process grid.

>>> from hierfl.testing import run_tiny
>>> result = run_tiny(cl="edge-replay")  # doctest: +SKIP
>>> 0.0 <= result.final["cloud_accuracy"] <= 1.0  # doctest: +SKIP
True

``run_tiny`` runs 2 edges, 2 experiences of digits, 2 rounds of 1 local epoch: a few seconds
on a laptop CPU. ``make_grid`` builds the ``InProcessGrid`` a test can subclass to make an edge
silent or damage its replies (override ``InProcessGrid.answer``), then pass as ``grid=``.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any

from hierfl.config import PRESETS, HierConfig

if TYPE_CHECKING:
    from hierfl.api import Result
    from hierfl.app.inprocess import InProcessGrid
    from hierfl.data.containers import Benchmark

TINY: dict[str, Any] = PRESETS["tiny"]


def tiny_config(**overrides: Any) -> HierConfig:
    """The tiny run, with ``overrides`` (dashed or underscored keys), validated."""
    return HierConfig.from_mapping({**TINY, **overrides}).validate()


def run_tiny(benchmark: Benchmark | None = None, **overrides: Any) -> Result:
    """``hierfl.run`` of the tiny config in this process."""
    from hierfl.api import run

    return run(tiny_config(**overrides), benchmark=benchmark)


def make_grid(
    config: HierConfig,
    benchmark: Benchmark,
    state_root: str | Path,
    grid_class: type[InProcessGrid] | None = None,
    **grid_options: Any,
) -> InProcessGrid:
    """An in-process grid (or a subclass of it) whose nodes hold ``config``'s edge streams;
    ``grid_options`` go to its constructor (e.g. ``sleep=`` for the emulated link)."""
    from hierfl.api import edge_streams
    from hierfl.app.inprocess import InProcessGrid

    cls = grid_class or InProcessGrid
    return cls(config, edge_streams(config, benchmark), Path(state_root), **grid_options)


def __getattr__(name: str) -> Any:
    """``HandAveraging`` (a Flower strategy that averages by hand), imported on use."""
    if name == "HandAveraging":
        from hierfl.testing.fakes import HandAveraging

        return HandAveraging
    raise AttributeError(f"module 'hierfl.testing' has no attribute {name!r}")
