"""Latent replay with a learning edge: the feature anchor, worked by hand."""

from __future__ import annotations

import torch
from torch import nn

from hierfl.models.base import EdgeOutput
from strategies.latent_replay import FeatureAnchor


class _Scale(nn.Module):
    """An 'edge' whose activations are its input times one weight."""

    def __init__(self, w: float) -> None:
        super().__init__()
        self.w = nn.Parameter(torch.tensor(w))

    def forward(self, x):
        a = x * self.w
        return EdgeOutput(exit_logits=a.sum(1, keepdim=True), activations=a)


def test_no_anchor_in_the_first_experience_then_the_relative_drift():
    anchor = FeatureAnchor(anchor=2.0)
    edge = _Scale(1.0)
    x = torch.tensor([[1.0, 2.0], [3.0, 4.0]])
    anchor.begin_round(edge, experience=0)
    assert anchor.loss(x, edge(x), torch.zeros(2), experience=0) == 0.0
    anchor.begin_round(edge, experience=1)  # teacher: w = 1
    with torch.no_grad():
        edge.w.fill_(1.5)  # the edge learned: activations 1.5x
    loss = anchor.loss(x, edge(x), torch.zeros(2), experience=1)
    # drift (0.5 x)^2 over teacher x^2: 0.25, times anchor 2
    assert torch.isclose(loss, torch.tensor(0.5))
    loss.backward()
    assert edge.w.grad is not None and edge.w.grad > 0  # pulls w back toward the teacher's


def test_the_teacher_is_kept_across_rounds_and_in_the_node_state():
    anchor = FeatureAnchor(anchor=1.0)
    edge = _Scale(1.0)
    anchor.begin_round(edge, experience=1)
    with torch.no_grad():
        edge.w.fill_(3.0)
    anchor.begin_round(edge, experience=1)  # a later round: same teacher (w = 1)
    restored = FeatureAnchor(anchor=1.0)
    restored.load_state_dict(anchor.state_dict())
    restored.begin_round(edge, experience=1)
    x = torch.ones(1, 2)
    for hooks in (anchor, restored):
        assert torch.isclose(
            hooks.loss(x, edge(x), torch.zeros(1), experience=1), torch.tensor(4.0)
        )
