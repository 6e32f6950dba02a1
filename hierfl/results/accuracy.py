"""Continual-learning accuracy matrices per exit and the summary numbers derived from them."""

from __future__ import annotations

import math
from collections.abc import Sequence
from statistics import fmean

Rows = Sequence[Sequence[float]]


class AccuracyMatrix:
    """Lower-triangular accuracy matrices ``R``, one per exit (``"edge"``, ``"cloud"``, ...).

    ``R[k][j]`` is the accuracy on experience ``j``'s test classes after training on experience
    ``k``; only ``j <= k`` exists because an experience cannot be tested before its classes have
    been seen. Cells are filled one at a time as evaluations arrive, so the matrix tolerates any
    recording order and checks completeness only when a row is read. Recording a cell twice keeps
    the later value (a re-evaluation replaces the earlier one).
    """

    def __init__(self) -> None:
        self._cells: dict[str, dict[tuple[int, int], float]] = {}

    def record(self, exit: str, after: int, on: int, accuracy: float) -> None:
        """Stores ``R[after][on]`` for ``exit``.

        Raises:
            ValueError: if ``exit`` is empty, ``on``/``after`` are negative or ``on > after``
                (testing an experience before training on it), or ``accuracy`` is not a finite
                fraction in [0, 1] (a percentage passed by mistake would silently skew means).
        """
        if not exit:
            raise ValueError("exit must be a non-empty name such as 'edge' or 'cloud'")
        if on < 0 or after < 0:
            raise ValueError(f"experience indices must be >= 0, got after={after}, on={on}")
        if on > after:
            raise ValueError(
                f"cannot record accuracy on experience {on} after training only up to {after}; "
                "the matrix is lower-triangular (on <= after)"
            )
        if not (math.isfinite(accuracy) and 0.0 <= accuracy <= 1.0):
            raise ValueError(
                f"accuracy must be a fraction in [0, 1], got {accuracy!r} for exit {exit!r} "
                f"(after={after}, on={on}); divide percentages by 100"
            )
        self._cells.setdefault(exit, {})[(after, on)] = float(accuracy)

    def to_dict(self) -> dict[str, list[list[float]]]:
        """The recorded cells as ``{exit: [[after, on, accuracy], ...]}`` (for checkpoints)."""
        return {
            exit: [[after, on, value] for (after, on), value in sorted(cells.items())]
            for exit, cells in self._cells.items()
        }

    @classmethod
    def from_dict(cls, data: dict[str, list[list[float]]]) -> AccuracyMatrix:
        """Rebuilds a matrix from ``to_dict``'s output, re-checking every cell."""
        matrix = cls()
        for exit, cells in data.items():
            for after, on, value in cells:
                matrix.record(exit, int(after), int(on), float(value))
        return matrix

    def row(self, exit: str, after: int) -> list[float]:
        """Returns ``[R[after][0], ..., R[after][after]]`` for ``exit``.

        Raises:
            KeyError: if ``exit`` was never recorded.
            ValueError: if any cell of the row is missing, naming the missing experiences.
        """
        if exit not in self._cells:
            raise KeyError(f"no accuracy recorded for exit {exit!r}; known exits: {self.exits()}")
        cells = self._cells[exit]
        missing = [j for j in range(after + 1) if (after, j) not in cells]
        if missing:
            raise ValueError(
                f"exit {exit!r}: accuracy after experience {after} is missing on experiences "
                f"{missing}; evaluate every seen experience after each training experience"
            )
        return [cells[(after, j)] for j in range(after + 1)]

    def rows(self, exit: str) -> list[list[float]]:
        """Returns every row of ``exit`` for experiences ``0..num_experiences()-1``."""
        return [self.row(exit, k) for k in range(self.num_experiences())]

    def exits(self) -> list[str]:
        """Returns the exit names in the order they were first recorded."""
        return list(self._cells)

    def num_experiences(self) -> int:
        """Returns ``T``: one more than the largest training experience recorded on any exit."""
        afters = [after for cells in self._cells.values() for after, _ in cells]
        return max(afters) + 1 if afters else 0


def _size(rows: Rows) -> int:
    """Returns ``T`` after checking that row ``k`` holds at least ``k + 1`` values.

    Longer rows are accepted (a full square matrix with zeros above the diagonal, as Avalanche's
    ``functional.forgetting`` takes) and the cells above the diagonal are ignored.
    """
    if len(rows) == 0:
        raise ValueError("the accuracy matrix is empty; record at least one experience")
    for k, row in enumerate(rows):
        if len(row) < k + 1:
            raise ValueError(f"row {k} must hold {k + 1} accuracies (j <= {k}), got {len(row)}")
    return len(rows)


def stream_accuracy(rows: Rows) -> float:
    """Mean accuracy over all experiences after the last one: the number CL papers report.

    >>> round(stream_accuracy([[1.0], [0.5, 0.75], [0.25, 0.5, 1.0]]), 4)
    0.5833
    """
    t = _size(rows)
    return fmean(rows[t - 1][:t])


def forgetting(rows: Rows) -> float:
    """Avalanche's stream forgetting: mean over ``k < T-1`` of ``R[k][k] - R[T-1][k]``.

    The last experience is left out because it has had no chance to be forgotten; including its
    zero would dilute the number as Avalanche's ``StreamForgetting`` does not. This is accuracy
    right after learning minus the last accuracy, not Chaudhry's "max over previous" variant.

    >>> forgetting([[1.0], [0.5, 0.75], [0.25, 0.5, 1.0]])
    0.5
    >>> forgetting([[0.9]])
    0.0
    """
    t = _size(rows)
    if t == 1:
        return 0.0
    return fmean(rows[k][k] - rows[t - 1][k] for k in range(t - 1))


def bwt(rows: Rows) -> float:
    """Backward transfer (Lopez-Paz & Ranzato): mean over ``k < T-1`` of ``R[T-1][k] - R[k][k]``.

    It is the negated forgetting; both are reported because papers use either sign convention.

    >>> bwt([[1.0], [0.5, 0.75], [0.25, 0.5, 1.0]])
    -0.5
    >>> bwt([[0.9]])
    0.0
    """
    t = _size(rows)
    if t == 1:
        return 0.0
    return fmean(rows[t - 1][k] - rows[k][k] for k in range(t - 1))


def newest_accuracy(rows: Rows) -> list[float]:
    """Returns the diagonal ``R[k][k]``: how well each experience was learnt when it was new."""
    return [float(rows[k][k]) for k in range(_size(rows))]


def summarize(matrix: AccuracyMatrix) -> dict[str, float]:
    """Builds the ``final`` block of ``metrics.json``: accuracy, forgetting and BWT per exit.

    Keys are ``f"{exit}_accuracy"``, ``f"{exit}_forgetting"`` and ``f"{exit}_bwt"`` for every
    exit present, so a mode with a single exit (``cloud``, ``edge``) reports only that exit.

    Raises:
        ValueError: if the matrix is empty or some exit lacks a cell of its matrix.
    """
    if matrix.num_experiences() == 0:
        raise ValueError(
            "no accuracy recorded; evaluate at least one experience before summarizing"
        )
    final: dict[str, float] = {}
    for exit in matrix.exits():
        rows = matrix.rows(exit)
        final[f"{exit}_accuracy"] = stream_accuracy(rows)
        final[f"{exit}_forgetting"] = forgetting(rows)
        final[f"{exit}_bwt"] = bwt(rows)
    return final
