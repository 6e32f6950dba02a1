"""Checkpoint and resume: `kill -9` the server mid-run, resume, lose no finished experience."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch

from hierfl.checkpoint import CHECKPOINT, load_checkpoint
from hierfl.config import HierConfig
from hierfl.errors import ConfigError
from hierfl.local import LocalFederation
from hierfl.metrics import summarize
from hierfl.orchestrator import Orchestrator
from hierfl.streams import build_benchmark, partition_stream

pytestmark = pytest.mark.integration

CONFIG = {
    "clients": 2,
    "experiences": 3,
    "rounds": 2,
    "local-epochs": 1,
    "cl": "cloud-replay",
    "freeze-edge-after": 0,  # the edge-stability policy cloud replay needs
    "cloud-lr": 0.0005,
}

# The server, in a process of its own so that it can be killed: the in-process engine with
# node-local edge folders under NODES and checkpoints in RUN.
DRIVER = """
import json, sys
from pathlib import Path
from hierfl.config import HierConfig
from hierfl.local import LocalFederation
from hierfl.orchestrator import Orchestrator
from hierfl.streams import build_benchmark, partition_stream
config = HierConfig.from_mapping(json.loads(sys.argv[1])).validate()
bench = build_benchmark(config)
streams = [partition_stream(config, bench, i, config.clients) for i in range(config.clients)]
fed = LocalFederation(config, streams, state_root=Path(sys.argv[2]))
Orchestrator(config, fed, bench, poll_interval=0, checkpoint_dir=Path(sys.argv[3])).run()
"""


def _run(config: HierConfig, nodes: Path, run: Path | None):
    bench = build_benchmark(config)
    streams = [partition_stream(config, bench, i, config.clients) for i in range(config.clients)]
    fed = LocalFederation(config, streams, state_root=nodes)
    return Orchestrator(config, fed, bench, poll_interval=0, checkpoint_dir=run).run()


def _wait_for_checkpoint(path: Path, proc: subprocess.Popen, rounds_done: int) -> None:
    deadline = time.monotonic() + 300
    while time.monotonic() < deadline:
        assert proc.poll() is None, "the server finished before it could be killed"
        if path.exists() and load_checkpoint(path.parent).next_round >= rounds_done:
            return
        time.sleep(0.2)
    raise AssertionError("no checkpoint after the first experience within 300 s")


def test_kill_9_then_resume_matches_an_uninterrupted_run(tmp_path):
    config = HierConfig.from_mapping(CONFIG).validate()
    straight = _run(config, tmp_path / "nodes-a", None)

    run, nodes = tmp_path / "run", tmp_path / "nodes-b"
    env = {**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parents[2])}
    proc = subprocess.Popen(
        [sys.executable, "-c", DRIVER, json.dumps(CONFIG), str(nodes), str(run)], env=env
    )
    try:
        _wait_for_checkpoint(run / CHECKPOINT, proc, rounds_done=config.rounds)
        os.kill(proc.pid, signal.SIGKILL)
        assert proc.wait(timeout=30) == -signal.SIGKILL
    finally:
        if proc.poll() is None:
            proc.kill()
    saved = load_checkpoint(run)
    done = saved.next_round // config.rounds  # experiences finished before the kill
    assert 1 <= done < config.experiences
    assert saved.result["matrix"]["cloud"]  # metrics so far are in the checkpoint
    assert saved.cloud["continual"]["0"]["buffer"]["y"].numel() > 0  # and the replay buffer

    resumed = _run(HierConfig.from_mapping({"resume": str(run)}, base=config), nodes, run)
    # every experience evaluated once, the finished ones exactly as before the kill
    assert resumed.matrix.num_experiences() == config.experiences
    for after, on, value in saved.result["matrix"]["cloud"]:
        assert resumed.matrix.row("cloud", int(after))[int(on)] == value
    assert len(resumed.rounds) == config.experiences * config.rounds
    a, b = summarize(straight.matrix), summarize(resumed.matrix)
    print(f"uninterrupted {a}\nresumed       {b}")
    for key in ("cloud_accuracy", "edge_accuracy"):
        assert b[key] == pytest.approx(a[key], abs=0.08)
    assert resumed.wall_s > saved.result["wall_s"]  # time before the kill is counted
    final = load_checkpoint(run)
    assert final.next_round == config.experiences * config.rounds


def test_resume_refuses_a_different_schedule_and_a_missing_checkpoint(tmp_path):
    config = HierConfig.from_mapping({**CONFIG, "experiences": 1, "rounds": 1}).validate()
    _run(config, tmp_path / "nodes", tmp_path / "run")
    other = HierConfig.from_mapping({"resume": str(tmp_path / "run"), "rounds": 2}, base=config)
    with pytest.raises(ConfigError, match="rounds=1"):
        _run(other, tmp_path / "nodes", tmp_path / "run")
    with pytest.raises(ConfigError, match="no checkpoint.pt"):
        _run(HierConfig.from_mapping({"resume": str(tmp_path)}, base=config), tmp_path, None)
    (tmp_path / "bad").mkdir()
    torch.save({"version": 99}, tmp_path / "bad" / CHECKPOINT)
    with pytest.raises(ConfigError, match="version 99"):
        load_checkpoint(tmp_path / "bad")
