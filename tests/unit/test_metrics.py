"""Accuracy matrix bookkeeping and forgetting/BWT against hand-computed values and Avalanche."""

from __future__ import annotations

import pytest

from hierfl.results.accuracy import (
    AccuracyMatrix,
    bwt,
    forgetting,
    newest_accuracy,
    stream_accuracy,
    summarize,
)

# R[k][j]: accuracy on experience j after training on experience k.
ROWS = [
    [0.9],
    [0.7, 0.8],
    [0.6, 0.7, 0.95],
]
# By hand: stream = (0.6 + 0.7 + 0.95) / 3 = 2.25 / 3 = 0.75
#          forgetting = ((0.9 - 0.6) + (0.8 - 0.7)) / 2 = (0.3 + 0.1) / 2 = 0.2
#          bwt = ((0.6 - 0.9) + (0.7 - 0.8)) / 2 = -0.2


def _matrix(rows_per_exit: dict[str, list[list[float]]]) -> AccuracyMatrix:
    matrix = AccuracyMatrix()
    for exit, rows in rows_per_exit.items():
        for k, row in enumerate(rows):
            for j, accuracy in enumerate(row):
                matrix.record(exit, after=k, on=j, accuracy=accuracy)
    return matrix


def test_hand_computed_3x3() -> None:
    assert stream_accuracy(ROWS) == pytest.approx(0.75)
    assert forgetting(ROWS) == pytest.approx(0.2)
    assert bwt(ROWS) == pytest.approx(-0.2)
    assert newest_accuracy(ROWS) == [0.9, 0.8, 0.95]


def test_negative_forgetting_when_accuracy_improves() -> None:
    rows = [[0.5], [0.75, 1.0]]  # experience 0 got better: forgetting 0.5 - 0.75 = -0.25
    assert forgetting(rows) == pytest.approx(-0.25)
    assert bwt(rows) == pytest.approx(0.25)


def test_square_matrix_ignores_cells_above_diagonal() -> None:
    square = [[0.9, 0.0, 0.0], [0.7, 0.8, 0.0], [0.6, 0.7, 0.95]]
    assert stream_accuracy(square) == pytest.approx(0.75)
    assert forgetting(square) == pytest.approx(0.2)
    assert newest_accuracy(square) == [0.9, 0.8, 0.95]


def test_single_experience() -> None:
    rows = [[0.42]]
    assert stream_accuracy(rows) == pytest.approx(0.42)
    assert forgetting(rows) == 0.0
    assert bwt(rows) == 0.0
    assert newest_accuracy(rows) == [0.42]
    final = summarize(_matrix({"edge": rows, "cloud": [[0.5]]}))
    assert final == {
        "edge_accuracy": pytest.approx(0.42),
        "edge_forgetting": 0.0,
        "edge_bwt": 0.0,
        "cloud_accuracy": pytest.approx(0.5),
        "cloud_forgetting": 0.0,
        "cloud_bwt": 0.0,
    }


@pytest.mark.parametrize("bad", [[], [[0.5], [0.5]]])
def test_malformed_rows_rejected(bad: list[list[float]]) -> None:
    with pytest.raises(ValueError):
        forgetting(bad)


def test_matrix_rows_and_summary() -> None:
    edge = [[0.5], [0.25, 0.75]]
    matrix = _matrix({"edge": edge, "cloud": ROWS[:2]})
    assert matrix.exits() == ["edge", "cloud"]
    assert matrix.num_experiences() == 2
    assert matrix.row("cloud", 1) == [0.7, 0.8]
    assert matrix.row("edge", 0) == [0.5]
    final = summarize(matrix)
    # edge by hand: stream (0.25 + 0.75) / 2 = 0.5; forgetting 0.5 - 0.25 = 0.25
    # cloud by hand: stream (0.7 + 0.8) / 2 = 0.75; forgetting 0.9 - 0.7 = 0.2
    assert final["edge_accuracy"] == pytest.approx(0.5)
    assert final["edge_forgetting"] == pytest.approx(0.25)
    assert final["edge_bwt"] == pytest.approx(-0.25)
    assert final["cloud_accuracy"] == pytest.approx(0.75)
    assert final["cloud_forgetting"] == pytest.approx(0.2)
    assert final["cloud_bwt"] == pytest.approx(-0.2)


def test_record_order_does_not_matter_and_later_value_wins() -> None:
    matrix = AccuracyMatrix()
    matrix.record("cloud", after=1, on=1, accuracy=0.8)
    matrix.record("cloud", after=1, on=0, accuracy=0.1)
    matrix.record("cloud", after=0, on=0, accuracy=0.9)
    matrix.record("cloud", after=1, on=0, accuracy=0.7)
    assert matrix.rows("cloud") == [[0.9], [0.7, 0.8]]


@pytest.mark.parametrize(
    ("after", "on", "accuracy", "message"),
    [
        (0, 1, 0.5, "lower-triangular"),
        (-1, 0, 0.5, ">= 0"),
        (0, 0, 1.5, r"\[0, 1\]"),
        (0, 0, -0.1, r"\[0, 1\]"),
        (0, 0, 95.0, "percentages"),
        (0, 0, float("nan"), r"\[0, 1\]"),
    ],
)
def test_record_validation(after: int, on: int, accuracy: float, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        AccuracyMatrix().record("edge", after=after, on=on, accuracy=accuracy)


def test_record_rejects_empty_exit() -> None:
    with pytest.raises(ValueError, match="exit"):
        AccuracyMatrix().record("", after=0, on=0, accuracy=0.5)


def test_missing_cells_and_exits_are_reported() -> None:
    matrix = AccuracyMatrix()
    matrix.record("edge", after=0, on=0, accuracy=0.5)
    matrix.record("edge", after=1, on=1, accuracy=0.5)
    with pytest.raises(ValueError, match=r"missing on experiences \[0\]"):
        matrix.row("edge", 1)
    with pytest.raises(ValueError, match="missing"):
        summarize(matrix)
    with pytest.raises(KeyError, match="cloud"):
        matrix.row("cloud", 0)
    with pytest.raises(ValueError, match="no accuracy"):
        summarize(AccuracyMatrix())


@pytest.mark.parametrize(
    "rows",
    [
        ROWS,
        # The digits run recorded in notes/avalanche.md section 5.1 (includes negative forgetting).
        [
            [0.98],
            [0.96, 0.91],
            [0.86, 0.72, 0.81],
            [0.92, 0.86, 0.79, 0.68],
            [0.83, 0.77, 0.48, 0.83, 0.98],
        ],
    ],
)
def test_matches_avalanche_forgetting_and_bwt(rows: list[list[float]]) -> None:
    from avalanche.evaluation.metrics import BWT, Forgetting

    fgt, back = Forgetting(), BWT()
    for t, row in enumerate(rows):
        for k, accuracy in enumerate(row):
            if k == t:
                fgt.update(k, accuracy, initial=True)
                back.update(k, accuracy, initial=True)
            else:
                fgt.update(k, accuracy)
                back.update(k, accuracy)
    previous = range(len(rows) - 1)
    fgt_result, bwt_result = fgt.result(), back.result()
    assert set(fgt_result) == set(previous)
    expected_forgetting = sum(fgt_result[k] for k in previous) / len(previous)
    expected_bwt = sum(bwt_result[k] for k in previous) / len(previous)
    assert forgetting(rows) == pytest.approx(expected_forgetting)
    assert bwt(rows) == pytest.approx(expected_bwt)
