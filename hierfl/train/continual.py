"""Continual-learning plug-ins: edge and cloud hooks that default to no-ops.

A strategy contributes what it wants through return values; it never reaches into a trainer.
Edge hooks run in the edge's process and keep their state (e.g. a replay buffer of raw samples,
which never leaves the device) in the node-local folder between messages; cloud hooks run in
the cloud. Strategies are found by name in the ``hierfl.continual`` entry-point group and
combine with ``+`` (``edge-replay+cloud-replay``).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import torch
from torch import nn

from hierfl.models.base import EdgeOutput
from hierfl.registry import CONTINUAL

Batch = tuple[torch.Tensor, torch.Tensor]


class EdgeHooks:
    """Edge side of a continual-learning strategy."""

    def begin_round(self, edge: nn.Module, *, experience: int) -> None:
        """The edge module as received this round, before any local step."""

    def loss(
        self, x: torch.Tensor, out: EdgeOutput, y: torch.Tensor, *, experience: int
    ) -> torch.Tensor | float:
        """An extra term added to the edge's exit loss for this batch."""
        return 0.0

    def batches(self, batches: list[Batch], *, experience: int) -> list[Batch]:
        """The batches to train on this round (e.g. each mixed with replayed samples)."""
        return batches

    def observe(self, x: torch.Tensor, y: torch.Tensor, *, experience: int) -> None:
        """New samples of ``experience``, seen for the first time this round."""

    def state_dict(self) -> dict[str, Any]:
        return {}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        """Restore what ``state_dict`` returned in an earlier message."""


class CloudHooks:
    """Cloud side of a continual-learning strategy."""

    def batch(self, a: torch.Tensor, y: torch.Tensor, *, experience: int) -> Batch:
        """The batch the cloud trains on instead of ``(a, y)`` (e.g. with replayed activations)."""
        return a, y

    def observe(self, a: torch.Tensor, y: torch.Tensor, *, experience: int, round: int) -> None:
        """A chunk of activations from ``experience``'s round ``round`` arrived."""

    def end_experience(self, experience: int) -> None:
        """The last round of ``experience`` is trained; the next experience starts."""

    def state_dict(self) -> dict[str, Any]:
        """What a server checkpoint keeps (e.g. the replay buffer)."""
        return {}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        """Restore what ``state_dict`` returned before the server restarted."""


@dataclass
class Continual:
    """The strategies of a run, applied in the order they were named."""

    names: tuple[str, ...]
    edge: list[EdgeHooks] = field(default_factory=list)
    cloud: list[CloudHooks] = field(default_factory=list)

    def edge_batches(self, batches: list[Batch], *, experience: int) -> list[Batch]:
        for hooks in self.edge:
            batches = hooks.batches(batches, experience=experience)
        return batches

    def edge_begin_round(self, edge: nn.Module, *, experience: int) -> None:
        for hooks in self.edge:
            hooks.begin_round(edge, experience=experience)

    def edge_loss(
        self, x: torch.Tensor, out: EdgeOutput, y: torch.Tensor, *, experience: int
    ) -> torch.Tensor | float:
        total: torch.Tensor | float = 0.0
        for hooks in self.edge:
            total = total + hooks.loss(x, out, y, experience=experience)
        return total

    def edge_observe(self, x: torch.Tensor, y: torch.Tensor, *, experience: int) -> None:
        for hooks in self.edge:
            hooks.observe(x, y, experience=experience)

    def edge_state(self) -> dict[str, Any]:
        return {str(i): h.state_dict() for i, h in enumerate(self.edge)}

    def load_edge_state(self, state: dict[str, Any]) -> None:
        for i, hooks in enumerate(self.edge):
            if str(i) in state:
                hooks.load_state_dict(state[str(i)])

    def cloud_batch(self, a: torch.Tensor, y: torch.Tensor, *, experience: int) -> Batch:
        for hooks in self.cloud:
            a, y = hooks.batch(a, y, experience=experience)
        return a, y

    def cloud_observe(
        self, a: torch.Tensor, y: torch.Tensor, *, experience: int, round: int
    ) -> None:
        for hooks in self.cloud:
            hooks.observe(a, y, experience=experience, round=round)

    def end_experience(self, experience: int) -> None:
        for hooks in self.cloud:
            hooks.end_experience(experience)

    def cloud_state(self) -> dict[str, Any]:
        return {str(i): h.state_dict() for i, h in enumerate(self.cloud)}

    def load_cloud_state(self, state: dict[str, Any]) -> None:
        for i, hooks in enumerate(self.cloud):
            if str(i) in state:
                hooks.load_state_dict(state[str(i)])


def build_continual(config: Any) -> Continual:
    """Resolve ``config.cl`` (names joined by ``+``) through the registry, each method with
    its own settings (``NAME.SETTING`` keys)."""
    continual = Continual(config.methods)
    for name in config.methods:
        part = CONTINUAL.plugin(name).make(config, settings=config.settings(name))
        if part.edge is not None:
            continual.edge.append(part.edge)
        if part.cloud is not None:
            continual.cloud.append(part.cloud)
    return continual


@dataclass
class StrategyParts:
    """What a strategy factory returns: its edge and/or cloud hooks."""

    edge: EdgeHooks | None = None
    cloud: CloudHooks | None = None
