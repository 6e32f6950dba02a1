"""Assembles ``metrics.json`` and writes the run folder (JSON, CSV and accuracy plot)."""

from __future__ import annotations

import csv
import io
import json
import os
import tempfile
from collections.abc import Callable
from pathlib import Path
from statistics import fmean
from typing import IO, Any

from hierfl.results.accuracy import AccuracyMatrix, summarize

COMMUNICATION_KEYS = ("uplink_bytes", "downlink_bytes", "raw_input_bytes_uplink")
TIME_KEYS = ("wall_s", "edge_compute_s", "cloud_compute_s", "emulated_link_s")
RESERVED_KEYS = (
    "config",
    "mode",
    "experiences",
    "final",
    "communication",
    "time",
    "rounds",
    "per_client",
)


def _require(block: str, values: dict[str, Any], keys: tuple[str, ...]) -> dict[str, Any]:
    """Returns a copy of ``values`` after checking that every contract key is there."""
    missing = [key for key in keys if key not in values]
    if missing:
        raise ValueError(f"{block} is missing {', '.join(missing)}; metrics.json needs {keys}")
    return dict(values)


def build_metrics(
    *,
    config: dict[str, Any],
    mode: str,
    matrix: AccuracyMatrix,
    classes: list[list[int]],
    communication: dict[str, Any],
    time: dict[str, Any],
    rounds: list[dict[str, Any]],
    clients: dict[int, AccuracyMatrix] | None = None,
    extra: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """Builds the ``metrics.json`` layout (docs/reference.md, "The run folder") in one place.

    Every mode writes the same layout so that plotting and comparison scripts need no special
    cases; a mode with one exit simply has one key under ``accuracy``.

    Args:
        classes: the classes of each experience, one list per experience, in training order.
        clients: each edge's own accuracy matrices (its locally trained edge weights under the
            shared cloud), keyed by partition id; written under ``per_client``.
        extra: further top-level keys; they may not replace a key of the contract.

    Raises:
        ValueError: if a required communication or time key is missing, ``classes`` does not have
            one entry per experience, or ``extra`` collides with a contract key.
    """
    t = matrix.num_experiences()
    if len(classes) != t:
        raise ValueError(f"classes has {len(classes)} entries but the matrix has {t} experiences")
    metrics: dict[str, Any] = {
        "config": dict(config),
        "mode": mode,
        "experiences": _experiences(matrix, classes, t),
        "final": summarize(matrix) if t else {},  # {}: stopped before its first evaluation
        "communication": _require("communication", communication, COMMUNICATION_KEYS),
        "time": _require("time", time, TIME_KEYS),
        "rounds": list(rounds),
        "per_client": {
            str(pid): _client_block(client, classes)
            for pid, client in sorted((clients or {}).items())
        },
    }
    clashes = sorted(set(extra or {}) & set(RESERVED_KEYS))
    if clashes:
        raise ValueError(f"extra may not replace contract keys {clashes}; rename them")
    metrics.update(extra or {})
    return metrics


def _experiences(matrix: AccuracyMatrix, classes: list[list[int]], t: int) -> list[dict[str, Any]]:
    return [
        {
            "index": k,
            "classes": [int(c) for c in classes[k]],
            "accuracy": {exit: matrix.row(exit, k) for exit in matrix.exits()},
        }
        for k in range(t)
    ]


def _client_block(matrix: AccuracyMatrix, classes: list[list[int]]) -> dict[str, Any]:
    """One edge's matrices and summary; an edge missing from a last round has fewer rows."""
    t = 0
    while t < matrix.num_experiences():
        try:
            _ = [matrix.row(exit, t) for exit in matrix.exits()]
        except ValueError:
            break
        t += 1
    if t == 0:
        return {"experiences": [], "final": {}}
    complete = AccuracyMatrix()
    for exit in matrix.exits():
        for k in range(t):
            for j, value in enumerate(matrix.row(exit, k)):
                complete.record(exit, k, j, value)
    return {"experiences": _experiences(complete, classes, t), "final": summarize(complete)}


def _json_default(value: Any) -> Any:
    """Converts paths and numpy/torch scalars or arrays that may appear in a config."""
    if isinstance(value, Path):
        return str(value)
    if hasattr(value, "tolist"):
        return value.tolist()
    raise TypeError(f"cannot write {type(value).__name__} to metrics.json: {value!r}")


def _atomic_write(path: Path, write: Callable[[IO[bytes]], object]) -> None:
    """Writes through a temporary file in the same folder and renames it over ``path``.

    A crash or a reader polling the folder never sees a half-written file, because ``os.replace``
    within one filesystem is atomic.
    """
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as handle:
            write(handle)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def _csv_text(
    experiences: list[dict[str, Any]], per_client: dict[str, dict[str, Any]] | None = None
) -> str:
    """One row per (experience, exit, client); ``client`` is ``all`` for the aggregated model.

    Cells of experiences not yet seen stay empty.
    """
    t = len(experiences)
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    writer.writerow(
        ["experience", "exit", "client", "classes", *[f"acc_exp{j}" for j in range(t)], "mean_seen"]
    )
    scopes = [("all", experiences)]
    scopes += [(pid, block["experiences"]) for pid, block in (per_client or {}).items()]
    for client, rows in scopes:
        for experience in rows:
            classes = " ".join(str(c) for c in experience["classes"])
            for exit, accuracy in experience["accuracy"].items():
                cells = [*accuracy, *[""] * (t - len(accuracy))]
                writer.writerow(
                    [experience["index"], exit, client, classes, *cells, fmean(accuracy)]
                )
    return buffer.getvalue()


def _plot(experiences: list[dict[str, Any]], handle: IO[bytes]) -> None:
    """Draws one panel per exit: each experience's accuracy over time plus the seen mean.

    Uses ``Figure`` with the Agg canvas directly instead of ``pyplot``, so no global backend is
    switched and nothing leaks between runs in the same process.
    """
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    t = len(experiences)
    exits = list(experiences[0]["accuracy"])
    figure = Figure(figsize=(5 * len(exits), 4), layout="constrained")
    FigureCanvasAgg(figure)
    axes = figure.subplots(1, len(exits), squeeze=False, sharey=True)[0]
    for axis, exit in zip(axes, exits, strict=True):
        rows = [experience["accuracy"][exit] for experience in experiences]
        for j in range(t):
            after = list(range(j, t))
            axis.plot(after, [rows[k][j] for k in after], marker="o", label=f"experience {j}")
        axis.plot(
            range(t),
            [fmean(row) for row in rows],
            color="black",
            linewidth=3,
            marker="s",
            label="mean over seen",
        )
        axis.set_title(f"{exit} exit")
        axis.set_xlabel("after experience")
        axis.set_ylabel("accuracy")
        axis.set_ylim(-0.02, 1.02)  # a margin so points at 0 and 1 are not clipped
        axis.set_xticks(range(t))
        axis.set_xlim(-0.5, t - 0.5)
        axis.grid(alpha=0.3)
        axis.legend(fontsize="small")
    figure.savefig(handle, format="png")


def _plot_early_exit(rows: list[dict[str, float]], handle: IO[bytes]) -> None:
    """Accuracy against offload fraction, one point per confidence threshold."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    figure = Figure(figsize=(5, 4), layout="constrained")
    FigureCanvasAgg(figure)
    ax = figure.add_subplot()
    offload = [r["offload_fraction"] for r in rows]
    accuracy = [r["accuracy"] for r in rows]
    ax.plot(offload, accuracy, marker="o")
    for r in rows:
        ax.annotate(
            f"t={r['threshold']:g}",
            (r["offload_fraction"], r["accuracy"]),
            textcoords="offset points",
            xytext=(4, -10),
            fontsize=8,
        )
    ax.set_xlabel("fraction offloaded to the cloud")
    ax.set_ylabel("accuracy (all experiences)")
    ax.set_xlim(-0.02, 1.02)
    ax.set_ylim(-0.02, 1.02)
    ax.set_title("early exit at confidence t", fontsize=10)
    ax.grid(alpha=0.3)
    figure.savefig(handle, format="png")


def write_run_folder(out_dir: str | Path, metrics: dict[str, Any]) -> None:
    """Writes ``metrics.json``, ``metrics.csv``, ``accuracy.png`` (and ``early_exit.png``).

    The CSV and the plot are derived from ``metrics["experiences"]`` alone, so they can be
    regenerated from a saved ``metrics.json``. Other files in the folder (the log) are kept.
    A run stopped before its first evaluation gets ``metrics.json`` only.

    Raises:
        ValueError: if ``metrics`` has experiences without accuracy.
    """
    experiences = metrics.get("experiences") or []
    if experiences and not experiences[0].get("accuracy"):
        raise ValueError("metrics has experiences without accuracy; build it with build_metrics")
    folder = Path(out_dir)
    folder.mkdir(parents=True, exist_ok=True)
    text = json.dumps(metrics, indent=2, default=_json_default) + "\n"
    _atomic_write(folder / "metrics.json", lambda handle: handle.write(text.encode()))
    if not experiences:
        return
    table = _csv_text(experiences, metrics.get("per_client"))
    _atomic_write(folder / "metrics.csv", lambda handle: handle.write(table.encode()))
    _atomic_write(folder / "accuracy.png", lambda handle: _plot(experiences, handle))
    if metrics.get("early_exit"):
        rows = metrics["early_exit"]
        _atomic_write(folder / "early_exit.png", lambda handle: _plot_early_exit(rows, handle))
