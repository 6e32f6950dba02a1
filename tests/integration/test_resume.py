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

import hierfl
from hierfl.cloud.checkpoint import CHECKPOINT, load_checkpoint
from hierfl.config import HierConfig
from hierfl.errors import ConfigError

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
# checkpoints and the edges' node-local folders in the run folder.
DRIVER = """
import json, sys
import hierfl
hierfl.run(json.loads(sys.argv[1]), out=sys.argv[2])
"""


def _wait_for_checkpoint(path: Path, proc: subprocess.Popen, rounds_done: int) -> None:
    """Until the first experience is checkpointed and every edge has trained the next round:
    the resumed cloud then asks again for a round the edges have already trained."""
    deadline = time.monotonic() + 300
    ahead = "edge_state-00001-00000.pt"  # written by round 0 of experience 1
    while time.monotonic() < deadline:
        assert proc.poll() is None, "the server finished before it could be killed"
        edges_ahead = len(list(path.parent.glob(f"nodes/*/*/{ahead}"))) == CONFIG["clients"]
        if path.exists() and load_checkpoint(path.parent).next_round >= rounds_done:
            if edges_ahead:
                return
        time.sleep(0.05)
    raise AssertionError("no checkpoint after the first experience within 300 s")


def test_kill_9_then_resume_matches_an_uninterrupted_run(tmp_path):
    config = HierConfig.from_mapping(CONFIG).validate()
    straight = hierfl.run(config, out=tmp_path / "straight")

    run = tmp_path / "run"
    env = {**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parents[2])}
    proc = subprocess.Popen([sys.executable, "-c", DRIVER, json.dumps(CONFIG), str(run)], env=env)
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

    resumed = hierfl.run(config, resume=str(run), out=run)
    # every experience evaluated once, the finished ones exactly as before the kill
    assert resumed.accuracy.num_experiences() == config.experiences
    for after, on, value in saved.result["matrix"]["cloud"]:
        assert resumed.accuracy.row("cloud", int(after))[int(on)] == value
    assert len(resumed.metrics["rounds"]) == config.experiences * config.rounds
    # Exactly the uninterrupted run: the cloud's replay buffer, optimizer and RNG came back from
    # the checkpoint, and each edge redid the round in flight from its state before that round.
    for exit_name in ("cloud", "edge"):
        assert resumed.accuracy.rows(exit_name) == straight.accuracy.rows(exit_name), exit_name
    assert resumed.final == straight.final
    assert resumed.time["wall_s"] > saved.result["wall_s"]  # time before the kill is counted
    final = load_checkpoint(run)
    assert final.next_round == config.experiences * config.rounds


def test_checkpoint_every_n_rounds_and_a_corrupt_checkpoint(tmp_path):
    from hierfl.api import prepare

    config = HierConfig.from_mapping({**CONFIG, "experiences": 1, "rounds": 3}).validate()
    session = prepare(config, out=tmp_path / "run", checkpoint_every=2)
    seen: list[int] = []
    original = session.orchestrator._checkpoint

    def spy(next_round, *args):
        seen.append(next_round)
        return original(next_round, *args)

    session.orchestrator._checkpoint = spy
    session.run()
    assert seen == [2, 3]  # after 2 rounds, and at the experience's end
    assert load_checkpoint(tmp_path / "run").next_round == 3
    (tmp_path / "run" / CHECKPOINT).write_bytes(b"not a checkpoint")  # truncated or foreign
    with pytest.raises(ConfigError, match="cannot read"):
        load_checkpoint(tmp_path / "run")


def test_resume_refuses_a_different_schedule_and_a_missing_checkpoint(tmp_path):
    config = HierConfig.from_mapping({**CONFIG, "experiences": 1, "rounds": 1}).validate()
    hierfl.run(config, out=tmp_path / "run")
    with pytest.raises(ConfigError, match="rounds=1"):
        hierfl.run(config, resume=str(tmp_path / "run"), rounds=2, out=tmp_path / "run")
    with pytest.raises(ConfigError, match="no checkpoint.pt"):
        hierfl.run(config, resume=str(tmp_path))
    (tmp_path / "bad").mkdir()
    torch.save({"version": 99}, tmp_path / "bad" / CHECKPOINT)
    with pytest.raises(ConfigError, match="version 99"):
        load_checkpoint(tmp_path / "bad")
