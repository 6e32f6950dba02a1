"""The simulation engine (Flower's Simulation Engine, Ray): a tiny federation of 4 virtual edges,
2 sampled per round, through ``hierfl run --engine simulation``, against the in-process engine
on the same seed."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
import torch

import hierfl
from hierfl.cloud.checkpoint import load_checkpoint
from hierfl.deploy.simulate import ray_missing

pytestmark = [
    pytest.mark.integration,
    pytest.mark.skipif(ray_missing(), reason="needs the simulation extra (Ray)"),
]
BIN = Path(sys.executable).parent
TINY_SAMPLED = {
    "clients": 4,
    "clients-per-round": 2,
    "experiences": 1,
    "rounds": 2,
    "local-epochs": 1,
    "cl": "naive",
    "weight-codec": "fp32",
}


@pytest.fixture(scope="module")
def simulated(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("sim") / "run"
    args = [f"{k}={v}" for k, v in TINY_SAMPLED.items()]
    proc = subprocess.run(
        [str(BIN / "hierfl"), "run", "--engine", "simulation", "--out", str(out), *args],
        capture_output=True,
        text=True,
        timeout=900,
    )
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    return out


def test_a_sampled_federation_completes_through_the_simulation_engine(simulated):
    metrics = json.loads((simulated / "metrics.json").read_text())
    assert metrics["status"] == "completed"
    assert metrics["engine"] == "simulation"
    assert metrics["events"] == []
    per_round = metrics["communication"]["per_round"]
    assert [r["uplink_messages"] for r in per_round] == [2, 2]  # two of four each round
    assert sorted(metrics["communication"]["per_client"]) == ["0", "1", "2", "3"]
    assert metrics["final"]["cloud_accuracy"] > 0.5  # it learned (chance: 0.1)
    # the edges kept their state in the run folder, not in a Ray actor
    assert list((simulated / "nodes-sim").rglob("edge_state-*.pt"))


def test_the_simulation_engine_draws_the_same_edges_and_weights_as_in_process(simulated, tmp_path):
    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # as in each Ray actor: float sums depend on the thread count
    try:
        hierfl.run(TINY_SAMPLED, out=tmp_path / "inprocess")
    finally:
        torch.set_num_threads(threads)
    here = load_checkpoint(tmp_path / "inprocess").edge_state
    there = load_checkpoint(simulated).edge_state
    assert here.keys() == there.keys()
    for key, value in here.items():
        torch.testing.assert_close(there[key].to(value.dtype), value, rtol=1e-4, atol=1e-5)
    ours = json.loads((tmp_path / "inprocess" / "metrics.json").read_text())
    theirs = json.loads((simulated / "metrics.json").read_text())
    assert ours["communication"]["per_client"] == theirs["communication"]["per_client"]
