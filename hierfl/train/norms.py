"""BatchNorm statistics recalibrated to the weights an edge holds.

With a compressed weight exchange the edges keep their BatchNorm statistics local (mixing them
with sparse or averaged weights wrecks the model). Statistics only follow the weights through
their running average (momentum 0.1): an edge that trains a few mini-batches a round, or that
sits out rounds (``clients-per-round``) and comes back to weights the others moved, holds
statistics of older weights, and its exit (and the activations the cloud is evaluated on)
suffer. After a round the edge recomputes them from the round's own batches: one forward pass,
no gradient, the exact mean and variance of the batches under the trained weights.
"""

from __future__ import annotations

from collections.abc import Iterable

import torch
from torch import nn
from torch.nn.modules.batchnorm import _BatchNorm


def norm_layers(module: nn.Module) -> list[_BatchNorm]:
    """The BatchNorm layers of ``module`` that keep running statistics."""
    return [m for m in module.modules() if isinstance(m, _BatchNorm) and m.track_running_stats]


@torch.no_grad()
def recalibrate(
    module: nn.Module,
    batches: Iterable[tuple[torch.Tensor, torch.Tensor]],
    device: torch.device | str,
) -> int:
    """Replace ``module``'s BatchNorm running statistics by the cumulative statistics of
    ``batches`` under its current weights; the weights are untouched. Returns the number of
    batches used (0: nothing to recalibrate, or no batches: the statistics are kept)."""
    layers = norm_layers(module)
    inputs = [x for x, _ in batches if len(x) > 1]
    if not layers or not inputs:
        return 0
    momenta = [(m, m.momentum) for m in layers]
    was_training = module.training
    module.eval()  # dropout and the like off; only the norm layers collect statistics
    for m in layers:
        m.reset_running_stats()
        m.momentum = None  # a cumulative average over the batches
        m.train()
    try:
        for x in inputs:
            module(x.to(device))
    finally:
        for m, momentum in momenta:
            m.momentum = momentum
        module.train(was_training)
    return len(inputs)
