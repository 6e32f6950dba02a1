"""Edges at three depths (``per-edge``) through the Flower engine (a SuperLink and one
hierfl-client per edge on 127.0.0.1) and in process, with the default compressed weight
exchange (one per depth): both complete, learn, and end with the same fleet of edge weights."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
import torch

import hierfl
from hierfl.cloud.checkpoint import load_checkpoint

pytestmark = pytest.mark.integration
BIN = Path(sys.executable).parent
FLEET = {
    "clients": 3,
    "experiences": 1,
    "rounds": 2,
    "local-epochs": 2,
    "cl": "naive",
    "per-edge": "cut=block1,block3,block2;edge-slowdown=1,2,1",
}


@pytest.fixture(scope="module")
def flower_run(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("fleet") / "run"
    args = [f"{k}={v}" for k, v in FLEET.items()]
    proc = subprocess.run(
        [str(BIN / "hierfl"), "run", "--out", str(out), *args],
        capture_output=True,
        text=True,
        timeout=900,
    )
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    return out


def test_edges_at_three_depths_train_through_flower(flower_run):
    metrics = json.loads((flower_run / "metrics.json").read_text())
    assert metrics["status"] == "completed" and metrics["engine"] == "flower"
    assert metrics["events"] == []
    assert sorted(metrics["per_client"]) == ["0", "1", "2"]  # each edge at its own depth
    assert metrics["final"]["cloud_accuracy"] > 0.5  # chance: 0.2 among the seen classes
    assert metrics["final"]["edge_accuracy"] > 0.3
    fleet = load_checkpoint(flower_run).edge_state
    for cut in ("block1", "block2", "block3"):  # each depth's exit, averaged apart
        assert any(k.startswith(f"{cut}:exit.") for k in fleet)


def test_the_flower_engine_ends_with_the_in_process_fleet(flower_run, tmp_path):
    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # as each hierfl-client: float sums depend on the thread count
    try:
        hierfl.run(FLEET, out=tmp_path / "inprocess")
    finally:
        torch.set_num_threads(threads)
    here = load_checkpoint(tmp_path / "inprocess").edge_state
    there = load_checkpoint(flower_run).edge_state
    assert here.keys() == there.keys()
    for key, value in here.items():
        torch.testing.assert_close(there[key].to(value.dtype), value, rtol=1e-4, atol=1e-5)
