"""benchmarks/hetero.py's runtime model: processor sharing and one row's prediction, by hand."""

from __future__ import annotations

import argparse

import pytest

from benchmarks.hetero import predict, shared_cpu
from hierfl.analysis.weights import message_bytes
from hierfl.config import HierConfig


@pytest.mark.parametrize(
    ("works", "cores", "expected"),
    [
        ([1.0, 1.0, 1.0, 1.0], 2, [2.0, 2.0, 2.0, 2.0]),  # four jobs, half a core each
        ([1.0, 3.0], 2, [1.0, 3.0]),  # a core each: no sharing
        ([2.0, 1.0, 1.0], 2, [2.5, 1.5, 1.5]),  # 2/3 of a core each until 1.5 s, then a core
        ([0.0, 1.0], 1, [0.0, 1.0]),
    ],
)
def test_shared_cpu_finishes_jobs_as_processor_sharing_does(works, cores, expected):
    assert shared_cpu(works, cores) == pytest.approx(expected)


def test_a_rows_prediction_is_its_slowest_edge_or_the_cloud():
    config = HierConfig.from_mapping({"batch-size": 10, "local-epochs": 1}).validate()
    steps = {
        "a": {"step_s": 0.1, "cloud_step_s": 0.2, "wire_bytes": 99, "params": 1000, "tensors": 2},
        "b": {"step_s": 0.3, "cloud_step_s": 0.0, "wire_bytes": 9, "params": 5000, "tensors": 4},
    }
    args = argparse.Namespace(slowdowns=[1.0, 4.0], bitrates=[8e6, 8e3], overhead_s=0.5, cores=2)
    got = predict(("b", "a"), config, steps, [100, 50], args)
    # edge 0 at b: 10 batches x 0.3 s; edge 1 at a: 5 x 0.1 s; the cloud: 5 x 0.2 s of a's
    # chunk (b's costs it nothing): three jobs on two cores, 2/3 of a core each until edge 1
    # is done at 0.75 s (0.5 s of work each), then a core each: the cloud ends at 1.25 s,
    # edge 0 at 0.75 + 2.5 = 3.25 s
    walls = [3.25, 0.75]
    weights = [
        message_bytes(1000 * 5, "topk", 0.0, "q8", 4),
        message_bytes(1000, "topk", 0.0, "q8", 2),
    ]
    up = [100 * (9 + 1) + weights[0], 50 * (99 + 1) + weights[1]]
    own = [
        walls[0] * 1.0 + (up[0] + weights[0]) * 8 / 8e6 + 0.5,
        walls[1] * 4.0 + (up[1] + weights[1]) * 8 / 8e3 + 0.5,
    ]
    assert got["cloud_s"] == pytest.approx(1.0)
    assert got["predicted_own_s"] == pytest.approx(own)
    assert got["predicted_s_per_round"] == pytest.approx(max(own))
