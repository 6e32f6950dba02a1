"""The runtime benchmark's pipeline bookkeeping and its account of time beyond the bound."""

from __future__ import annotations

import importlib

import pytest

runtime_pipeline = importlib.import_module("benchmarks.runtime_pipeline")
report = importlib.import_module("benchmarks.runtime_report")


def test_pipeline_passes_every_item_in_order_and_records_work_and_handoff():
    seen = []

    def cloud(message):
        seen.append(message)
        return None, 0.0

    m = runtime_pipeline.pipeline(
        list(range(5)), lambda i: (i * 10, 0.0), lambda msg: (msg + 1, 0.0), cloud
    )
    assert seen == [1, 11, 21, 31, 41]
    for stage in ("edge", "link", "cloud"):
        assert m.stages[stage] == [0.0] * 5  # the work each step reported
        # No-op steps: everything the thread spent on a batch is its side of the hand-offs.
        assert len(m.stages[f"{stage}_handoff"]) == 5
        assert all(s >= 0 for s in m.stages[f"{stage}_handoff"])
    assert m.wall_s >= 0


def test_where_the_time_goes_splits_the_excess_over_the_bound():
    row = {
        "measured_s": 0.0600,
        "bound_s": 0.0500,
        "fill_s": 0.0020,
        "predicted_handoff_s": 0.0036,  # (16 + 2) * 0.2 ms
        "handoff_per_batch_s": 0.0002,
        "measured_over_bound": 1.2,
        "batches": 16,
        "bottleneck": "edge",
    }
    # 60 = 50 + 2 + 3.6 + 4.4 ms.
    account = (
        "1.20x: 60.0 ms = bound 50.0 (16 x edge) + fill/drain 2.0 + hand-off 3.6 "
        "((16 + 2) x 0.20) + rest 4.4"
    )
    assert report.where_the_time_goes(row) == account
    # With what the run itself recorded: the edge thread's hand-off and other processes' load.
    row |= {"stage_means_s": {"edge_handoff": 0.00045}, "other_processes_cores": 0.75}
    assert report.where_the_time_goes(row) == (
        f"{account}; measured in the run: 0.45 ms per batch (other processes busy on 0.8 cores)"
    )


@pytest.mark.parametrize("ratio", [1.0, 1.21])
def test_bound_misses_explain_only_the_rows_over_1_2(ratio):
    base = {
        "workload": "w",
        "edge_slowdown": 1.0,
        "bitrate_bps": 1e8,
        "measured_s": 1.0,
        "predicted_over_measured": 1.0,
    }
    rows = [
        {**base, "mode": "split"},
        {**base, "mode": "cloud"},
        {
            **base,
            "mode": "hierarchical",
            "measured_s": 0.5,
            "measured_over_bound": ratio,
            "bound_s": 0.5 / ratio,
            "fill_s": 0.0,
            "predicted_handoff_s": 0.0,
            "handoff_per_batch_s": 0.0,
            "batches": 4,
            "bottleneck": "link",
        },
    ]
    checks = report.checks(rows)
    assert checks["hierarchical_within_1.2x_bound"] is (ratio <= 1.2)
    assert len(checks["bound_misses"]) == (ratio > 1.2)
    if ratio > 1.2:
        assert checks["bound_misses"][0].startswith("w k=1 100 Mbit/s: 1.21x: 500.0 ms")


def _coded(mode, measured, raw=None, k=1.0, bitrate=1e6, predicted=None):
    return {
        "workload": "w",
        "mode": mode,
        "raw_codec": raw,
        "edge_slowdown": k,
        "bitrate_bps": bitrate,
        "measured_s": measured,
        "predicted_over_measured": (predicted or measured) / measured,
    }


def test_the_bottleneck_check_asks_for_half_of_cloud_uint8_and_of_split():
    rows = [
        _coded("hierarchical", 2.0),
        _coded("split", 10.0),
        _coded("cloud", 4.0, "uint8"),
        _coded("cloud", 3.0, "png"),  # reported, not part of the check
        _coded("hierarchical", 9.0, k=10.0),  # a slower edge: reported as measured
        _coded("cloud", 4.0, "uint8", k=10.0),
        _coded("split", 10.0, k=10.0),
    ]
    got = report.checks_coded(rows)
    assert got["bottleneck_at_most_half_of_cloud_uint8_and_split_at_1mbps_k1"] is True
    assert got["bottleneck_ratios"]["w k=1 1 Mbit/s"] == {
        "hierarchical_over_cloud_uint8": 0.5,
        "hierarchical_over_split": 0.2,
    }
    rows[0] = _coded("hierarchical", 2.1, predicted=2.6)  # 2.1 / 4.0 > 0.5; model 24 % off
    got = report.checks_coded(rows)
    assert got["bottleneck_at_most_half_of_cloud_uint8_and_split_at_1mbps_k1"] is False
    assert got["bottleneck_prediction_within_15pct"] is False
