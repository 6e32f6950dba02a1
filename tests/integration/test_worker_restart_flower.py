"""A killed edge worker is restarted by its hierfl-client and the run completes (real Flower)."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest

from hierfl.deploy.processes import processes_mentioning

pytestmark = [pytest.mark.integration, pytest.mark.slow]
BIN = Path(sys.executable).parent


def _workers(out: Path) -> list[int]:
    """The edge workers of this run: their command line names the node's state folder."""
    pids = []
    for pid in processes_mentioning(str(out / "nodes")):
        try:
            cmdline = Path(f"/proc/{pid}/cmdline").read_bytes()
        except FileNotFoundError:
            continue
        if b"hierfl.deploy.edge_worker" in cmdline:
            pids.append(pid)
    return pids


def test_a_killed_edge_worker_is_restarted_and_the_run_completes(tmp_path):
    out = tmp_path / "run"
    proc = subprocess.Popen(
        [str(BIN / "hierfl"), "run", "--preset", "tiny", "--out", str(out)],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    killed = []
    try:
        assert proc.stdout is not None
        for line in proc.stdout:
            if "exp 1/2 round 1/2" in line and not killed:  # a round done: kill a worker
                workers = _workers(out)
                assert len(workers) == 2, workers
                os.kill(workers[0], signal.SIGKILL)
                killed.append(workers[0])
        assert proc.wait(timeout=600) == 0
    finally:
        if proc.poll() is None:
            proc.kill()
    assert killed
    metrics = json.loads((out / "metrics.json").read_text())
    assert metrics["status"] == "completed" and len(metrics["experiences"]) == 2
    logs = "".join(p.read_text() for p in (out / "logs").glob("client-*.log"))
    assert "edge worker exited with code -9; restart 1 of 5" in logs
    assert killed[0] not in _workers(out)  # nothing of the run is left
