"""Client sampling (``clients-per-round``): the draw, the config checks, the wiring into every
strategy, and an edge that sat out catching up online."""

from __future__ import annotations

import math

import pytest
import torch

from hierfl.api import edge_streams, prepare
from hierfl.app.inprocess import InProcessGrid
from hierfl.boundary import RoundRequest
from hierfl.cloud.sampling import sample_for_run, sample_round
from hierfl.errors import ConfigError
from hierfl.testing import make_grid, tiny_config
from hierfl.train.schedule import first_sight, first_untrained, round_data


@pytest.mark.parametrize(("n", "k"), [(10, 3), (7, 2), (6, 6), (5, 1), (100, 10), (9, 4)])
def test_each_round_asks_k_distinct_edges_and_every_edge_is_asked_in_every_cycle(n, k):
    edges = [f"node-{i}" for i in range(n)]
    cycle = math.ceil(n / k)
    for experience in range(2):
        rounds = [
            sample_round(edges, k, seed=3, experience=experience, round=r) for r in range(3 * cycle)
        ]
        for picked in rounds:
            assert len(picked) == len(set(picked)) == k
            assert picked == sorted(picked, key=edges.index)  # in the edges' order
        for start in range(0, 3 * cycle, cycle):
            asked = set().union(*map(set, rounds[start : start + cycle]))
            assert asked == set(edges)


def test_the_draw_is_seeded():
    edges = list(range(20))
    draw = [sample_round(edges, 5, seed=1, experience=0, round=r) for r in range(4)]
    assert draw == [sample_round(edges, 5, seed=1, experience=0, round=r) for r in range(4)]
    assert draw != [sample_round(edges, 5, seed=2, experience=0, round=r) for r in range(4)]
    assert draw != [sample_round(edges, 5, seed=1, experience=1, round=r) for r in range(4)]


def test_asking_none_or_more_than_there_are_is_an_error():
    with pytest.raises(ValueError, match="cannot ask 0 of 3"):
        sample_round([1, 2, 3], 0, seed=0, experience=0, round=0)
    with pytest.raises(ValueError, match="cannot ask 4 of 3"):
        sample_round([1, 2, 3], 4, seed=0, experience=0, round=0)


def test_config_refuses_more_per_round_than_edges_and_a_quorum_above_the_sample():
    with pytest.raises(ConfigError, match="clients-per-round.*more than clients=2"):
        tiny_config(clients=2, **{"clients-per-round": 3})
    with pytest.raises(ConfigError, match="min-replies.*clients-per-round=2"):
        tiny_config(clients=4, **{"clients-per-round": 2, "min-replies": 3})
    assert tiny_config(clients=4).round_clients == 4
    assert tiny_config(clients=4, **{"clients-per-round": 2}).round_clients == 2


class Recording(InProcessGrid):
    """Records which partition answered which (experience, round)."""

    asked: list[tuple[int, int, int]]

    def answer(self, message):
        cfg = message.content["config"]
        pid = self.nodes[message.metadata.dst_node_id].stream.partition_id
        self.asked = [*getattr(self, "asked", []), (int(cfg["experience"]), int(cfg["round"]), pid)]
        return super().answer(message)


@pytest.mark.parametrize("strategy", ["fedavg", "fedmedian"])
def test_a_sampled_run_asks_the_drawn_edges_each_round(digits_benchmark, tmp_path, strategy):
    config = tiny_config(clients=4, cl="naive", strategy=strategy, **{"clients-per-round": 2})
    grid = make_grid(config, digits_benchmark, tmp_path, Recording)
    result = prepare(config, grid=grid, benchmark=digits_benchmark).run()

    assert result.metrics["status"] == "completed"
    assert result.metrics["events"] == []
    for experience in range(2):
        for r in range(2):
            asked = sorted(p for e, rr, p in grid.asked if (e, rr) == (experience, r))
            drawn = sample_for_run(config, list(range(4)), RoundRequest(experience, r))
            assert asked == drawn
        # two rounds of two: every edge once per experience
        assert sorted(p for e, _, p in grid.asked if e == experience) == [0, 1, 2, 3]
    per_round = result.metrics["communication"]["per_round"]
    assert [r["uplink_messages"] for r in per_round] == [2, 2, 2, 2]


def test_an_edge_that_sat_out_catches_up_on_the_samples_that_arrived(digits_benchmark, tmp_path):
    config = tiny_config(
        clients=4, experiences=1, cl="naive", online=True, **{"clients-per-round": 2}
    )
    grid = make_grid(config, digits_benchmark, tmp_path, Recording)
    result = prepare(config, grid=grid, benchmark=digits_benchmark).run()

    assert result.metrics["status"] == "completed"
    assert result.metrics["events"] == []  # the catch-up passed the cloud's row bounds
    streams = edge_streams(config, digits_benchmark)
    for r, row in enumerate(result.metrics["rounds"]):
        asked = [p for e, rr, p in grid.asked if rr == r]
        # round 1's edges sat out round 0: they train both slices, round 0's edges one
        slices = [
            len(torch.tensor_split(torch.arange(len(streams[p].experiences[0])), 2)[s])
            for p in asked
            for s in range(r + 1)
        ]
        assert row["examples"] == sum(slices) * config.online_passes


def test_round_data_since_takes_every_slice_from_the_first_untrained(digits_benchmark):
    config = tiny_config(online=True, rounds=4)
    stream = edge_streams(config, digits_benchmark)[0]
    slices = [round_data(config, stream, RoundRequest(0, r))[1] for r in range(4)]
    caught_up = round_data(config, stream, RoundRequest(0, 3), since=1)[1]
    assert torch.equal(caught_up, torch.cat(slices[1:]))
    assert torch.equal(round_data(config, stream, RoundRequest(0, 2), since=2)[1], slices[2])


def test_first_untrained_and_first_sight_follow_the_cursor():
    config = tiny_config(rounds=4)
    cursor = {"experience": 0, "round": 1, "samples_seen": 10}
    assert first_untrained(cursor, RoundRequest(0, 3)) == 2
    assert first_untrained(cursor, RoundRequest(1, 2)) == 0  # a new experience
    assert first_untrained(None, RoundRequest(0, 3)) == 0
    assert first_sight(config, RoundRequest(0, 3), since=0)  # its first round of the experience
    assert not first_sight(config, RoundRequest(0, 3), since=2)
    assert first_sight(tiny_config(online=True), RoundRequest(0, 1), since=1)


class Kinds(InProcessGrid):
    """Records what each request says of the weights: changes (how many), a full copy, or
    none."""

    kinds: list[tuple[int, int, str]]

    def answer(self, message):
        cfg = message.content["config"]
        pid = self.nodes[message.metadata.dst_node_id].stream.partition_id
        kind = str(cfg["weights"])
        if kind == "delta":
            kind += f" x{len(message.content['arrays'])}"
        row = (int(cfg["round"]), pid, kind)
        self.kinds = [*getattr(self, "kinds", []), row]
        return super().answer(message)


def test_edges_of_one_round_get_each_their_own_weights_message(digits_benchmark, tmp_path):
    # Flower's strategies share one RecordDict among a round's messages; an edge back from
    # sitting out needs the two changes it missed while one asked last round needs one
    config = tiny_config(clients=4, experiences=1, rounds=4, cl="naive", **{"clients-per-round": 2})
    grid = make_grid(config, digits_benchmark, tmp_path, Kinds)
    result = prepare(config, grid=grid, benchmark=digits_benchmark).run()

    assert result.metrics["events"] == []  # no edge was out of step
    by_round = {}
    for r, _, kind in grid.kinds:
        by_round.setdefault(r, set()).add(kind)
    assert any(kinds == {"delta x1", "delta x2"} for kinds in by_round.values()), by_round


def test_experiences_too_short_for_every_edge_are_flagged():
    from hierfl.cloud.sampling import coverage_warning

    short = tiny_config(clients=100, rounds=5, **{"clients-per-round": 10})
    message = coverage_warning(short)
    assert message is not None
    assert "about 50 edges sit out each experience" in message and "rounds >= 10" in message
    assert (
        coverage_warning(tiny_config(clients=100, rounds=10, **{"clients-per-round": 10})) is None
    )
    assert coverage_warning(tiny_config(clients=100, rounds=1)) is None  # no sampling


@pytest.mark.parametrize(
    ("keys", "rounds"),
    [
        ({"clients": 100, "clients-per-round": 10}, 50),  # 5 visits of each edge an experience
        ({"clients": 25, "clients-per-round": 10}, 15),  # a cycle of ceil(25 / 10) = 3 rounds
        ({"clients": 100, "clients-per-round": 10, "online": True}, 10),  # one cycle at least
        ({"clients": 100, "clients-per-round": 10, "rounds": 5}, 5),  # set by the user: kept
        ({"clients": 100, "clients-per-round": 10, "rounds": 7}, 7),
        ({"clients": 100}, 5),  # no sampling
    ],
)
def test_default_rounds_grow_with_the_sampling_cycle(keys, rounds):
    from hierfl.resolve import resolve

    lines: list[str] = []
    config = resolve([keys], say=lines.append)
    assert config.rounds == rounds
    assert any(f"rounds={rounds}" in line for line in lines) == (rounds != keys.get("rounds", 5))
    assert resolve([config.to_flwr()]).rounds == rounds  # the ServerApp's copy: not grown again


def test_a_sampled_edge_sends_a_cycles_worth_of_entries_and_the_cloud_one_rounds():
    from hierfl.train.exchange import update_codec

    def densities(**keys):
        config = tiny_config(**keys)
        up, down = update_codec(config, 100_000), update_codec(config, 100_000, down=True)
        return up.density, down.density

    # 1,000 entries of 100,000: 1 %; asked once in ceil(10 / 2) = 5 rounds, an edge sends 5 %
    assert densities(clients=10) == (0.01, 0.01)
    assert densities(clients=10, **{"clients-per-round": 2}) == (pytest.approx(0.05), 0.01)
    assert densities(clients=10, **{"clients-per-round": 3}) == (pytest.approx(0.04), 0.01)
    # set by the user: both ways as set; never above every entry
    assert densities(clients=10, **{"clients-per-round": 2, "weight-density": 0.2}) == (0.2, 0.2)
    config = tiny_config(clients=100, **{"clients-per-round": 2})
    assert update_codec(config, 20_000).density == 1.0  # 5 % x 50
