"""Every uplink payload, as Flower carries it, in every mode: raw inputs go up only in cloud mode.

The in-process engine runs each mode; every message an edge sends (replies and split-learning
steps, as Flower messages) is kept and each array in it is searched for any of the edge's raw
training samples (exact float32 rows or their stored uint8 pixels, at every sample-aligned
offset). The same search must find them in ``cloud`` mode, which proves that it can.
"""

from __future__ import annotations

import numpy as np
import pytest

import hierfl
from hierfl.api import edge_streams
from hierfl.app.inprocess import InProcessGrid
from hierfl.config import HierConfig
from hierfl.data.streams import build_benchmark
from hierfl.testing import make_grid

pytestmark = pytest.mark.integration


class Inspecting(InProcessGrid):
    """Keeps every array of every message an edge sends."""

    payloads: list[np.ndarray]

    def answer(self, message):
        reply = super().answer(message)
        assert not reply.has_error(), reply.error.reason
        for record in reply.content.array_records.values():
            self.payloads += [array.numpy() for array in record.values()]
        return reply


def _raw_rows_found(payloads: list[np.ndarray], raw: np.ndarray) -> int:
    """Rows of ``raw`` found in the payloads, as float32 values or as stored uint8 pixels."""
    width = raw.shape[1]
    pixels = np.round(raw * 255).astype(np.uint8)
    known = {np.dtype(np.float32): {row.tobytes() for row in raw}}
    known[np.dtype(np.uint8)] = {row.tobytes() for row in pixels}
    found = 0
    for array in payloads:
        flat = np.ascontiguousarray(array, dtype=array.dtype).reshape(-1)
        if flat.dtype not in known or flat.size % width:
            continue
        found += sum(row.tobytes() in known[flat.dtype] for row in flat.reshape(-1, width))
    return found


@pytest.mark.parametrize("mode", ["hierarchical", "split", "edge", "cloud"])
def test_raw_inputs_leave_an_edge_only_in_cloud_mode(mode, tmp_path):
    config = HierConfig(
        mode=mode, clients=2, experiences=1, rounds=1, local_epochs=1, batch_size=64
    ).validate()
    bench = build_benchmark(config)
    grid = make_grid(config, bench, tmp_path, Inspecting)
    grid.payloads = []
    hierfl.run(config, grid=grid, benchmark=bench)
    streams = edge_streams(config, bench)
    raw = np.concatenate(
        [
            e.x.reshape(len(e.x), -1).numpy().astype(np.float32)
            for s in streams
            for e in s.experiences
        ]
    )
    assert grid.payloads, "no uplink message was inspected"
    found = _raw_rows_found(grid.payloads, raw)
    if mode == "cloud":
        assert found == len(raw)  # every training sample went up, once
    else:
        assert found == 0
