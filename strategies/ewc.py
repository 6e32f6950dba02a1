"""Elastic Weight Consolidation on the edge (segment and exit), online variant.

Kirkpatrick et al., "Overcoming catastrophic forgetting in neural networks" (PNAS 2017), in
the online form of Schwarz et al. (2018); the strength is ``ewc.lambda``.

When an edge starts a new experience it consolidates the weights it received (the aggregate
after the previous experience): it estimates each weight's importance on the previous
experience as the empirical Fisher information, the mean squared gradient of its exit loss
over a few of its own samples, and from then on adds
``ewc_lambda / 2 * sum_i F_i * (w_i - w*_i) ** 2`` to every batch's loss. Importances of
successive experiences add up (online EWC with decay 1), so one anchor and one Fisher estimate
are kept, whatever the number of experiences.

The samples used for the estimate (at most ``FISHER_SAMPLES`` of the experience just ended) stay
on the device, are never trained on, and are dropped once consolidated; the Fisher estimate
and the anchor live in the node-local folder between messages.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from hierfl.plugins import ContinualMethod, EdgeHooks, EdgeOutput, StrategyParts, option
from strategies.buffer import Reservoir
from strategies.continual import EDGE_MODES

FISHER_SAMPLES = 256
FISHER_BATCH = 32

Weights = dict[str, torch.Tensor]


def empirical_fisher(
    edge: nn.Module, x: torch.Tensor, y: torch.Tensor, *, batch_size: int = FISHER_BATCH
) -> Weights:
    """Mean over mini-batches of the squared gradient of the exit loss, per trainable weight.

    Runs in eval mode (BatchNorm statistics are left alone) and leaves no ``.grad`` behind.
    """
    params = {n: p for n, p in edge.named_parameters() if p.requires_grad}
    fisher = {n: torch.zeros_like(p) for n, p in params.items()}
    was_training = edge.training
    edge.eval()
    device = next(edge.parameters()).device
    total = max(len(y), 1)
    for start in range(0, len(y), batch_size):
        xb, yb = x[start : start + batch_size].to(device), y[start : start + batch_size].to(device)
        loss = F.cross_entropy(edge(xb).exit_logits, yb)
        grads = torch.autograd.grad(loss, list(params.values()), allow_unused=True)
        for (name, _), g in zip(params.items(), grads, strict=True):
            if g is not None:
                fisher[name] += g.detach() ** 2 * (len(yb) / total)
    edge.train(was_training)
    return fisher


class EWC(EdgeHooks):
    def __init__(self, ewc_lambda: float, seed: int = 0) -> None:
        self.ewc_lambda = ewc_lambda
        self.seed = seed
        self.fisher: Weights | None = None
        self.anchor: Weights | None = None
        self.consolidated_for = 0  # the experience whose start last consolidated
        self.current = -1  # the experience ``samples`` holds
        self.samples: Reservoir | None = None
        self.previous: Reservoir | None = None  # the last experience's, until consolidated
        self._params: dict[str, nn.Parameter] = {}

    def observe(self, x: torch.Tensor, y: torch.Tensor, *, experience: int) -> None:
        if experience != self.current:
            self.previous = self.samples
            self.samples = Reservoir(FISHER_SAMPLES, self.seed + experience)
            self.current = experience
        assert self.samples is not None
        self.samples.add(x, y, experience)

    def begin_round(self, edge: nn.Module, *, experience: int) -> None:
        self._params = {n: p for n, p in edge.named_parameters() if p.requires_grad}
        if experience <= self.consolidated_for:
            return
        self.consolidated_for = experience
        old = self.previous
        self.previous = None
        if old is None or old.x is None:
            return  # this edge saw nothing in the last experience: nothing to protect
        fisher = empirical_fisher(edge, old.x, old.y)
        if self.fisher is not None:
            fisher = {
                n: f + self.fisher[n].to(f.device) for n, f in fisher.items() if n in self.fisher
            }
        self.fisher = {n: f.detach().cpu() for n, f in fisher.items()}
        self.anchor = {n: p.detach().cpu().clone() for n, p in self._params.items()}

    def loss(
        self, x: torch.Tensor, out: EdgeOutput, y: torch.Tensor, *, experience: int
    ) -> torch.Tensor | float:
        if self.fisher is None or self.anchor is None or not self.ewc_lambda:
            return 0.0
        penalty: torch.Tensor | float = 0.0
        for name, p in self._params.items():
            if name in self.fisher:
                f, a = self.fisher[name].to(p.device), self.anchor[name].to(p.device)
                penalty = penalty + (f * (p - a) ** 2).sum()
        return 0.5 * self.ewc_lambda * penalty

    def state_dict(self) -> dict[str, Any]:
        return {
            "fisher": self.fisher,
            "anchor": self.anchor,
            "consolidated_for": self.consolidated_for,
            "current": self.current,
            "samples": self.samples.state_dict() if self.samples else None,
            "previous": self.previous.state_dict() if self.previous else None,
        }

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.fisher, self.anchor = state["fisher"], state["anchor"]
        self.consolidated_for = int(state["consolidated_for"])
        self.current = int(state["current"])
        self.samples = self._reservoir(state["samples"])
        self.previous = self._reservoir(state["previous"])

    def _reservoir(self, state: dict[str, Any] | None) -> Reservoir | None:
        if state is None:
            return None
        reservoir = Reservoir(FISHER_SAMPLES, self.seed)
        reservoir.load_state_dict(state)
        return reservoir


@dataclass(frozen=True)
class EWCSettings:
    # "lambda" is a Python keyword; the setting is still spelled ewc.lambda on the outside.
    lambda_: float = option(1000.0, "strength of the EWC penalty", ge=0)


ewc = ContinualMethod(
    build=lambda config, settings: StrategyParts(edge=EWC(settings.lambda_, config.seed)),
    settings=EWCSettings,
    sides=("edge",),
    modes=EDGE_MODES,
    summary="the edge's important weights are anchored by a Fisher penalty (no data kept)",
)
