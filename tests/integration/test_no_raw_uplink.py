"""Every uplink payload, as Flower carries it, in every mode: raw inputs go up only in cloud mode.

The in-process engine runs each mode; every reply and every split-learning step is encoded
with the Flower message codecs of ``hierfl.app.protocol`` and each array in it is searched for
any of the edge's raw training samples (exact float32 rows, at every sample-aligned offset).
The same search must find them in ``cloud`` mode, which proves that it can.
"""

from __future__ import annotations

import numpy as np
import pytest
from flwr.app import ArrayRecord

from hierfl.app.protocol import encode_result, encode_split_step
from hierfl.config import HierConfig
from hierfl.local import LocalFederation
from hierfl.orchestrator import Orchestrator
from hierfl.split import SplitStep
from hierfl.streams import build_benchmark, partition_stream

pytestmark = pytest.mark.integration


class Inspecting(LocalFederation):
    """Keeps every array of every uplink message."""

    def __init__(self, *args, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        self.payloads: list[np.ndarray] = []

    def _keep(self, content) -> None:
        for record in content.values():
            if isinstance(record, ArrayRecord):
                self.payloads += [array.numpy() for array in record.values()]

    def poll(self):
        results = super().poll()
        for result in results:
            self._keep(encode_result(result))
        return results

    def bind_split(self, cloud_step) -> None:
        def step(a, y):
            self._keep(encode_split_step(SplitStep(0, 0, 0, 0, a, y)))
            return cloud_step(a, y)

        super().bind_split(step)


def _raw_rows_found(payloads: list[np.ndarray], raw: np.ndarray) -> int:
    width = raw.shape[1]
    known = {row.tobytes() for row in raw}
    found = 0
    for array in payloads:
        flat = np.ascontiguousarray(array, dtype=array.dtype).reshape(-1)
        if flat.dtype != np.float32 or flat.size % width:
            continue
        found += sum(row.tobytes() in known for row in flat.reshape(-1, width))
    return found


@pytest.mark.parametrize("mode", ["hierarchical", "split", "edge", "cloud"])
def test_raw_inputs_leave_an_edge_only_in_cloud_mode(mode, tmp_path):
    config = HierConfig(
        mode=mode, clients=2, experiences=1, rounds=1, local_epochs=1, batch_size=64
    ).validate()
    bench = build_benchmark(config)
    streams = [partition_stream(config, bench, i, 2) for i in range(2)]
    fed = Inspecting(config, streams, state_root=tmp_path)
    Orchestrator(config, fed, bench, poll_interval=0).run()
    raw = np.concatenate(
        [
            e.x.reshape(len(e.x), -1).numpy().astype(np.float32)
            for s in streams
            for e in s.experiences
        ]
    )
    assert fed.payloads, "no uplink message was inspected"
    found = _raw_rows_found(fed.payloads, raw)
    if mode == "cloud":
        assert found == len(raw)  # every training sample went up, once
    else:
        assert found == 0
