"""One poisoning edge of four under the default settings, through the real federation in
process: each attack of ``hierfl.testing.poisoning`` costs the cloud and the honest edges at
most 2 points against the clean run (IID digits, seed 0, the ``benchmarks/poisoning.py``
config); and without the defences the strongest of them does not."""

from __future__ import annotations

import pytest

from hierfl.api import prepare
from hierfl.testing import tiny_config
from hierfl.testing.poisoning import ATTACKER, honest_edge_accuracies, poisoning_grid

BASE = {"clients": 4, "experiences": 2, "rounds": 3, "local_epochs": 2, "seed": 0}
OFF = {"centered_clip": 0.0, "label_screen": 0.0}
BOUND = 0.02


def _run(benchmark, attack, folder, **keys):
    config = tiny_config(**{**BASE, **keys})
    grid = poisoning_grid(config, benchmark, attack, folder)
    result = prepare(config, grid=grid, benchmark=benchmark, max_failed_rounds=0).run()
    edges = honest_edge_accuracies(result.clients, config.experiences - 1)
    events = [e for e in result.metrics["events"] if e.get("partition") == ATTACKER]
    return result.final["cloud_accuracy"], sum(edges) / len(edges), events


@pytest.fixture(scope="module")
def clean(digits_benchmark, tmp_path_factory):
    return _run(digits_benchmark, "none", tmp_path_factory.mktemp("clean"))


@pytest.mark.parametrize(
    ("attack", "answer"),
    [
        ("boosted-update", "update-clipped"),
        ("ipm", "update-clipped"),
        ("sign-flip", None),
        ("alie", None),
        ("label-flip", "edge-excluded"),
    ],
)
def test_one_poisoning_edge_of_four_costs_at_most_two_points(
    attack, answer, clean, digits_benchmark, tmp_path
):
    cloud, edge, events = _run(digits_benchmark, attack, tmp_path)
    assert cloud >= clean[0] - BOUND, (attack, cloud, clean[0])
    assert edge >= clean[1] - BOUND, (attack, edge, clean[1])
    if answer is not None:  # the defence acted on the attacker, and said so
        assert answer in {e["event"] for e in events}
    assert not [e for e in clean[2] if e["event"] in ("update-clipped", "edge-excluded")]


def test_without_the_defences_the_attack_wins(clean, digits_benchmark, tmp_path):
    """The same IPM edge with ``centered-clip=0 label-screen=0``: the honest edges' exits are
    ruined, so the test above measures the defence, not a weak attack."""
    _, edge, events = _run(digits_benchmark, "ipm", tmp_path, **OFF)
    assert edge < clean[1] - 0.3
    assert not events
