"""What `hierfl run` does with bad input and systematic failures: one line, the right exit
code, no process started for a config error, a failed run's metrics.json."""

from __future__ import annotations

import json
import subprocess
import sys
from collections import namedtuple
from pathlib import Path

import pytest

from hierfl import cli, preflight
from hierfl.deploy.processes import processes_mentioning

pytestmark = pytest.mark.integration
BIN = Path(sys.executable).parent
TINY = ["--preset", "tiny"]


@pytest.fixture
def no_processes(monkeypatch):
    """Any process started by the CLI fails the test (a config error must start nothing)."""
    started: list[list[str]] = []

    def refuse(argv, *args, **kwargs):
        started.append(list(argv))
        raise AssertionError(f"a process was started: {argv}")

    monkeypatch.setattr(subprocess, "Popen", refuse)
    return started


def _main(capsys, *argv: str) -> tuple[int, list[str]]:
    code = cli.main(["run", *argv])
    return code, capsys.readouterr().err.strip().splitlines()


@pytest.mark.parametrize(
    ("args", "first"),
    [
        (["edge-lr=nan"], "hierfl: error: edge-lr: must be a finite number, got nan"),
        (["--experiences", "11"], "hierfl: error: experiences: got 11; digits has 10 classes"),
        (["--out", "/proc/hierfl-forbidden"], "hierfl: error: out: cannot create"),
        (["--model", "vgg16"], "hierfl: error: input-shape: vgg16 cannot take 1x8x8"),
    ],
)
def test_config_errors_are_one_line_exit_2_and_start_nothing(
    args, first, capsys, no_processes, tmp_path
):
    out = [] if "--out" in args else ["--out", str(tmp_path / "run")]
    code, lines = _main(capsys, *out, *args)
    assert code == 2 and len(lines) == 1, lines
    assert lines[0].startswith(first), lines[0]
    assert no_processes == []


def test_too_many_experiences_starts_no_flower_process(tmp_path):
    """The same through the real command, checked by PID: nothing mentions the run folder."""
    out = tmp_path / "run"
    proc = subprocess.run(
        [str(BIN / "hierfl"), "run", "--experiences", "11", "--out", str(out)],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert proc.returncode == 2
    assert proc.stderr.strip().splitlines() == [
        "hierfl: error: experiences: got 11; digits has 10 classes, so allowed 1..10 (each "
        "experience needs at least one class)"
    ]
    assert processes_mentioning(str(out)) == [] and not (out / "logs").exists()


def test_a_full_disk_is_one_line(capsys, no_processes, tmp_path, monkeypatch):
    usage = namedtuple("usage", "total used free")
    monkeypatch.setattr(preflight.shutil, "disk_usage", lambda _: usage(10**9, 10**9, 10**6))
    code, lines = _main(capsys, "--out", str(tmp_path / "run"))
    assert code == 2 and lines == [
        f"hierfl: error: out: only 1 MiB free under {tmp_path / 'run'}; free some space or "
        "choose another --out"
    ]


def test_out_is_never_silently_overwritten(capsys, tmp_path, monkeypatch):
    finished = tmp_path / "finished"
    finished.mkdir()
    (finished / "metrics.json").write_text("{}")
    code, lines = _main(capsys, *TINY, "--out", str(finished))
    assert code == 2 and "holds a finished run" in lines[0] and "--overwrite" in lines[0]
    other = tmp_path / "thesis"
    other.mkdir()
    (other / "chapter1.tex").write_text("...")
    code, lines = _main(capsys, *TINY, "--out", str(other), "--overwrite")
    assert code == 2 and "is not a hierfl run folder" in lines[0]
    assert (other / "chapter1.tex").exists()  # --overwrite never touches a folder not a run's
    started = []
    monkeypatch.setattr(cli, "_run_engine", lambda engine, config: started.append(config))
    assert cli.main(["run", *TINY, "--out", str(finished), "--overwrite"]) == 0
    assert started and not (finished / "metrics.json").exists()  # the old run is gone


def test_resume_says_what_it_ignores(capsys, tmp_path):
    (tmp_path / "c.toml").write_text("rounds = 3\n")
    code, lines = _main(capsys, "--resume", str(tmp_path), "--config", str(tmp_path / "c.toml"))
    assert code == 2 and lines[0].startswith("hierfl: error: config: --resume reuses")


@pytest.mark.parametrize(
    ("args", "reason"),
    [
        (["link-down=0:1-4,1:1-4"], "the edges' uplinks are down"),  # every edge fails
        # diverged edges: the coded exchange refuses to send non-finite updates on the edge;
        # fp32 weights reach the cloud, which rejects the replies
        (["edge-lr=1e30"], "the trained weights are not finite"),
        (["edge-lr=1e30", "weight-codec=fp32"], "reply rejected: metrics['exit-loss'] = nan"),
    ],
    ids=["all-edges-fail", "all-edges-diverge", "all-replies-rejected"],
)
def test_a_systematic_failure_stops_the_run(args, reason, tmp_path):
    out = tmp_path / "run"
    proc = subprocess.run(
        [str(BIN / "hierfl"), "run", "--engine", "inprocess", *TINY, "--out", str(out)]
        + ["max-failed-rounds=2", *args],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert proc.returncode == cli.EXIT_RUN_FAILED, proc.stderr[-2000:]
    last = proc.stderr.strip().splitlines()[-1]
    assert last.startswith("hierfl: run failed: no edge delivered a usable reply in 2 rounds")
    assert reason in last and "Traceback" not in proc.stderr
    metrics = json.loads((out / "metrics.json").read_text())
    assert metrics["status"] == "failed" and reason in metrics["reason"]
    assert len(metrics["rounds"]) == 2  # stopped within the configured rounds
    # each distinct edge error is logged once, not once per edge per round
    log = (out / "log.txt").read_text()
    cause = "UplinkDown" if "link-down" in args[0] else reason
    assert sum(cause in line for line in log.splitlines() if "WARNING" in line) == 1
