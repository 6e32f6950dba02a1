"""In-process twin of the Flower federation: same requests, same edge code, no network.

Edges run one per ``poll`` call, so the orchestrator's cloud steps interleave with them as they
would with real replies. Used by fast tests and benchmarks; ``hierfl run`` uses Flower.
"""

from __future__ import annotations

import tempfile
from collections.abc import Callable
from pathlib import Path

import torch

from hierfl.config import HierConfig
from hierfl.data import ClientStream
from hierfl.edge import LABEL_BYTES
from hierfl.edge_node import RoundRequest, RoundResult, run_edge_round
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

    def bind_split(self, cloud_step: CloudStep) -> None:
        self._cloud_step = cloud_step

    def _counting(self, cloud_step: CloudStep) -> CloudStep:
        """Count split mode's per-batch traffic: activations and labels up, gradient down."""

        def step(a: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
            self.uplink_bytes += a.numel() * a.element_size() + y.numel() * LABEL_BYTES
            grad = cloud_step(a, y)
            self.downlink_bytes += grad.numel() * grad.element_size()
            return grad

        return step

    def wait_for_edges(self, count: int, timeout: float) -> int:
        return len(self.streams)

    def dispatch(self, request: RoundRequest, edge_state: EdgeState) -> int:
        self._request = request
        self._state = {k: v.clone() for k, v in edge_state.items()}
        self._queue = list(range(len(self.streams)))
        self._results = []
        self.downlink_bytes += _state_bytes(edge_state) * len(self.streams)
        return len(self._queue)

    def poll(self) -> list[RoundResult | EdgeFailure]:
        if not self._queue or self._request is None:
            return []
        i = self._queue.pop(0)
        stream = self.streams[i]
        node_dir = self.state_root / f"node-{stream.partition_id}"
        if self.config.mode == "split":
            if self._cloud_step is None:
                raise RuntimeError("split mode needs bind_split() before dispatch()")
            cloud_step = self._counting(self._cloud_step)
            result = run_split_round(self.config, self._request, self._state, stream, cloud_step)
        else:
            result = run_edge_round(self.config, self._request, self._state, stream, node_dir)
        self._results.append(result)
        if MODES[self.config.mode].sequential:  # the next edge continues from these weights
            self._state = result.edge_state
        self.uplink_bytes += result.chunk.nbytes + _state_bytes(result.edge_state)
        return [result]

    def outstanding(self) -> int:
        return len(self._queue)

    def expire(self) -> list[EdgeFailure]:
        failures = [EdgeFailure(str(i), "timed out") for i in self._queue]
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


__all__ = ["LocalFederation", "weighted_average"]
