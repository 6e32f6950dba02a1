"""Continual-learning methods: ``naive``, ``edge-replay`` and ``cloud-replay``.

- ``edge-replay`` (experience replay, Rolnick et al. 2019, kept on the device): each edge keeps
  at most ``edge-replay.size`` of its own raw samples (they never leave the device) and mixes
  as many of them into every training batch as the batch holds new samples; their activations
  travel to the cloud with the rest, so both exits rehearse.
- ``cloud-replay`` (latent replay, Pellegrini et al. 2020): the cloud keeps at most
  ``cloud-replay.size`` activations (no raw data is stored anywhere) and mixes them into every
  cloud batch. Stored activations go stale while the edge keeps learning, so the method brings
  its edge-stability policy as defaults: ``freeze-edge-after=0`` and ``cloud-lr=0.0005``.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import torch

from hierfl.plugins import Batch, CloudHooks, ContinualMethod, EdgeHooks, StrategyParts, option
from strategies.buffer import Reservoir

EDGE_MODES = ("hierarchical", "edge")  # an edge that trains on its own loss
CLOUD_MODES = ("hierarchical", "split", "cloud")  # a cloud that trains
STABLE_EDGE = {"freeze-edge-after": 0, "cloud-lr": 0.0005}


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


@dataclass(frozen=True)
class EdgeReplaySettings:
    size: int = option(200, "raw samples each edge keeps for replay (they stay on it)", ge=1)


@dataclass(frozen=True)
class CloudReplaySettings:
    size: int = option(2000, "activations the cloud keeps for replay", ge=1)


naive = ContinualMethod(
    build=lambda config: StrategyParts(),
    summary="fine-tune on each new experience: the baseline that forgets",
)
edge_replay = ContinualMethod(
    build=lambda config, settings: StrategyParts(edge=EdgeReplay(settings.size, config.seed)),
    settings=EdgeReplaySettings,
    sides=("edge",),
    modes=EDGE_MODES,
    summary="each edge rehearses a reservoir of its own raw samples; both exits learn from it",
)
cloud_replay = ContinualMethod(
    build=lambda config, settings: StrategyParts(cloud=CloudReplay(settings.size, config.seed)),
    settings=CloudReplaySettings,
    sides=("cloud",),
    modes=CLOUD_MODES,
    # Where an edge learns, stored activations go stale: freeze its segment after the first
    # experience, and a lower cloud learning rate keeps the cloud from collapsing on the mix
    # of old and new activations (Adam at 0.003 did, at 0.0005 it did not).
    defaults={mode: STABLE_EDGE for mode in ("hierarchical", "split")},
    summary="the cloud rehearses stored activations (latent replay); no raw data is stored",
)
