"""The run folder contract (docs/reference.md): metrics.json, metrics.csv, accuracy.png."""

from __future__ import annotations

import csv
import json
from pathlib import Path
from typing import Any

import pytest

from hierfl.results.accuracy import AccuracyMatrix
from hierfl.results.run_folder import build_metrics, write_run_folder

EDGE = [[0.5], [0.25, 0.75], [0.25, 0.5, 1.0]]
CLOUD = [[0.9], [0.7, 0.8], [0.6, 0.7, 0.95]]
CLASSES = [[0, 1], [2, 3], [4, 5]]
COMMUNICATION = {"uplink_bytes": 1200, "downlink_bytes": 300, "raw_input_bytes_uplink": 0}
TIME = {"wall_s": 1.5, "edge_compute_s": 0.5, "cloud_compute_s": 0.25, "emulated_link_s": 0.125}


def _matrix(experiences: int) -> AccuracyMatrix:
    matrix = AccuracyMatrix()
    for exit, rows in (("edge", EDGE), ("cloud", CLOUD)):
        for k, row in enumerate(rows[:experiences]):
            for j, accuracy in enumerate(row):
                matrix.record(exit, after=k, on=j, accuracy=accuracy)
    return matrix


def _metrics(experiences: int = 3, **changes: Any) -> dict[str, Any]:
    arguments: dict[str, Any] = {
        "config": {"seed": 0, "clients": 3, "out": Path("runs/x")},
        "mode": "hierarchical",
        "matrix": _matrix(experiences),
        "classes": CLASSES[:experiences],
        "communication": COMMUNICATION,
        "time": TIME,
        "rounds": [{"round": 1, "loss": 0.5}],
    }
    arguments.update(changes)
    return build_metrics(**arguments)


def test_metrics_json_has_the_contract_keys(tmp_path: Path) -> None:
    write_run_folder(tmp_path / "run", _metrics(extra={"notes": "tiny"}))
    data = json.loads((tmp_path / "run" / "metrics.json").read_text())
    assert {"config", "mode", "experiences", "final", "communication", "time"} <= set(data)
    assert data["mode"] == "hierarchical"
    assert data["config"]["out"] == "runs/x"
    assert data["notes"] == "tiny"
    assert data["rounds"] == [{"round": 1, "loss": 0.5}]
    assert [e["index"] for e in data["experiences"]] == [0, 1, 2]
    assert [e["classes"] for e in data["experiences"]] == CLASSES
    for k, experience in enumerate(data["experiences"]):
        assert experience["accuracy"] == {"edge": EDGE[k], "cloud": CLOUD[k]}
    final = data["final"]
    for key in ("accuracy", "forgetting", "bwt"):
        assert {f"edge_{key}", f"cloud_{key}"} <= set(final)
    # By hand: cloud stream (0.6 + 0.7 + 0.95) / 3 = 0.75, forgetting (0.3 + 0.1) / 2 = 0.2;
    # edge stream (0.25 + 0.5 + 1.0) / 3 = 0.5833..., forgetting (0.25 + 0.25) / 2 = 0.25.
    assert final["cloud_accuracy"] == pytest.approx(0.75)
    assert final["cloud_forgetting"] == pytest.approx(0.2)
    assert final["cloud_bwt"] == pytest.approx(-0.2)
    assert final["edge_accuracy"] == pytest.approx(1.75 / 3)
    assert final["edge_forgetting"] == pytest.approx(0.25)
    assert data["communication"] == COMMUNICATION
    assert data["time"] == TIME
    leftovers = [p.name for p in (tmp_path / "run").iterdir() if p.name.endswith(".tmp")]
    assert leftovers == []


def test_metrics_csv_rows_and_empty_cells(tmp_path: Path) -> None:
    write_run_folder(tmp_path, _metrics())
    with (tmp_path / "metrics.csv").open(newline="") as handle:
        table = list(csv.reader(handle))
    header, rows = table[0], table[1:]
    assert header == [
        "experience",
        "exit",
        "client",
        "classes",
        "acc_exp0",
        "acc_exp1",
        "acc_exp2",
        "mean_seen",
    ]
    assert len(rows) == 2 * 3
    assert {row[2] for row in rows} == {"all"}
    by_key = {(row[0], row[1]): row[:2] + row[3:] for row in rows}
    assert by_key[("0", "cloud")][2:] == ["0 1", "0.9", "", "", "0.9"]
    assert by_key[("1", "edge")][2:6] == ["2 3", "0.25", "0.75", ""]
    assert float(by_key[("1", "edge")][6]) == pytest.approx(0.5)
    assert by_key[("2", "cloud")][3:6] == ["0.6", "0.7", "0.95"]
    assert float(by_key[("2", "cloud")][6]) == pytest.approx(0.75)


def test_accuracy_png_is_written(tmp_path: Path) -> None:
    write_run_folder(tmp_path, _metrics())
    assert (tmp_path / "accuracy.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_single_experience_run_folder(tmp_path: Path) -> None:
    metrics = _metrics(experiences=1)
    assert metrics["final"]["cloud_forgetting"] == 0.0
    write_run_folder(tmp_path, metrics)
    assert (tmp_path / "accuracy.png").read_bytes()[:4] == b"\x89PNG"
    lines = (tmp_path / "metrics.csv").read_text().splitlines()
    assert len(lines) == 1 + 2


def test_single_exit_mode(tmp_path: Path) -> None:
    matrix = AccuracyMatrix()
    matrix.record("cloud", after=0, on=0, accuracy=0.5)
    metrics = _metrics(experiences=1, mode="cloud", matrix=matrix)
    assert set(metrics["final"]) == {"cloud_accuracy", "cloud_forgetting", "cloud_bwt"}
    write_run_folder(tmp_path, metrics)
    assert (tmp_path / "accuracy.png").exists()


def test_rewrite_replaces_files(tmp_path: Path) -> None:
    write_run_folder(tmp_path, _metrics(mode="split"))
    write_run_folder(tmp_path, _metrics(mode="edge"))
    assert json.loads((tmp_path / "metrics.json").read_text())["mode"] == "edge"


def test_missing_communication_key_is_named() -> None:
    communication = {k: v for k, v in COMMUNICATION.items() if k != "downlink_bytes"}
    with pytest.raises(ValueError, match="downlink_bytes"):
        _metrics(communication=communication)


def test_missing_time_key_is_named() -> None:
    time = {k: v for k, v in TIME.items() if k != "emulated_link_s"}
    with pytest.raises(ValueError, match="emulated_link_s"):
        _metrics(time=time)


def test_classes_must_match_experiences() -> None:
    with pytest.raises(ValueError, match="classes"):
        _metrics(classes=CLASSES[:2])


def test_extra_may_not_replace_contract_keys() -> None:
    with pytest.raises(ValueError, match="final"):
        _metrics(extra={"final": {}})


def test_a_run_stopped_before_any_evaluation_writes_metrics_json_only(tmp_path: Path) -> None:
    write_run_folder(tmp_path, {"experiences": [], "status": "failed", "reason": "why"})
    assert sorted(p.name for p in tmp_path.iterdir()) == ["metrics.json"]
    assert json.loads((tmp_path / "metrics.json").read_text())["status"] == "failed"


def test_write_run_folder_rejects_experiences_without_accuracy(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="experiences"):
        write_run_folder(tmp_path, {"experiences": [{"index": 0, "accuracy": {}}]})
