"""The fixed-overhead rule: share of round time lost per message, and the work that hides it."""

from __future__ import annotations

import pytest

from hierfl.analysis.overhead import min_work_per_message, overhead_share, round_overhead
from hierfl.errors import ConfigError


def test_share_by_hand():
    # 30 s of work and 10 s per message: 10 / 40 with one message, 20 / 50 with two.
    assert overhead_share(30.0, 10.0) == pytest.approx(0.25)
    assert overhead_share(30.0, 10.0, messages=2) == pytest.approx(0.4)
    assert overhead_share(0.0, 0.0) == 0.0


def test_min_work_meets_the_target_exactly():
    need = min_work_per_message(10.0, 0.1)
    assert need == pytest.approx(90.0)
    assert overhead_share(need, 10.0) == pytest.approx(0.1)
    assert overhead_share(need * 1.01, 10.0) < 0.1


@pytest.mark.parametrize("share", [0.0, 1.0, -0.5])
def test_bad_share(share):
    with pytest.raises(ConfigError, match="max_share"):
        min_work_per_message(1.0, share)


def test_bad_messages():
    with pytest.raises(ConfigError, match="messages"):
        overhead_share(1.0, 1.0, messages=0)


def _round(edge: float, latency: float) -> dict[str, float]:
    return {"edge_compute_s": edge, "reply_latency_s": latency}


def test_round_overhead_by_hand():
    # 2 edges side by side. Per edge and round: (edge + link) / 2 of work.
    #   round 1: (4 + 2) / 2 = 3 s of work, replies after 5 s -> 2 s of overhead
    #   round 2: (6 + 0) / 2 = 3 s, replies after 7 s -> 4 s
    #   round 3: (2 + 2) / 2 = 2 s, replies after 5 s -> 3 s
    # A first round with 20 s of start-up is left out.
    rounds = [_round(1, 20), _round(4, 5), _round(6, 7), _round(2, 5)]
    got = round_overhead(rounds, [0.0, 2.0, 0.0, 2.0], clients=2)
    assert got is not None
    assert got.overhead_s == pytest.approx(3.0)  # median of 2, 4, 3
    assert got.work_s == pytest.approx(3.0)  # median of 3, 3, 2
    assert got.share == pytest.approx(0.5)
    assert got.needed_work_s == pytest.approx(27.0)  # 9 x 3 s for 10 %


def test_advice_names_the_work_needed_and_the_local_epochs():
    got = round_overhead([_round(8, 9), _round(8, 9)], [0.0, 0.0], clients=1)
    assert got is not None  # 1 s of overhead on 8 s of work: 11 %, needs 9 s
    line = got.advice(local_epochs=5)
    assert line is not None
    assert "11%" in line and ">= 9s" in line
    assert line.endswith("local-epochs >= 6")  # ceil(5 x 9 / 8)


def test_no_advice_beyond_reason():
    """3 s of overhead on 2 s of work needs 27 s: 13.5 times the work, 68 epochs instead of 5.
    That is not a suggestion a user can take; the run is simply small for Flower."""
    got = round_overhead([_round(2, 5), _round(2, 5)], [0.0, 0.0], clients=1)
    assert got is not None and got.share == pytest.approx(0.6)
    assert got.advice(local_epochs=5) is None


def test_online_advice_asks_for_fewer_rounds_never_for_epochs():
    got = round_overhead([_round(8, 9), _round(8, 9)], [0.0, 0.0], clients=1)
    assert got is not None  # needs 9/8 of the work per round: 10 rounds -> 8
    line = got.advice(local_epochs=5, online=True, rounds=10)
    assert line is not None and "local-epochs" not in line
    assert "rounds <= 8" in line
    assert got.advice(local_epochs=5, online=True, rounds=1) is None  # nothing to merge


def test_no_advice_below_the_target_and_no_overhead_without_rounds():
    got = round_overhead([_round(30, 32)], [0.0], clients=1)
    assert got is not None and got.share == pytest.approx(2 / 32)
    assert got.advice(local_epochs=1) is None
    assert round_overhead([], [], clients=3) is None


def test_links_must_match_rounds():
    with pytest.raises(ConfigError, match="link_per_round"):
        round_overhead([_round(1, 2)], [], clients=1)


def test_edges_at_once_is_the_sample_on_devices_and_the_free_cpus_in_the_simulation():
    import os

    from hierfl.results.summary import edges_at_once
    from hierfl.testing import tiny_config

    config = tiny_config(clients=40, **{"clients-per-round": 8, "sim-cpus-per-edge": 1})
    assert edges_at_once(config, "flower") == 8
    cpus = os.cpu_count() or 1
    assert edges_at_once(config, "simulation") == max(1, min(8, cpus))
    wide = tiny_config(clients=40, **{"clients-per-round": 8, "sim-cpus-per-edge": 10 * cpus})
    assert edges_at_once(wide, "simulation") == 1
