"""One federation, two grids: for every registered aggregator, one round from the same seed
gives the same aggregated edge weights in process and through real Flower processes."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
import torch

import hierfl
from hierfl.cloud.checkpoint import load_checkpoint
from hierfl.config import HierConfig
from hierfl.deploy.launch import CONNECTION, loopback, write_app
from hierfl.registry import AGGREGATORS

pytestmark = [pytest.mark.integration, pytest.mark.slow]
BIN = Path(sys.executable).parent
ONE_ROUND = {"clients": 2, "experiences": 1, "rounds": 1, "local-epochs": 1, "cl": "naive"}


@pytest.fixture(scope="module")
def deployment(tmp_path_factory):
    """One SuperLink and two hierfl-client SuperNodes on loopback, for every run below."""
    root = tmp_path_factory.mktemp("deployment")
    with loopback(root / "flwr-home", 2, root, root) as (env, _):
        yield root, env


def _through_flower(deployment, name: str) -> dict[str, torch.Tensor]:
    root, env = deployment
    out = root / "runs" / name
    config = HierConfig.from_mapping({**ONE_ROUND, "strategy": name, "out": str(out)})
    write_app(root / "apps" / name, config.validate())
    proc = subprocess.run(
        [str(BIN / "flwr"), "run", str(root / "apps" / name), CONNECTION, "--stream"],
        env=env,
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert proc.returncode == 0, proc.stdout[-2000:] + proc.stderr[-2000:]
    return load_checkpoint(out).edge_state  # the aggregate after the round


@pytest.mark.parametrize("name", AGGREGATORS.names())
def test_every_aggregator_aggregates_alike_in_process_and_through_flower(
    name, deployment, tmp_path
):
    flower = _through_flower(deployment, name)
    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # as on each SuperNode: float sums depend on the thread count
    try:
        hierfl.run(ONE_ROUND, strategy=name, out=tmp_path / "inprocess")
    finally:
        torch.set_num_threads(threads)
    here = load_checkpoint(tmp_path / "inprocess").edge_state
    assert here.keys() == flower.keys()
    for key, value in here.items():
        torch.testing.assert_close(
            flower[key].to(value.dtype), value, rtol=1e-4, atol=1e-5, msg=f"{name}: {key}"
        )
