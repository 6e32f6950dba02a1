"""Latent replay with an edge that keeps learning: ``latent-replay``.

Cloud latent replay (``cloud-replay``, Pellegrini et al. 2020) stores activations at the cut and
rehearses them in the cloud. They go stale as soon as the edge segment moves: the cloud then
learns old classes from features the edge no longer produces, and with a learning edge it
collapses to the newest experience. ``cloud-replay`` therefore freezes the edge after the first
experience, and the edge exit stops learning.

``latent-replay`` keeps the edge learning and the stored activations valid by *feature
distillation on the edge*: at the first round of each experience the edge snapshots the model it
received (the one that produced the activations the cloud stored for the previous experience),
and every batch adds ``anchor * ||f(x) - f_teacher(x)||^2 / ||f_teacher(x)||^2`` at the cut.
The segment keeps producing the features the cloud has stored, while it (and the exit head)
still learn from the exit loss. No raw data is stored anywhere; the teacher lives in the
node-local folder. Settings: ``latent-replay.size`` (activations the cloud keeps),
``latent-replay.anchor``.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import torch
from torch import nn

from hierfl.plugins import ContinualMethod, EdgeHooks, EdgeOutput, StrategyParts, option
from strategies.continual import CloudReplay
from strategies.teacher import ExperienceTeacher


@dataclass(frozen=True)
class LatentReplaySettings:
    size: int = option(2000, "activations the cloud keeps for replay", ge=1)
    anchor: float = option(
        100.0, "weight of the feature distillation that keeps stored activations valid", ge=0
    )


class FeatureAnchor(EdgeHooks):
    """Keeps the activations at the cut close to those of the edge the experience began with."""

    def __init__(self, anchor: float) -> None:
        self.anchor = anchor
        self.teacher = ExperienceTeacher()
        self._teacher: nn.Module | None = None

    def begin_round(self, edge: nn.Module, *, experience: int) -> None:
        self._teacher = self.teacher.begin_round(edge, experience=experience)

    def loss(
        self, x: torch.Tensor, out: EdgeOutput, y: torch.Tensor, *, experience: int
    ) -> torch.Tensor | float:
        if self._teacher is None or not self.anchor:
            return 0.0
        with torch.no_grad():
            target = self._teacher(x).activations.float()
        drift = (out.activations.float() - target).pow(2).mean()
        return self.anchor * drift / target.pow(2).mean().clamp_min(1e-8)

    def state_dict(self) -> dict[str, Any]:
        return self.teacher.state_dict()

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.teacher.load_state_dict(state)


latent_replay = ContinualMethod(
    build=lambda config, settings: StrategyParts(
        edge=FeatureAnchor(settings.anchor), cloud=CloudReplay(settings.size, config.seed)
    ),
    settings=LatentReplaySettings,
    sides=("edge", "cloud"),
    modes=("hierarchical",),
    # the cloud's lower learning rate of cloud-replay; the edge keeps learning
    defaults={"hierarchical": {"cloud-lr": 0.0005}},
    summary="cloud latent replay with a learning edge, kept consistent by feature distillation",
)
