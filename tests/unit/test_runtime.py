"""Runtime model: totals of every mode checked against sums worked out by hand."""

from __future__ import annotations

from types import SimpleNamespace

import pytest

from hierfl.analysis.performance import (
    Link,
    StageCosts,
    costs_from_flops,
    costs_from_measurements,
    ideal_bound,
    predict,
)
from hierfl.errors import ConfigError, UnknownNameError

# Per batch: edge segment 1 + 2 s, exit 0.5 s, cloud segment 0.25 + 0.5 s, edge segment on
# the cloud 0.1 s. Link: 8000 bit/s up (1000 B/s), 4000 bit/s down (500 B/s), 0.1 s latency,
# so 1000 B of activations take 1.1 s up, the 1000 B gradient 2.1 s down, 500 B of raw input
# 0.6 s up.
COSTS = StageCosts(
    edge_fwd_s=1.0,
    edge_bwd_s=2.0,
    exit_s=0.5,
    cloud_fwd_s=0.25,
    cloud_bwd_s=0.5,
    cloud_edge_s=0.1,
    activation_bytes=1000,
    gradient_bytes=1000,
    raw_bytes=500,
)
LINK = Link(uplink_bps=8000, downlink_bps=4000, latency_s=0.1)


def test_transfer_is_latency_plus_bits_over_bitrate():
    link = Link(uplink_bps=1e6, downlink_bps=5e5, latency_s=0.02)
    assert link.transfer_s(125_000, "up") == pytest.approx(1.02)  # 1 Mbit at 1 Mbit/s
    assert link.transfer_s(125_000, "down") == pytest.approx(2.02)
    assert link.transfer_s(0, "up") == pytest.approx(0.02)


@pytest.mark.parametrize(
    ("kwargs", "key"),
    [
        ({"uplink_bps": 0, "downlink_bps": 1}, "uplink_bps"),
        ({"uplink_bps": 1, "downlink_bps": -5}, "downlink_bps"),
        ({"uplink_bps": 1, "downlink_bps": 1, "latency_s": -1}, "latency_s"),
    ],
)
def test_bad_links_name_the_field(kwargs, key):
    with pytest.raises(ConfigError) as info:
        Link(**kwargs)
    assert info.value.key == key


def test_bad_direction():
    with pytest.raises(ConfigError, match="'up' or 'down'"):
        LINK.transfer_s(10, "sideways")  # type: ignore[arg-type]


def test_hierarchical_is_slowest_stage_times_batches_plus_fill():
    # Stages per step: edge 1 + 2 + 0.5 = 3.5, link 1.1, cloud 0.75.
    p = predict("hierarchical", COSTS, LINK, batches=10)
    assert p.bottleneck == "edge"
    assert p.fill_s == pytest.approx(1.1 + 0.75)
    assert p.total_s == pytest.approx(10 * 3.5 + 1.1 + 0.75)
    assert (p.edge_s, p.link_s, p.cloud_s) == pytest.approx((35.0, 11.0, 7.5))


def test_hierarchical_cloud_serves_every_client_each_step():
    # 4 edges: the cloud's step is 4 * 0.75 = 3, still under the edge's 3.5.
    assert predict("hierarchical", COSTS, LINK, 10, clients=4).total_s == pytest.approx(
        10 * 3.5 + 1.1 + 3.0
    )
    # 8 edges: 6 s per step, the cloud is the bottleneck.
    p = predict("hierarchical", COSTS, LINK, 10, clients=8)
    assert p.bottleneck == "cloud"
    assert p.total_s == pytest.approx(10 * 6.0 + 3.5 + 1.1)


def test_labels_travel_with_the_activations():
    costs = StageCosts(**{**COSTS.__dict__, "label_bytes": 100, "edge_fwd_s": 0.0})
    # Link stage: 0.1 + 8 * 1100 / 8000 = 1.2 s; edge 2.5 s, cloud 0.75 s.
    p = predict("hierarchical", costs, LINK, 4)
    assert p.total_s == pytest.approx(4 * 2.5 + 1.2 + 0.75)


def test_split_adds_every_stage_for_every_batch_of_every_edge():
    # Per batch: 1 (edge fwd) + 1.1 (up) + 0.75 (cloud) + 2.1 (gradient down) + 2 (edge bwd).
    p = predict("split", COSTS, LINK, batches=10, clients=2)
    assert p.total_s == pytest.approx(20 * 6.95)
    assert (p.edge_s, p.link_s, p.cloud_s) == pytest.approx((60.0, 64.0, 15.0))
    assert p.fill_s == 0


def test_cloud_uploads_raw_batches_then_trains_everything():
    # Upload 10 * 0.6 s on each edge's own link; the cloud trains 20 batches of 0.1 + 0.75 s.
    p = predict("cloud", COSTS, LINK, batches=10, clients=2)
    assert (p.link_s, p.cloud_s, p.edge_s) == pytest.approx((6.0, 17.0, 0.0))
    assert p.total_s == pytest.approx(23.0)


def test_edge_only_trains_segment_and_exit_without_link():
    p = predict("edge", COSTS, LINK, batches=10, clients=3)
    assert p.total_s == pytest.approx(35.0)
    assert p.link_s == p.cloud_s == 0


def test_ideal_bound_is_below_the_pipeline_by_the_fill():
    for clients in (1, 4, 8):
        bound = ideal_bound(COSTS, LINK, 10, clients)
        p = predict("hierarchical", COSTS, LINK, 10, clients)
        assert p.total_s >= bound
        assert p.total_s - bound == pytest.approx(p.fill_s)
    assert ideal_bound(COSTS, LINK, 10) == pytest.approx(35.0)
    assert ideal_bound(COSTS, LINK, 10, clients=8) == pytest.approx(60.0)


# The same stages with 0.2 s to hand each batch from one stage to the next.
HANDED = StageCosts(**{**COSTS.__dict__, "handoff_s": 0.2})


def test_handoff_defaults_to_zero():
    assert COSTS.handoff_s == 0.0
    for mode in ("hierarchical", "split", "cloud", "edge"):
        assert predict(mode, COSTS, LINK, 10, clients=2).handoff_s == 0.0


def test_hierarchical_slowest_stage_pays_the_handoff_per_batch_the_others_once():
    # Per step: edge 3.5 + 0.2, link 1.1 + 0.2, cloud 0.75 + 0.2; the edge is still slowest.
    # 10 * 3.7 + 1.3 + 0.95 = 39.25 = 35 (work) + 1.85 (fill) + 2.4 (hand-off: 12 * 0.2).
    p = predict("hierarchical", HANDED, LINK, batches=10)
    assert p.bottleneck == "edge"
    assert p.total_s == pytest.approx(39.25)
    assert p.fill_s == pytest.approx(1.85)
    assert p.handoff_s == pytest.approx(2.4)
    assert (p.edge_s, p.link_s, p.cloud_s) == pytest.approx((35.0, 11.0, 7.5))  # work only


def test_cloud_hands_over_every_clients_batch():
    # 8 edges: cloud 8 * (0.75 + 0.2) = 7.6 per step, edge 3.7, link 1.3.
    # 10 * 7.6 + 3.7 + 1.3 = 81 = 60 (work) + 4.6 (fill) + 16.4 (10 * 1.6 + 0.2 + 0.2).
    p = predict("hierarchical", HANDED, LINK, 10, clients=8)
    assert p.bottleneck == "cloud"
    assert p.total_s == pytest.approx(81.0)
    assert p.handoff_s == pytest.approx(16.4)


def test_handoff_can_move_the_bottleneck_but_not_the_bound():
    # 4 edges: cloud work 3.0 < edge 3.5, but with hand-offs cloud 3.0 + 0.8 = 3.8 > edge 3.7.
    # 10 * 3.8 + 3.7 + 1.3 = 43; the bound stays 10 * 3.5 of work at the edge.
    p = predict("hierarchical", HANDED, LINK, 10, clients=4)
    assert p.bottleneck == "cloud"
    assert p.total_s == pytest.approx(43.0)
    assert ideal_bound(HANDED, LINK, 10, clients=4) == pytest.approx(35.0)


def test_ideal_bound_leaves_the_handoff_out():
    # One edge: the prediction exceeds the bound by the fill (1.85) and 12 hand-offs (2.4).
    assert ideal_bound(HANDED, LINK, 10) == ideal_bound(COSTS, LINK, 10) == pytest.approx(35.0)
    p = predict("hierarchical", HANDED, LINK, 10)
    assert p.total_s - ideal_bound(HANDED, LINK, 10) == pytest.approx(1.85 + 2.4)


def test_split_pays_two_handoffs_per_batch():
    # 20 batches of 6.95 s of work, each with activations up and a gradient down: + 2 * 0.2.
    p = predict("split", HANDED, LINK, batches=10, clients=2)
    assert p.total_s == pytest.approx(20 * 7.35)
    assert p.handoff_s == pytest.approx(8.0)


def test_cloud_pays_one_handoff_per_raw_batch_and_edge_mode_none():
    # Raw uploads 10 * 0.6 (edges side by side), 10 hand-offs of 0.2, cloud 20 * 0.85.
    assert predict("cloud", HANDED, LINK, 10, clients=2).total_s == pytest.approx(25.0)
    assert predict("edge", HANDED, LINK, 10).total_s == pytest.approx(35.0)


def test_hierarchical_beats_split_when_the_link_dominates():
    slow = Link(uplink_bps=800, downlink_bps=800)  # 10 s per 1000 B either way
    hier = predict("hierarchical", COSTS, slow, 50).total_s
    split = predict("split", COSTS, slow, 50).total_s
    # Hierarchical: 50 * 10 + 3.5 + 0.75; split: 50 * (3 + 10 + 0.75 + 10).
    assert hier == pytest.approx(504.25)
    assert split == pytest.approx(1187.5)
    assert hier < split


def test_unknown_mode_and_bad_counts():
    with pytest.raises(UnknownNameError, match="hierarchical"):
        predict("federated", COSTS, LINK, 1)
    with pytest.raises(ConfigError) as info:
        predict("split", COSTS, LINK, 0)
    assert info.value.key == "batches"
    with pytest.raises(ConfigError) as info:
        ideal_bound(COSTS, LINK, 1, clients=0)
    assert info.value.key == "clients"


@pytest.mark.parametrize("key", ["exit_s", "handoff_s"])
def test_negative_costs_are_rejected(key):
    with pytest.raises(ConfigError) as info:
        StageCosts(**{**COSTS.__dict__, key: -1.0})
    assert info.value.key == key


def test_costs_from_flops():
    cut = SimpleNamespace(
        edge_flops=1e6, exit_flops=2.5e5, cloud_flops=3e6, activation_bytes=1000, input_bytes=100
    )
    c = costs_from_flops(cut, 4, edge_flops_per_s=1e8, cloud_flops_per_s=1e9)
    assert c.edge_fwd_s == pytest.approx(0.04)  # 4 * 1e6 / 1e8
    assert c.edge_bwd_s == pytest.approx(0.08)  # twice the forward
    assert c.exit_s == pytest.approx(0.03)  # 3 * 4 * 2.5e5 / 1e8
    assert c.cloud_fwd_s == pytest.approx(0.012)
    assert c.cloud_bwd_s == pytest.approx(0.024)
    assert c.cloud_edge_s == pytest.approx(0.012)  # 3 * 4 * 1e6 / 1e9
    assert (c.activation_bytes, c.gradient_bytes, c.raw_bytes, c.label_bytes) == (
        4000,
        4000,
        400,
        4,
    )
    quarter = costs_from_flops(cut, 4, 1e8, 1e9, activation_scale=0.25)
    assert quarter.activation_bytes == quarter.gradient_bytes == 1000


def test_costs_from_flops_rejects_bad_rates():
    cut = SimpleNamespace(
        edge_flops=1, exit_flops=0, cloud_flops=1, activation_bytes=1, input_bytes=1
    )
    with pytest.raises(ConfigError) as info:
        costs_from_flops(cut, 1, 0, 1)
    assert info.value.key == "edge_flops"
    with pytest.raises(ConfigError):
        costs_from_flops(cut, 0, 1, 1)


MEASURED = {
    "edge_fwd_s": 1.0,
    "edge_bwd_s": 2.0,
    "exit_s": 0.5,
    "cloud_fwd_s": 0.25,
    "cloud_bwd_s": 0.5,
    "cloud_edge_s": 0.1,
}


def test_costs_from_measurements():
    c = costs_from_measurements(MEASURED, activation_bytes=1000, raw_bytes=500)
    assert c == COSTS  # the gradient defaults to the activations' size
    c = costs_from_measurements(MEASURED, activation_bytes=10, raw_bytes=5, gradient_bytes=20)
    assert c.gradient_bytes == 20


def test_costs_from_measurements_names_missing_and_unknown_keys():
    partial = {k: v for k, v in MEASURED.items() if k != "cloud_edge_s"}
    with pytest.raises(ConfigError, match="cloud_edge_s"):
        costs_from_measurements(partial, activation_bytes=1, raw_bytes=1)
    with pytest.raises(ConfigError, match="edge_s_typo"):
        costs_from_measurements({**MEASURED, "edge_s_typo": 1.0}, activation_bytes=1, raw_bytes=1)
