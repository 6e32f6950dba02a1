"""Flower messages: codec on the wire, payload bytes per node and round, reported link time."""

from __future__ import annotations

import itertools
from types import SimpleNamespace

import pytest
import torch
from flwr.app import ConfigRecord, RecordDict

from hierfl.app.grid_federation import GridFederation
from hierfl.app.protocol import (
    decode_result,
    encode_result,
    link_seconds,
    payload_bytes,
    stamp_link_seconds,
)
from hierfl.boundary import EdgeChunk, RoundRequest, RoundResult

NPY_HEADER = 128  # numpy's .npy header in front of every serialised array
STATE = {"w": torch.ones(4, 4)}  # 64 bytes of weights


def _result(partition: int, request: RoundRequest, n: int = 6) -> RoundResult:
    acts = torch.randn(n, 8, 3, 3)
    chunk = EdgeChunk(acts, torch.arange(n) % 3, 1, 0.5, 2, 0.01)
    return RoundResult(partition, request.experience, request.round, dict(STATE), chunk)


@pytest.mark.parametrize(
    ("codec", "value_bytes", "scales"), [("fp32", 4, 0), ("fp16", 2, 0), ("int8", 1, 8)]
)
def test_reply_payload_is_the_encoded_activations(codec, value_bytes, scales):
    result = _result(0, RoundRequest(0, 0))
    content = encode_result(result, codec)
    arrays = 6 * 8 * 9 * value_bytes + 6 + 64  # activations, uint8 labels, weights
    headers = NPY_HEADER * (3 + (1 if scales else 0))
    assert payload_bytes(content) == arrays + 4 * scales + headers
    decoded = decode_result(content)
    assert decoded.chunk.activations.dtype == torch.float32
    peak = result.chunk.activations.abs().amax(dim=(0, 2, 3)).max()
    tolerance = {"fp32": 0.0, "fp16": 1e-2, "int8": float(peak) / 127 / 2 + 1e-6}[codec]
    torch.testing.assert_close(
        decoded.chunk.activations, result.chunk.activations, rtol=0, atol=tolerance
    )
    torch.testing.assert_close(decoded.chunk.labels, result.chunk.labels)


def test_raw_inputs_are_never_quantised():
    chunk = EdgeChunk(torch.rand(4, 1, 2, 2), torch.arange(4), 1, 0.0, 0, 0.0, trained=0, raw=True)
    content = encode_result(RoundResult(0, 0, 0, {}, chunk), "int8")
    torch.testing.assert_close(decode_result(content).chunk.activations, chunk.activations)


def test_link_seconds_round_trip():
    content = RecordDict({"chunk": ConfigRecord({"round": 1})})
    assert link_seconds(content) == 0.0
    stamp_link_seconds(content, 1.25)
    assert link_seconds(content) == 1.25


class _Grid:
    """Node 21 is partition 0 and node 22 partition 1; each reply reports 0.5 s of link."""

    def __init__(self) -> None:
        self.ids = itertools.count()
        self.inbox: list = []

    def get_node_ids(self):
        return [21, 22]

    def push_messages(self, messages):
        ids = []
        for msg in messages:
            mid = f"m{next(self.ids)}"
            ids.append(mid)
            cfg = msg.content["config"]
            request = RoundRequest(int(cfg["experience"]), int(cfg["round"]))
            content = encode_result(_result(msg.metadata.dst_node_id - 21, request), "int8")
            stamp_link_seconds(content, 0.5)
            self.inbox.append(
                SimpleNamespace(
                    metadata=SimpleNamespace(reply_to_message_id=mid),
                    has_error=lambda: False,
                    content=content,
                )
            )
        return ids

    def pull_messages(self, ids):
        out, self.inbox = self.inbox, []
        return out


def test_federation_counts_payload_per_partition_and_round(fedavg_strategy):
    fed = GridFederation(_Grid(), fedavg_strategy, message_ttl=60)
    down = 64 + NPY_HEADER  # the weights in each request
    up = 6 * 8 * 9 + 6 + 4 * 8 + 64 + 4 * NPY_HEADER  # int8 acts, uint8 labels, scales, weights
    for r in range(2):
        fed.dispatch(RoundRequest(0, r), STATE)
        assert len(fed.poll()) == 2
    comm = fed.communication()
    assert [
        (row["round"], row["uplink_bytes"], row["downlink_bytes"]) for row in comm["per_round"]
    ] == [
        (0, 2 * up, 2 * down),
        (1, 2 * up, 2 * down),
    ]
    assert sorted(comm["per_client"]) == ["0", "1"]
    assert comm["per_client"]["1"]["uplink_bytes"] == 2 * up
    assert comm["emulated_link_s"] == pytest.approx(4 * 0.5)
    assert fed.traffic() == (4 * up, 4 * down)
