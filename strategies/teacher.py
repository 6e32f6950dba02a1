"""The edge as it was when the current experience began: a frozen teacher for distillation.

At the first round of each new experience (after the first) the edge snapshots the model it
received, the aggregate after the previous experience; every round of that experience then gets a
frozen copy of it. The snapshot lives in the node-local state (``state_dict``).
"""

from __future__ import annotations

import copy
from typing import Any

import torch
from torch import nn


class ExperienceTeacher:
    def __init__(self) -> None:
        self.state: dict[str, torch.Tensor] | None = None
        self.experience = -1

    def begin_round(self, edge: nn.Module, *, experience: int) -> nn.Module | None:
        """The frozen teacher for this round (None in the first experience)."""
        if experience > 0 and experience != self.experience:
            self.state = {k: v.detach().cpu().clone() for k, v in edge.state_dict().items()}
            self.experience = experience
        if self.state is None or self.experience != experience:
            return None
        teacher = copy.deepcopy(edge).eval()
        teacher.load_state_dict(self.state)
        for p in teacher.parameters():
            p.requires_grad_(False)
        return teacher

    def state_dict(self) -> dict[str, Any]:
        return {"teacher": self.state, "teacher_experience": self.experience}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.state = state["teacher"]
        self.experience = int(state["teacher_experience"])
