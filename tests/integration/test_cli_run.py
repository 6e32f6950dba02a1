"""Smoke: `hierfl run` with the tiny preset, end to end through Flower on loopback."""

from __future__ import annotations

import csv
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from hierfl.deploy.processes import processes_mentioning

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
    lines = proc.stdout.strip().splitlines()
    assert lines[-1] == f"hierfl: run folder {out}"
    summary = max(i for i, line in enumerate(lines) if "stream accuracy edge" in line)
    assert "forgetting" in lines[summary] and "cloud" in lines[summary]
    assert "hierfl: sent " in lines[summary + 1] and " up, " in lines[summary + 1]
    assert "hierfl: bytes: " in lines[summary + 2] and " in all = codes " in lines[summary + 2]
    assert "cloud-only would have uploaded these samples as " in lines[summary + 3]
    assert f"hierfl: run folder {out}" in lines[summary + 4]
    for noise in ("QP solver", "fraction_evaluate", "Federated evaluation will be skipped"):
        assert noise not in proc.stdout + proc.stderr  # warnings that mean nothing to a user
    metrics = json.loads((out / "metrics.json").read_text())
    for key in ("config", "mode", "experiences", "final", "communication", "time"):
        assert key in metrics
    assert metrics["config"]["clients"] == 2
    last = metrics["experiences"][-1]["accuracy"]  # the final row, for each exit
    for exit_name in ("edge", "cloud"):
        row = last[exit_name]
        assert metrics["final"][f"{exit_name}_accuracy"] == pytest.approx(sum(row) / len(row))
        first = metrics["experiences"][0]["accuracy"][exit_name][0]
        assert metrics["final"][f"{exit_name}_forgetting"] == pytest.approx(first - row[0])
    assert metrics["time"]["wall_s"] > metrics["time"]["cloud_compute_s"] > 0
    with open(out / "metrics.csv") as fh:
        rows = list(csv.DictReader(fh))
    overall = [r for r in rows if r["client"] == "all"]
    assert len(overall) == 4  # 2 experiences x 2 exits
    assert sorted({r["client"] for r in rows} - {"all"}) == ["0", "1"]  # each edge's own rows
    assert len(rows) == 3 * 4
    assert sorted(metrics["per_client"]) == ["0", "1"]
    assert (out / "accuracy.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert (out / "log.txt").exists()


def test_sigterm_stops_every_flower_process(tmp_path):
    out = tmp_path / "run"
    proc = subprocess.Popen(
        [str(BIN / "hierfl"), "run", "--preset", "tiny", "--out", str(out)],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    assert proc.stdout is not None
    for line in proc.stdout:  # wait until the SuperLink and both SuperNodes are working
        if "edges connected" in line:
            break
    assert processes_mentioning(str(out)), "the run's processes should be up by now"
    proc.send_signal(signal.SIGTERM)
    try:
        proc.wait(timeout=60)
        assert proc.returncode != 0
        deadline = time.monotonic() + 30
        while processes_mentioning(str(out)) and time.monotonic() < deadline:
            time.sleep(0.5)
        assert processes_mentioning(str(out)) == []
    finally:  # whatever the outcome, nothing this test started outlives it
        for pid in processes_mentioning(str(out)) + [proc.pid]:
            try:
                os.kill(pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
