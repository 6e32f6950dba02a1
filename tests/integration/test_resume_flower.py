"""`hierfl run` through Flower, killed with SIGKILL mid-run, then `hierfl run --resume`."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from hierfl.cloud.checkpoint import CHECKPOINT, load_checkpoint
from hierfl.deploy.processes import processes_mentioning

pytestmark = [pytest.mark.integration, pytest.mark.slow]

BIN = Path(sys.executable).parent


def _kill_9(pids: list[int]) -> None:
    for pid in pids:
        try:
            os.kill(pid, signal.SIGKILL)
        except ProcessLookupError:
            pass


def _crash(proc: subprocess.Popen, out: Path) -> None:
    """SIGKILL the run and every process of it, as a power cut would.

    A SuperNode may start an app process between one listing and its own kill, so this lists
    and kills again until nothing of the run is left (or 30 s have passed).
    """
    _kill_9([proc.pid])
    deadline = time.monotonic() + 30
    while (left := processes_mentioning(str(out))) and time.monotonic() < deadline:
        _kill_9(left)
        time.sleep(0.2)


def test_a_killed_run_resumes_from_its_checkpoint(tmp_path):
    out = tmp_path / "run"
    argv = [str(BIN / "hierfl"), "run", "--preset", "tiny", "--experiences", "3"]
    proc = subprocess.Popen([*argv, "--out", str(out)], stdout=subprocess.DEVNULL)
    try:
        deadline = time.monotonic() + 400
        while time.monotonic() < deadline:  # until experience 0 is checkpointed
            path = out / CHECKPOINT
            if path.exists() and load_checkpoint(out).next_round >= 2:
                break
            assert proc.poll() is None, "the run ended before it could be killed"
            time.sleep(0.5)
        else:
            pytest.fail("no checkpoint within 400 s")
        _crash(proc, out)  # the launcher, the server and everything else
        proc.wait(timeout=30)
        time.sleep(1)
        assert processes_mentioning(str(out)) == []
        saved = load_checkpoint(out)
        assert not (out / "metrics.json").exists()

        resumed = subprocess.run(
            [str(BIN / "hierfl"), "run", "--resume", str(out)],
            capture_output=True,
            text=True,
            timeout=500,
        )
        assert resumed.returncode == 0, resumed.stderr[-2000:]
        metrics = json.loads((out / "metrics.json").read_text())
        assert len(metrics["experiences"]) == 3
        for after, on, value in saved.result["matrix"]["cloud"]:  # finished work kept as is
            assert metrics["experiences"][int(after)]["accuracy"]["cloud"][int(on)] == value
        assert metrics["experiences"][2]["accuracy"]["cloud"][2] > 0.5  # and it kept learning
        assert len(metrics["rounds"]) == 3 * 2
        # the edges found their node-local state again: one state folder per edge, reused
        for node in ("node-0", "node-1"):
            folders = sorted(p.name for p in (out / "nodes" / node).glob("run-*"))
            assert folders == [saved.state_key]
        assert "resumed from" in (out / "log.txt").read_text()
    finally:
        _crash(proc, out)
    assert processes_mentioning(str(out)) == []
