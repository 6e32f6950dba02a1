"""Continual-learning strategies: ``naive``, ``edge-replay`` and ``cloud-replay``.

- ``edge-replay``: each edge keeps at most ``edge-replay-size`` of its own raw samples (they
  never leave the device) and mixes as many of them into every training batch as the batch
  holds new samples; their activations travel to the cloud with the rest, so both exits
  rehearse.
- ``cloud-replay``: the cloud keeps at most ``cloud-replay-size`` activations (no raw data is
  stored anywhere) and mixes them into every cloud batch. Stored activations go stale while
  the edge keeps learning; pair it with ``freeze-edge-after`` (the edge-stability policy).
"""

from __future__ import annotations

from typing import Any

import torch

from hierfl.continual import Batch, CloudHooks, EdgeHooks, StrategyParts
from strategies.buffer import Reservoir


def naive(config: Any) -> StrategyParts:
    """Plain fine-tuning on each new experience: the baseline that forgets."""
    return StrategyParts()


class EdgeReplay(EdgeHooks):
    def __init__(self, capacity: int, seed: int) -> None:
        self.buffer = Reservoir(capacity, seed)

    def batches(self, batches: list[Batch], *, experience: int) -> list[Batch]:
        out = []
        for x, y in batches:
            old = self.buffer.sample(len(y), before=experience)
            out.append((x, y) if old is None else (torch.cat([x, old[0]]), torch.cat([y, old[1]])))
        return out

    def observe(self, x: torch.Tensor, y: torch.Tensor, *, experience: int) -> None:
        self.buffer.add(x, y, experience)

    def state_dict(self) -> dict[str, Any]:
        return self.buffer.state_dict()

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.buffer.load_state_dict(state)


class CloudReplay(CloudHooks):
    """Keeps, for each experience, activations from its last round only.

    Those were computed by the edge as it was when the experience ended (and, with
    ``freeze-edge-after``, as it stays); activations from earlier rounds came from an edge that
    has moved on since, and replaying them teaches the cloud features that no longer exist.
    """

    def __init__(self, capacity: int, seed: int) -> None:
        self.buffer = Reservoir(capacity, seed)
        self.capacity, self.seed = capacity, seed
        self.pending = Reservoir(capacity, seed + 1)
        self.pending_round = (-1, -1)

    def batch(self, a: torch.Tensor, y: torch.Tensor, *, experience: int) -> Batch:
        old = self.buffer.sample(len(y), before=experience)
        if old is None:
            return a, y
        return torch.cat([a, old[0].to(a.device)]), torch.cat([y, old[1].to(y.device)])

    def observe(self, a: torch.Tensor, y: torch.Tensor, *, experience: int, round: int) -> None:
        if (experience, round) != self.pending_round:  # a newer round supersedes the last
            self.pending = Reservoir(self.capacity, self.seed + 1 + experience * 1000 + round)
            self.pending_round = (experience, round)
        self.pending.add(a, y, experience)

    def end_experience(self, experience: int) -> None:
        if len(self.pending) and self.pending.x is not None:
            self.buffer.add(self.pending.x, self.pending.y, experience)
        self.pending_round = (-1, -1)

    def state_dict(self) -> dict[str, Any]:
        return {
            "buffer": self.buffer.state_dict(),
            "pending": self.pending.state_dict(),
            "pending_round": list(self.pending_round),
        }

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.buffer.load_state_dict(state["buffer"])
        self.pending.load_state_dict(state["pending"])
        experience, round = state["pending_round"]
        self.pending_round = (int(experience), int(round))


def edge_replay(config: Any) -> StrategyParts:
    return StrategyParts(edge=EdgeReplay(config.edge_replay_size, config.seed))


def cloud_replay(config: Any) -> StrategyParts:
    return StrategyParts(cloud=CloudReplay(config.cloud_replay_size, config.seed))
