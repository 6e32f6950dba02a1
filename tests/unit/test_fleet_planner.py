"""The fleet planner: a cut per device against brute force, a two-device fleet by hand, the
device flag and `hierfl plan --device`."""

from __future__ import annotations

import itertools
import random
from dataclasses import replace

import pytest
from test_planner import CUT_A, CUT_B, SETTINGS

from hierfl.analysis.fleet import Device, best_cuts, fleet_costs, plan_fleet, round_seconds
from hierfl.analysis.planner import plan_cuts
from hierfl.cli import main
from hierfl.config import HierConfig
from hierfl.errors import ConfigError

# The planner's two cuts (tests/unit/test_planner.py) with a slow cloud, 2e3 FLOP/s: per batch
# the cloud trains "a" in 3 * 1000 / 2e3 = 1.5 s, "b" in 3 * 500 / 2e3 = 0.75 s (10 batches:
# 15 s and 7.5 s a device). Weight exchange each round: "a" 0.259 s, "b" 0.26075 s.
#   fast device (slowdown 1): "b": edge 0.6, link 0.101, cloud 0.75 -> 10 * 0.75 + 0.6 + 0.101
#     + 0.26075 = 8.46175 s; "a": cloud-bound, 15 + 0.33 + 1.001 + 0.259 = 16.59 s.
#   slow device (slowdown 8): "a": edge 8 * 0.33 = 2.64 -> 26.4 + 1.001 + 1.5 + 0.259 = 29.16 s;
#     "b": edge 4.8 -> 48 + 0.101 + 0.75 + 0.26075 = 49.11175 s.
# Rounds: (b, a) = max(8.46175, 29.16, 7.5 + 15) = 29.16 s; one cut "a" for both = max(16.59,
# 29.16, 30) = 30 s (the cloud's); "b" for both: 49.11175 s.
SLOW_CLOUD = replace(SETTINGS, cloud_flops=2e3)
FLEET = [Device(1, 8000), Device(8, 8000)]


def test_two_devices_by_hand_get_their_own_cuts_and_beat_the_best_single_cut():
    fleet = plan_fleet([CUT_A, CUT_B], FLEET, SLOW_CLOUD)
    assert fleet.cuts == ("b", "a")
    assert fleet.own_s == pytest.approx((8.46175, 29.16))
    assert fleet.round_s == pytest.approx(29.16)
    assert fleet.cloud_s == pytest.approx(22.5)
    assert (fleet.single_cut, fleet.single_round_s) == ("a", pytest.approx(30.0))


def test_each_devices_own_time_is_the_single_device_plan_on_its_speed_and_link():
    devices = [Device(2, 4000, 0.01), Device(5, 16000)]
    own, cloud = fleet_costs([CUT_A, CUT_B], devices, SLOW_CLOUD)
    for device, times in zip(devices, own, strict=True):
        alone = replace(
            SLOW_CLOUD,
            bitrate_bps=device.bitrate_bps,
            latency_s=device.latency_s,
            edge_flops=SLOW_CLOUD.edge_flops / device.slowdown,
        )
        plan = plan_cuts([CUT_A, CUT_B], alone)
        assert times == {r.cut: r.epoch_s for r in plan.rows if r.mode == "hierarchical"}
    assert cloud == pytest.approx({"a": 15.0, "b": 7.5})


def brute_force(own, cloud):
    """Every combination of cuts tried: the least round time and one choice reaching it."""
    combos = itertools.product(*(sorted(options) for options in own))
    return min((round_seconds(c, own, cloud), tuple(c)) for c in combos)


@pytest.mark.parametrize("seed", range(200))
def test_the_search_matches_brute_force_over_every_combination(seed):
    rng = random.Random(seed)
    cuts = [f"c{k}" for k in range(rng.randint(1, 5))]
    cloud = {c: rng.choice([rng.uniform(0, 10), float(rng.randint(0, 3))]) for c in cuts}
    own = []
    for _ in range(rng.randint(1, 4)):
        fits = [c for c in cuts if rng.random() < 0.8] or [rng.choice(cuts)]
        own.append({c: rng.choice([rng.uniform(0, 20), float(rng.randint(0, 5))]) for c in fits})
    value, choice = best_cuts(own, cloud)
    expected, _ = brute_force(own, cloud)
    assert value == pytest.approx(expected)
    assert all(c in options for c, options in zip(choice, own, strict=True))
    slowest = max(own[i][c] for i, c in enumerate(choice))
    assert max(slowest, sum(cloud[c] for c in choice)) == pytest.approx(expected)


def test_a_device_no_cut_fits_is_refused_by_number():
    tight = replace(SLOW_CLOUD, edge_memory_bytes=100)  # below both cuts' estimates
    with pytest.raises(ConfigError, match="no cut fits device 1"):
        plan_fleet([CUT_A, CUT_B], FLEET, tight)
    with pytest.raises(ConfigError, match="at least one device"):
        plan_fleet([CUT_A, CUT_B], [], SLOW_CLOUD)


@pytest.mark.parametrize(
    ("text", "device"),
    [("4:1e6", Device(4, 1e6)), ("16:0.25e6:0.05", Device(16, 250_000, 0.05))],
)
def test_device_parses_slowdown_bitrate_and_latency(text, device):
    assert Device.parse(text) == device


@pytest.mark.parametrize(
    "text", ["4", "4:fast", "0:1e6", "4:-1", "4:1e6:-0.1", "4:1e6:0:1", "nan:1"]
)
def test_a_bad_device_names_the_flag(text):
    with pytest.raises(ConfigError, match="--device"):
        Device.parse(text)


def test_cli_plan_devices_prints_a_cut_per_device_and_the_best_single_cut(capsys):
    argv = ["plan", "--model", "small-cnn", "--input", "1x8x8", "--cloud-flops", "1e9"]
    devices = ["--device", "1:10e6", "--device", "4:1e6", "--device", "16:0.25e6"]
    assert main([*argv, *devices]) == 0
    out = capsys.readouterr().out
    lines = out.splitlines()
    assert len([line for line in lines if line.split()[:1] in (["1"], ["2"], ["3"])]) == 3
    assert "per-device cuts:" in out and "best single cut block" in out
    # the line to run the plan: a valid config that gives each edge its cut, speed and link
    run = next(line for line in lines if line.startswith("run it: hierfl run clients=3 "))
    per_edge = run.split('per-edge="')[1].rstrip('"')
    config = HierConfig.from_mapping({"clients": 3, "per-edge": per_edge}).validate()
    planned = [line.split()[3].partition("+")[0] for line in lines[1:4]]
    assert [config.for_edge(p).cut for p in range(3)] == planned
    assert [config.for_edge(p).edge_slowdown for p in range(3)] == [1, 4, 16]
    assert [config.for_edge(p).bitrate for p in range(3)] == [10e6, 1e6, 0.25e6]
    assert main([*argv, "--device", "4"]) == 2
    assert "--device" in capsys.readouterr().err
