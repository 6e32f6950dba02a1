"""In-process twin of the Flower federation: same requests, same edge code, no network.

Edges run one per ``poll`` call, so the orchestrator's cloud steps interleave with them as they
would with real replies. Used by fast tests and benchmarks; ``hierfl run`` uses Flower.
"""

from __future__ import annotations

import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import torch

from hierfl.codecs import decode, encode
from hierfl.config import HierConfig
from hierfl.data import ClientStream
from hierfl.edge import LABEL_BYTES
from hierfl.edge_node import RoundRequest, RoundResult, run_edge_round
from hierfl.errors import UplinkDown
from hierfl.link import Direction, LinkEmulator, LinkSpec, TrafficLog, slow_down
from hierfl.modes import MODES
from hierfl.orchestrator import EdgeFailure, EdgeState
from hierfl.split import run_split_round

CloudStep = Callable[[torch.Tensor, torch.Tensor], torch.Tensor]


def weighted_average(states: list[EdgeState], weights: list[float]) -> EdgeState:
    """FedAvg of state dicts; integer buffers are taken from the first state."""
    total = float(sum(weights))
    if total <= 0:
        raise ValueError("weights must sum to a positive number")
    out: EdgeState = {}
    for key, first in states[0].items():
        if first.is_floating_point():
            out[key] = sum(s[key] * (w / total) for s, w in zip(states, weights, strict=True))
        else:
            out[key] = first.clone()
    return out


def _state_bytes(state: EdgeState) -> int:
    return sum(t.numel() * t.element_size() for t in state.values())


class LocalFederation:
    """Edges as function calls in this process, each with its own node-local folder."""

    def __init__(
        self, config: HierConfig, streams: list[ClientStream], state_root: Path | None = None
    ) -> None:
        self.config = config
        self.streams = streams
        self._tmp = None if state_root else tempfile.TemporaryDirectory(prefix="hierfl-local-")
        self.state_root = Path(state_root or self._tmp.name)  # type: ignore[union-attr]
        self._queue: list[int] = []
        self._request: RoundRequest | None = None
        self._state: EdgeState = {}
        self._results: list[RoundResult] = []
        self.uplink_bytes = 0
        self.downlink_bytes = 0
        self._cloud_step: CloudStep | None = None
        # Every message is counted, and delayed by the emulated link when one is configured.
        # Edges run one after another here, so their link delays add up instead of overlapping.
        self.link = LinkEmulator(LinkSpec.from_config(config))
        self.traffic_log = TrafficLog()
        self._client = 0  # the edge whose messages are being carried
        self._cloud_side_s = 0.0  # split: time inside cloud steps, links included

    def _carry(self, direction: Direction, nbytes: int) -> None:
        """One message of ``nbytes`` payload between the cloud and edge ``self._client``."""
        seconds = self.link.transfer(nbytes, direction)
        self.traffic_log.record(self._client, direction, nbytes, link_s=seconds)
        if direction == "up":
            self.uplink_bytes += nbytes
        else:
            self.downlink_bytes += nbytes

    def _encode_chunk(self, result: RoundResult) -> int:
        """Pass the activations through the uplink codec; return the reply's payload bytes."""
        chunk = result.chunk
        if chunk.raw or not chunk.num_examples:
            return chunk.nbytes + _state_bytes(result.edge_state)
        encoded = encode(self.config.codec, chunk.activations)
        chunk.activations = decode(encoded)  # the cloud trains on what the codec delivers
        labels = chunk.labels.numel() * LABEL_BYTES
        return encoded.nbytes + labels + _state_bytes(result.edge_state)

    def bind_split(self, cloud_step: CloudStep) -> None:
        self._cloud_step = cloud_step

    def _counting(self, cloud_step: CloudStep) -> CloudStep:
        """Count split mode's per-batch traffic: activations and labels up, gradient down."""

        def step(a: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
            start = time.perf_counter()
            encoded = encode(self.config.codec, a)
            self._carry("up", encoded.nbytes + y.numel() * LABEL_BYTES)
            grad = cloud_step(decode(encoded), y)
            self._carry("down", grad.numel() * grad.element_size())
            self._cloud_side_s += time.perf_counter() - start
            return grad

        return step

    def wait_for_edges(self, count: int, timeout: float) -> int:
        return len(self.streams)

    def dispatch(self, request: RoundRequest, edge_state: EdgeState) -> int:
        self._request = request
        self._state = {k: v.clone() for k, v in edge_state.items()}
        self._queue = list(range(len(self.streams)))
        self._results = []
        self.traffic_log.begin_round(request.experience, request.round)
        return len(self._queue)

    def poll(self) -> list[RoundResult | EdgeFailure]:
        if not self._queue or self._request is None:
            return []
        i = self._queue.pop(0)
        stream = self.streams[i]
        node_dir = self.state_root / f"node-{stream.partition_id}"
        self._client = stream.partition_id
        self._carry("down", _state_bytes(self._state))
        if self.config.mode == "split":
            if self._cloud_step is None:
                raise RuntimeError("split mode needs bind_split() before dispatch()")
            cloud_step = self._counting(self._cloud_step)
            self._cloud_side_s, start = 0.0, time.perf_counter()
            result = run_split_round(self.config, self._request, self._state, stream, cloud_step)
            edge_s = time.perf_counter() - start - self._cloud_side_s
            result.chunk.compute_s = edge_s + slow_down(edge_s, self.config.edge_slowdown)
        else:
            try:
                result = run_edge_round(self.config, self._request, self._state, stream, node_dir)
            except UplinkDown as exc:  # the reply never leaves the edge (``link-down``)
                pid = stream.partition_id
                return [EdgeFailure(f"partition {pid}", f"UplinkDown: {exc}", pid)]
        self._results.append(result)
        if MODES[self.config.mode].sequential:  # the next edge continues from these weights
            self._state = result.edge_state
        self._carry("up", self._encode_chunk(result))
        return [result]

    def outstanding(self) -> int:
        return len(self._queue)

    def expire(self) -> list[EdgeFailure]:
        failures = [
            EdgeFailure(
                f"partition {self.streams[i].partition_id}",
                "no reply before reply-timeout",
                self.streams[i].partition_id,
            )
            for i in self._queue
        ]
        self._queue = []
        return failures

    def discard(self, result: RoundResult) -> None:
        self._results = [r for r in self._results if r is not result]

    def aggregate(self) -> EdgeState | None:
        usable = [r for r in self._results if r.chunk.trained > 0]
        if not usable:
            return None
        if MODES[self.config.mode].sequential:
            return usable[-1].edge_state
        return weighted_average(
            [r.edge_state for r in usable], [float(r.chunk.trained) for r in usable]
        )

    def traffic(self) -> tuple[int, int]:
        return self.uplink_bytes, self.downlink_bytes

    def communication(self) -> dict:
        """Per-round and per-client traffic for metrics.json (keys: partition ids)."""
        return self.traffic_log.summary()


__all__ = ["LocalFederation", "weighted_average"]
