"""Optimizers by name, shared by the edge and cloud trainers."""

from __future__ import annotations

from collections.abc import Iterable

import torch

from hierfl.config import OPTIMIZERS
from hierfl.errors import UnknownNameError


def make_optimizer(
    name: str, params: Iterable[torch.nn.Parameter], *, lr: float, momentum: float
) -> torch.optim.Optimizer:
    if name == "sgd":
        return torch.optim.SGD(params, lr=lr, momentum=momentum)
    if name == "adam":
        return torch.optim.Adam(params, lr=lr)
    raise UnknownNameError("optimizer", name, list(OPTIMIZERS))
