"""Systematic failures stop a run (status failed, the last checkpoint kept); a resumed run
continues the aggregation strategy's server-side state."""

from __future__ import annotations

import json

import numpy as np
import pytest
from flwr.app import Error, Message

from hierfl.api import prepare
from hierfl.app.inprocess import InProcessGrid
from hierfl.cloud.checkpoint import load_checkpoint
from hierfl.errors import RunFailed
from hierfl.testing import make_grid, tiny_config

CONFIG = tiny_config(strategy="fedadam", cl="naive", **{"max-failed-rounds": 1})


class FailsAfterExperience0(InProcessGrid):
    """Every edge raises from experience 1 on (as a diverged or misconfigured edge would)."""

    def answer(self, message):
        if int(message.content["config"]["experience"]) >= 1:
            reason = "partition 0: ValueError: Invalid learning rate: nan"
            return Message(Error(code=2, reason=reason), reply_to=message)
        return super().answer(message)


def _moments(session):
    strategy = session.orchestrator.federation.strategy
    return {"m_t": dict(strategy.m_t), "v_t": dict(strategy.v_t)}


def test_fedadam_resume_continues_the_server_moments(digits_benchmark, tmp_path):
    straight = prepare(CONFIG, benchmark=digits_benchmark, out=tmp_path / "straight")
    straight.run()

    run = tmp_path / "run"
    grid = make_grid(CONFIG, digits_benchmark, run / "nodes", FailsAfterExperience0)
    stopped = prepare(CONFIG, grid=grid, benchmark=digits_benchmark, out=run)
    with pytest.raises(RunFailed, match="Invalid learning rate") as failure:
        stopped.run()
    assert failure.value.result.status == "failed"
    metrics = json.loads((run / "metrics.json").read_text())
    assert metrics["status"] == "failed" and "max-failed-rounds=1" in metrics["reason"]
    assert load_checkpoint(run).next_round == CONFIG.rounds  # the last good checkpoint kept

    resumed = prepare(CONFIG, benchmark=digits_benchmark, out=run, resume=str(run))
    result = resumed.run()
    assert result.status == "completed"
    want, got = _moments(straight), _moments(resumed)
    for which in ("m_t", "v_t"):
        assert want[which].keys() == got[which].keys()
        for key, value in want[which].items():
            np.testing.assert_allclose(got[which][key], value, rtol=1e-6, atol=1e-12)


def test_strategy_state_keeps_numpy_scalars_of_0d_tensors():
    """FedAdam's moments of a BatchNorm's num_batches_tracked are numpy scalars, not arrays:
    a checkpoint once dropped every moment of a model with BatchNorm because of them."""
    from types import SimpleNamespace

    from hierfl.app.flower_internals import load_strategy_state, strategy_state

    strategy = SimpleNamespace(m_t={"w": np.ones(2), "n": np.float64(1.5)}, other="x")
    state = strategy_state(strategy)
    assert set(state) == {"m_t"}
    again = SimpleNamespace()
    load_strategy_state(again, state)
    assert again.m_t["n"] == 1.5 and np.array_equal(again.m_t["w"], np.ones(2))
