"""Planner: a two-cut example worked out by hand, memory limits, and the `hierfl plan` command."""

from __future__ import annotations

import math
import re

import pytest

from hierfl.analysis.plan_text import format_plan, recommendation
from hierfl.analysis.planner import CutNumbers, PlanSettings, edge_memory, plan_cuts
from hierfl.analysis.weights import break_even, message_bytes, round_bytes
from hierfl.cli import main
from hierfl.errors import ConfigError

# Edge 1e3 FLOP/s, cloud 1e6 FLOP/s, uplink = downlink = 8000 bit/s (1000 B/s), no latency;
# one sample per batch, ten batches, one edge, Adam (two optimizer values per weight).
SETTINGS = PlanSettings(
    bitrate_bps=8000,
    edge_flops=1e3,
    cloud_flops=1e6,
    batch_size=1,
    samples=10,
    clients=1,
    weight_density=0.001,
)

# Cut "a": shallow, cheap on the edge, 1000 B of activations (+ a 1-byte label).
#   edge = 3 * 100 / 1e3 + 3 * 10 / 1e3 = 0.33 s, link = 1001 / 1000 = 1.001 s,
#   cloud = 3 * 1000 / 1e6 = 0.003 s -> hierarchical 10 * 1.001 + 0.33 + 0.003 = 10.343 s.
#   split per batch: 0.1 + 1.001 + 0.003 + 1.0 (gradient down) + 0.2 = 2.304 -> 23.04 s.
#   memory: 4 * 10 params * (1 + 1 + 2) + 1 * (4 input + 1000 saved) = 1164 B.
CUT_A = CutNumbers(
    cut="a",
    edge_flops=100,
    exit_flops=10,
    cloud_flops=1000,
    activation_bytes=1000,
    input_bytes=4,
    edge_params=10,
    exit_params=0,
    edge_saved_bytes=1000,
)
# Cut "b": deeper, 100 B of activations.
#   edge = 3 * 200 / 1e3 = 0.6 s, link = 101 / 1000 = 0.101 s, cloud = 3 * 500 / 1e6 = 0.0015 s
#   -> hierarchical 10 * 0.6 + 0.101 + 0.0015 = 6.1025 s: faster than "a".
#   memory: 4 * 1000 * 4 + (4 + 100) = 16104 B.
CUT_B = CutNumbers(
    cut="b",
    edge_flops=200,
    exit_flops=0,
    cloud_flops=500,
    activation_bytes=100,
    input_bytes=4,
    edge_params=1000,
    exit_params=0,
    edge_saved_bytes=100,
)


def _times(plan, mode):
    return {r.cut: r.epoch_s for r in plan.rows if r.mode == mode}


# The weight exchange, one round (topk, density 0.001, q8 values), each way: one
# entry of the tensor, 1 B of value + a Rice-coded position + the 128-B array header.
#   "a": 1 of 10 weights, Rice b = 2: 4 bits -> 129.5 B; both ways 259 B = 0.259 s at 1000 B/s.
#   "b": 1 of 1000, Rice b = 9: 11 bits -> 130.375 B; both ways 260.75 B = 0.26075 s.
#   split relays fp32 weights: "a" 4 * 10 + 128 = 168 B each way, 0.336 s.
EXCHANGE_S = {"a": 0.259, "b": 0.26075}


def test_two_cuts_by_hand():
    plan = plan_cuts([CUT_A, CUT_B], SETTINGS)
    assert len(plan.rows) == 8  # two cuts x four modes
    assert _times(plan, "hierarchical") == pytest.approx(
        {"a": 10.343 + EXCHANGE_S["a"], "b": 6.1025 + EXCHANGE_S["b"]}
    )
    assert _times(plan, "split")["a"] == pytest.approx(23.04 + 0.336)
    assert _times(plan, "edge") == pytest.approx(
        {"a": 3.3 + EXCHANGE_S["a"], "b": 6.0 + EXCHANGE_S["b"]}
    )
    weights = {r.cut: r.weight_bytes_per_round for r in plan.rows if r.mode == "hierarchical"}
    assert weights == pytest.approx({"a": 259.0, "b": 260.75})
    # Cloud mode: (4 + 1) B up per batch = 0.005 s; cloud trains 0.0003 + 0.003 s per batch.
    assert _times(plan, "cloud")["a"] == pytest.approx(10 * 0.005 + 10 * 0.0033)
    memory = {r.cut: r.edge_memory_bytes for r in plan.rows if r.mode == "hierarchical"}
    assert memory == {"a": 1164, "b": 16104}
    assert plan.recommended == "b"


def test_faster_cut_that_does_not_fit_loses_to_one_that_does():
    plan = plan_cuts(
        [CUT_A, CUT_B], PlanSettings(**{**SETTINGS.__dict__, "edge_memory_bytes": 2000})
    )
    fits = {r.cut: r.fits for r in plan.rows if r.mode == "hierarchical"}
    assert fits == {"a": True, "b": False}
    assert plan.recommended == "a"


def test_no_cut_fits():
    plan = plan_cuts(
        [CUT_A, CUT_B], PlanSettings(**{**SETTINGS.__dict__, "edge_memory_bytes": 100})
    )
    assert plan.recommended is None
    assert recommendation(plan).startswith("recommended cut: none")


def test_memory_estimate_per_mode():
    cut = CutNumbers(
        "c", 1, 1, 1, 8, 3, edge_params=5, exit_params=2, edge_saved_bytes=40, exit_saved_bytes=6
    )
    # Hierarchical: 4 * 7 * (2 + 1) + 2 * (3 + 40 + 6); split drops the exit; cloud: the batch.
    assert edge_memory(cut, "hierarchical", 2, optimizer_slots=1) == 84 + 98
    assert edge_memory(cut, "split", 2, optimizer_slots=1) == 60 + 86
    assert edge_memory(cut, "cloud", 2, optimizer_slots=1) == 6


def test_ties_go_to_the_shallower_cut():
    twin = CutNumbers(**{**CUT_B.__dict__, "cut": "b2"})
    assert plan_cuts([CUT_B, twin], SETTINGS).recommended == "b"


def test_format_marks_the_recommended_cut():
    plan = plan_cuts([CUT_A, CUT_B], SETTINGS)
    lines = format_plan(plan.rows, plan.recommended).splitlines()
    assert len(lines) == 4  # header, rule, two cuts
    assert lines[3].startswith("b*") and lines[2].startswith("a ")


def test_bad_settings():
    with pytest.raises(ConfigError) as info:
        PlanSettings(bitrate_bps=0)
    assert info.value.key == "uplink_bps"
    with pytest.raises(ConfigError):
        plan_cuts([], SETTINGS)


def test_cli_plan_prints_table_and_recommendation(capsys):
    assert main(["plan", "--model", "small-cnn", "--input", "1x8x8", "--bitrate", "1e6"]) == 0
    out = capsys.readouterr().out
    assert "recommended cut: block" in out
    assert all(cut in out for cut in ("block1", "block2", "block3"))


@pytest.mark.parametrize(
    ("argv", "flag"),
    [
        (["--bitrate", "-1"], "--bitrate"),
        (["--bitrate", "fast"], "--bitrate"),
        (["--bitrate", "1e6", "--input", "8x8"], "--input"),
        (["--bitrate", "1e6", "--model", "nope"], "--model"),
        (["--bitrate", "1e6", "--batch-size", "2.5"], "--batch-size"),
    ],
)
def test_cli_plan_bad_values_exit_2_with_one_line(capsys, argv, flag):
    assert main(["plan", *argv]) == 2
    captured = capsys.readouterr()
    assert captured.out == ""
    lines = captured.err.strip().splitlines()
    assert len(lines) == 1 and flag in lines[0] and "Traceback" not in captured.err


def test_recommendation_says_when_cloud_only_is_faster_and_that_bottleneck_accuracy_is_unplanned():
    from dataclasses import replace

    # Inputs of 4 B: cloud-only sends 10 x 5 B at 1000 B/s (0.05 s) and computes 0.0039 s,
    # against hierarchical's 6.1025 s at "b".
    cheap_inputs = recommendation(plan_cuts([CUT_A, CUT_B], SETTINGS))
    assert "recommended cut: b " in cheap_inputs
    assert "cloud-only is predicted faster" in cheap_inputs
    assert "not predicted" not in cheap_inputs
    # Inputs of 100 kB: cloud-only's upload alone takes 10 x 100001 / 1000 = 1000 s.
    big = [replace(c, input_bytes=100_000) for c in (CUT_A, CUT_B)]
    assert "cloud-only" not in recommendation(plan_cuts(big, SETTINGS)).split(")")[-1]
    coded = replace(CUT_B, bottleneck=4, code_bits=8)
    line = recommendation(plan_cuts([coded], SETTINGS))
    assert line.startswith("recommended cut: b+4x8b ")
    assert "a bottleneck's accuracy is not predicted" in line


def test_weight_message_bytes_by_hand():
    # fp32: 4 B a parameter and one 128-B array header.
    assert message_bytes(10, "fp32") == 4 * 10 + 128
    # topk, 10 of 10,000 parameters in 2 tensors: 10 q8 values (1 B) and 10 positions at Rice
    # b = floor(log2(ln 2 * 1000)) = 9, 11 bits each; 9-B header a tensor, 128 B for the array.
    assert message_bytes(10_000, "topk", 0.001, "q8", tensors=2) == 10 * (1 + 11 / 8) + 18 + 128
    # density 1 sends every entry and no positions; sign values are 1 bit.
    assert message_bytes(80, "topk", 1.0, "sign") == 80 / 8 + 128
    # both ways, averaged over sync-every rounds
    assert round_bytes(10, "fp32", sync_every=4) == 2 * 168 / 4


def test_break_even_samples():
    # 1,000 B of weights a round; each sample saves 300 - 100 = 200 B against the input.
    assert break_even(1000, code_bytes=100, input_bytes=300) == 5
    assert break_even(1000, code_bytes=300, input_bytes=300) == math.inf


def test_plan_rows_carry_the_break_even_and_prefer_a_cut_that_can_break_even():
    from dataclasses import replace

    # Inputs of 2,000 B: cut "a" codes 1,001 B (saves 1,000 B a sample against 2,001 B),
    # "b" 101 B (saves 1,900 B); the weights as worked out above EXCHANGE_S.
    big = [replace(c, input_bytes=2000) for c in (CUT_A, CUT_B)]
    rows = {r.cut: r for r in plan_cuts(big, SETTINGS).rows if r.mode == "hierarchical"}
    assert rows["a"].break_even_samples == pytest.approx(259.0 / 1000)
    assert rows["b"].break_even_samples == pytest.approx(260.75 / 1900)
    # fp32 weights: "b" exchanges 1,000 parameters, 2 * (4,000 + 128) B a round.
    fp32 = plan_cuts(big, replace(SETTINGS, weight_codec="fp32"))
    row = next(r for r in fp32.rows if r.mode == "hierarchical" and r.cut == "b")
    assert row.weight_bytes_per_round == 2 * 4128
    # A cut whose codes are no smaller than the input never breaks even: not recommended
    # while another cut can.
    slow_small = replace(CUT_B, input_bytes=50, cut="c")
    plan = plan_cuts([replace(CUT_A, input_bytes=2000), slow_small], SETTINGS)
    assert plan.recommended == "a"


def test_cli_plan_resnet18_breaks_even_within_200_samples(capsys):
    """The issue's bar: the recommendation breaks even at <= 200 samples per edge per round."""
    assert main(["plan", "--model", "resnet18", "--input", "3x32x32", "--bitrate", "1e6"]) == 0
    out = capsys.readouterr().out
    found = re.search(r"breaks even with uploading the inputs at ([\d,]+) samples", out)
    assert found, out[-800:]
    assert int(found.group(1).replace(",", "")) <= 200
    assert "weights (topk" in out
