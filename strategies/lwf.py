"""Learning without Forgetting on the edge exit: distil the previous experience's exit.

Li and Hoiem, "Learning without Forgetting" (TPAMI 2017). At the first round of each new
experience the edge snapshots the model it received (the aggregate after the previous
experience) as a teacher; every batch then adds ``alpha * T^2 * KL(teacher || student)`` over
the classes of earlier experiences, with temperature ``T`` (``lwf.alpha``,
``lwf.temperature``). No data is stored; the teacher lives in the node-local folder.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from hierfl.plugins import ContinualMethod, EdgeHooks, EdgeOutput, StrategyParts, option
from strategies.continual import EDGE_MODES
from strategies.teacher import ExperienceTeacher


@dataclass(frozen=True)
class LwFSettings:
    alpha: float = option(1.0, "weight of the distillation term", ge=0)
    temperature: float = option(2.0, "softmax temperature of the distillation", gt=0)


class LwF(EdgeHooks):
    def __init__(self, alpha: float = 1.0, temperature: float = 2.0) -> None:
        self.alpha, self.temperature = alpha, temperature
        self.teacher = ExperienceTeacher()
        self.classes: dict[int, list[int]] = {}  # experience -> classes seen in it
        self._teacher: nn.Module | None = None

    def observe(self, x: torch.Tensor, y: torch.Tensor, *, experience: int) -> None:
        seen = set(self.classes.get(experience, [])) | set(y.unique().tolist())
        self.classes[experience] = sorted(seen)

    def begin_round(self, edge: nn.Module, *, experience: int) -> None:
        self._teacher = self.teacher.begin_round(edge, experience=experience)

    def loss(
        self, x: torch.Tensor, out: EdgeOutput, y: torch.Tensor, *, experience: int
    ) -> torch.Tensor | float:
        old = sorted({c for k, cs in self.classes.items() if k < experience for c in cs})
        if self._teacher is None or not old:
            return 0.0
        with torch.no_grad():
            target = self._teacher(x).exit_logits[:, old] / self.temperature
        student = out.exit_logits[:, old] / self.temperature
        kl = F.kl_div(
            F.log_softmax(student, dim=1),
            F.log_softmax(target, dim=1),
            reduction="batchmean",
            log_target=True,
        )
        return self.alpha * self.temperature**2 * kl

    def state_dict(self) -> dict[str, Any]:
        return {
            **self.teacher.state_dict(),
            "classes": {str(k): v for k, v in self.classes.items()},
        }

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.teacher.load_state_dict(state)
        self.classes = {int(k): list(v) for k, v in state["classes"].items()}


lwf = ContinualMethod(
    build=lambda config, settings: StrategyParts(edge=LwF(settings.alpha, settings.temperature)),
    settings=LwFSettings,
    sides=("edge",),
    modes=EDGE_MODES,
    summary="the edge exit distils its previous self on the old classes (no data kept)",
)
