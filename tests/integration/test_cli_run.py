"""Smoke: `hierfl run` with the tiny preset, end to end through Flower on loopback."""

from __future__ import annotations

import csv
import json
import subprocess
import sys
from pathlib import Path

import pytest

pytestmark = pytest.mark.integration
BIN = Path(sys.executable).parent


def test_hierfl_run_tiny_preset_writes_the_run_folder(tmp_path):
    out = tmp_path / "run"
    proc = subprocess.run(
        [str(BIN / "hierfl"), "run", "--preset", "tiny", "--out", str(out)],
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    assert "exp 2/2 round 2/2" in proc.stdout  # progress is shown while it runs
    metrics = json.loads((out / "metrics.json").read_text())
    for key in ("config", "mode", "experiences", "final", "communication", "time"):
        assert key in metrics
    assert metrics["config"]["clients"] == 2
    for key in (
        "edge_accuracy",
        "cloud_accuracy",
        "edge_forgetting",
        "cloud_forgetting",
        "cloud_bwt",
    ):
        assert 0.0 <= abs(metrics["final"][key]) <= 1.0
    assert metrics["time"]["wall_s"] > metrics["time"]["cloud_compute_s"] > 0
    with open(out / "metrics.csv") as fh:
        rows = list(csv.DictReader(fh))
    assert len(rows) == 4  # 2 experiences x 2 exits
    assert (out / "accuracy.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert (out / "log.txt").exists()
