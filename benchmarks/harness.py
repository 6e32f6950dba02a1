"""What the benchmark scripts share: flags, results folder, JSON rows, Markdown tables, figures."""

from __future__ import annotations

import argparse
import json
import time
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import hierfl
from hierfl.config import HierConfig
from hierfl.options import parse_overrides

if TYPE_CHECKING:
    from matplotlib.figure import Figure

    from hierfl.data.containers import Benchmark

RESULTS = "benchmarks/results"
"""Where a script writes its figures unless ``--out`` says otherwise (``.gitignore`` lists it)."""


def parser(
    doc: str | None,
    *,
    brief: bool = False,
    raw: bool = False,
    overrides: bool = False,
    out_help: str | None = None,
) -> argparse.ArgumentParser:
    """A script's parser with ``--out`` (its results folder) and, with ``overrides``, the
    trailing ``key=value`` config overrides.

    The description is the script's docstring: its first line with ``brief``, and kept as
    written (not re-wrapped) with ``raw``.
    """
    description = (doc or "").split("\n")[0] if brief else doc
    formatter = argparse.RawDescriptionHelpFormatter if raw else argparse.HelpFormatter
    p = argparse.ArgumentParser(description=description, formatter_class=formatter)
    p.add_argument("--out", default=RESULTS, help=out_help)
    if overrides:
        add_overrides(p)
    return p


def add_overrides(p: argparse.ArgumentParser, help: str | None = None) -> None:
    """The trailing ``key=value`` config overrides; ``config_from`` reads them."""
    p.add_argument("overrides", nargs="*", metavar="key=value", help=help)


def add_append(p: argparse.ArgumentParser, name: str) -> None:
    """``--append``: add this run's rows to ``--out``'s ``name`` (see ``earlier_rows``)."""
    p.add_argument(
        "--append",
        action="store_true",
        help=f"add the rows to --out's {name} (same config) instead of replacing it",
    )


def config_from(defaults: Mapping[str, Any], overrides: Sequence[str]) -> HierConfig:
    """The script's ``defaults`` with the command line's ``key=value`` overrides on top, validated.

    >>> config_from({"experiences": 1}, ["rounds=2"]).rounds
    2
    """
    return HierConfig.from_mapping({**defaults, **parse_overrides(list(overrides))}).validate()


def results_dir(out: str, *, resolve: bool = False) -> Path:
    """The ``--out`` folder, made if missing (absolute with ``resolve``)."""
    path = Path(out).resolve() if resolve else Path(out)
    path.mkdir(parents=True, exist_ok=True)
    return path


def write_json(path: Path, data: Any) -> None:
    """``data`` as indented JSON at ``path`` (its folder must exist: ``results_dir``)."""
    path.write_text(json.dumps(data, indent=2))


def write_rows(path: Path, config: HierConfig, rows: list[dict[str, Any]], **more: Any) -> None:
    """A rows file: ``{"config": ..., "rows": [...]}`` and ``more`` keys after them."""
    write_json(path, {"config": config.to_dict(), "rows": rows, **more})


def earlier_rows(path: Path, config: HierConfig) -> list[dict[str, Any]]:
    """The rows of an earlier run's rows file at ``path`` (``--append``), refused if it ran
    with another configuration."""
    if not path.exists():
        return []
    earlier = json.loads(path.read_text())
    if earlier["config"] != json.loads(json.dumps(config.to_dict())):
        raise SystemExit(f"{path} was written with another configuration; use another --out")
    return earlier["rows"]


def timed_run(config: HierConfig, bench: Benchmark) -> tuple[hierfl.Result, float]:
    """``hierfl.run`` in process on ``bench``, and its wall seconds."""
    start = time.perf_counter()
    result = hierfl.run(config, benchmark=bench)
    return result, time.perf_counter() - start


def exit_accuracies(final: Mapping[str, float]) -> dict[str, float]:
    """A run's final ``<exit>_accuracy`` figures, by exit.

    >>> exit_accuracies({"cloud_accuracy": 0.9, "edge_accuracy": 0.8, "cloud_forgetting": 0.1})
    {'cloud': 0.9, 'edge': 0.8}
    """
    return {
        name.removesuffix("_accuracy"): value
        for name, value in final.items()
        if name.endswith("_accuracy")
    }


def number(value: float | None, digits: int = 3, none: str = "-") -> str:
    """A table cell: ``value`` to ``digits`` decimals, or ``none`` where there is none.

    >>> number(0.98765), number(None), number(2.5, 1)
    ('0.988', '-', '2.5')
    """
    return none if value is None else f"{value:.{digits}f}"


def markdown_table(header: str, rows: Iterable[str], *, rule: str = "---") -> str:
    """A Markdown table from its lines without their outer pipes: ``header`` the column titles
    and each of ``rows`` the formatted cells, as ``"a | b"``; ``rule`` is each column's cell in
    the line under the header (``---:`` aligns right).

    >>> print(markdown_table("a | b", ["1 | "]))
    | a | b |
    |---|---|
    | 1 |  |
    """
    columns = len(header.split(" | "))
    return "\n".join([f"| {header} |", "|" + f"{rule}|" * columns, *(f"| {r} |" for r in rows)])


def figure(**kwargs: Any) -> Figure:
    """A matplotlib ``Figure`` on the Agg canvas (no pyplot, no global backend); ``savefig``
    writes it. Imported here, so that a script's ``--help`` does not load matplotlib."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    fig = Figure(**kwargs)
    FigureCanvasAgg(fig)
    return fig
