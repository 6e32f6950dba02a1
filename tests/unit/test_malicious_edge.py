"""One malicious edge of three, through the real federation: every malformed or hostile reply
of the security review is refused, the run goes on, the edge is named, and neither the cloud
nor the aggregated edge weights differ from a run in which that edge simply failed."""

from __future__ import annotations

import pytest
import torch

from hierfl.api import prepare
from hierfl.testing import make_grid, tiny_config
from hierfl.testing.attacks import ATTACKS, CODED, MaliciousGrid

ATTACKER = 0  # partition id of the malicious edge
# ATTACKS target fp32 weights and activations; CODED the default coded update
FP32 = {"weight-codec": "fp32", "bottleneck": 0}


def _run(attacks, benchmark, tmp_path, coded=False, **overrides):
    options = overrides if coded else {**FP32, **overrides}
    config = tiny_config(clients=3, experiences=1, local_epochs=1, **options)
    grid = make_grid(config, benchmark, tmp_path, MaliciousGrid)
    table = {**ATTACKS, **CODED}
    grid.attacker, grid.attacks = ATTACKER, [table[a] if a else None for a in attacks]
    session = prepare(config, grid=grid, benchmark=benchmark, max_failed_rounds=0)
    result = session.run()
    model = session.orchestrator.model
    return result, model.cloud.state_dict(), model.edge.state_dict()


def _assert_refused_and_harmless(attacked, reference, attacks):
    (result, cloud, edge), (ref_result, ref_cloud, ref_edge) = attacked, reference
    assert result.metrics["status"] == "completed"
    events = [(e["event"], e["partition"], e["round"]) for e in result.metrics["events"]]
    expected = [("reply-rejected", ATTACKER, r) for r in range(len(attacks))]
    missed = [a for a, ev in zip(attacks, expected, strict=True) if ev not in events]
    assert not missed, f"accepted: {missed}"
    assert events == expected
    assert result.metrics["rejected_replies"] == len(attacks)
    for k, v in ref_cloud.items():
        assert torch.equal(cloud[k], v), k  # bit-identical: no reply reached the cloud
    for k, v in ref_edge.items():
        assert torch.equal(edge[k], v), k  # nor the aggregate
    assert result.accuracy.row("cloud", 0) == ref_result.accuracy.row("cloud", 0)


def test_every_hostile_reply_is_refused_and_changes_nothing(digits_benchmark, tmp_path):
    """Online, one round per attack: the attacker's reply of round r carries attack r."""
    attacks = list(ATTACKS)
    options = {"online": True, "rounds": len(attacks)}
    reference = _run([None], digits_benchmark, tmp_path / "ref", **options)
    attacked = _run(attacks, digits_benchmark, tmp_path / "attacked", **options)
    _assert_refused_and_harmless(attacked, reference, attacks)


def test_every_hostile_coded_update_is_refused_and_changes_nothing(digits_benchmark, tmp_path):
    """The same with the default coded exchange: malformed, lying or oversized updates."""
    attacks = list(CODED)
    options = {"online": True, "rounds": len(attacks)}
    reference = _run([None], digits_benchmark, tmp_path / "ref", coded=True, **options)
    attacked = _run(attacks, digits_benchmark, tmp_path / "attacked", coded=True, **options)
    _assert_refused_and_harmless(attacked, reference, attacks)


@pytest.fixture(scope="module")
def reference(digits_benchmark, tmp_path_factory):
    return _run([None], digits_benchmark, tmp_path_factory.mktemp("reference"), rounds=2)


@pytest.mark.slow
@pytest.mark.parametrize("attack", ATTACKS)
def test_a_hostile_reply_is_refused_every_round(attack, reference, digits_benchmark, tmp_path):
    attacked = _run([attack], digits_benchmark, tmp_path, rounds=2)
    _assert_refused_and_harmless(attacked, reference, [attack] * 2)
