"""EWC on the edge: the Fisher estimate, the pull towards the anchor, and state across messages."""

from __future__ import annotations

import io

import torch
import torch.nn.functional as F

from hierfl.edge.trainer import EdgeTrainer
from hierfl.models import create_model
from strategies.ewc import EWC, empirical_fisher

SHAPE = (1, 8, 8)


def _model():
    return create_model("small-cnn", cut="", num_classes=4, input_shape=SHAPE, seed=0)


def _data(seed: int, classes: list[int], n: int = 32):
    g = torch.Generator().manual_seed(seed)
    return torch.randn(n, *SHAPE, generator=g), torch.tensor(classes * (n // len(classes)))


def test_empirical_fisher_is_the_mean_squared_batch_gradient():
    model = _model()
    x, y = _data(0, [0, 1])
    fisher = empirical_fisher(model.edge, x, y, batch_size=16)
    assert all(p.grad is None for p in model.edge.parameters())  # nothing left behind
    model.edge.eval()
    expected = {n: torch.zeros_like(p) for n, p in model.edge.named_parameters()}
    for xb, yb in ((x[:16], y[:16]), (x[16:], y[16:])):
        model.edge.zero_grad()
        F.cross_entropy(model.edge(xb).exit_logits, yb).backward()
        for n, p in model.edge.named_parameters():
            expected[n] += p.grad**2 / 2
    for n in expected:
        torch.testing.assert_close(fisher[n], expected[n])


def _train_second_experience(ewc_lambda: float) -> float:
    """Distance from the consolidated weights after training on a new experience."""
    model = _model()
    hooks = EWC(ewc_lambda)
    x0, y0 = _data(0, [0, 1])
    hooks.observe(x0, y0, experience=0)
    hooks.begin_round(model.edge, experience=0)
    trainer = EdgeTrainer(model.edge, lr=0.01, optimizer="sgd")
    trainer.train_chunk([(x0, y0)], max_bytes=2**30, ship=False)
    x1, y1 = _data(1, [2, 3])
    hooks.observe(x1, y1, experience=1)
    hooks.begin_round(model.edge, experience=1)  # consolidates the weights it holds now
    assert hooks.fisher is not None and hooks.anchor is not None
    anchor = {n: a.clone() for n, a in hooks.anchor.items()}
    trainer = EdgeTrainer(model.edge, lr=0.05, optimizer="sgd")
    batches = [(x1[i : i + 8], y1[i : i + 8]) for i in range(0, 32, 8)] * 5
    trainer.train_chunk(
        batches,
        max_bytes=2**30,
        ship=False,
        extra_loss=lambda x, out, y: hooks.loss(x, out, y, experience=1),
    )
    weighted = 0.0
    for n, p in model.edge.named_parameters():
        weighted += float((hooks.fisher[n] * (p.detach() - anchor[n]) ** 2).sum())
    return weighted


def test_the_penalty_keeps_important_weights_near_the_consolidated_ones():
    free = _train_second_experience(0.0)
    held = _train_second_experience(100.0)
    assert held < 0.5 * free


def test_state_survives_a_round_trip_through_the_node_folder():
    model = _model()
    hooks = EWC(10.0)
    hooks.observe(*_data(0, [0, 1]), experience=0)
    hooks.begin_round(model.edge, experience=0)
    hooks.observe(*_data(1, [2, 3]), experience=1)
    hooks.begin_round(model.edge, experience=1)
    buffer = io.BytesIO()
    torch.save(hooks.state_dict(), buffer)
    buffer.seek(0)
    again = EWC(10.0)
    again.load_state_dict(torch.load(buffer, weights_only=True))
    again.begin_round(model.edge, experience=1)  # same experience: no second consolidation
    for p in model.edge.parameters():
        p.data.add_(0.01)
    x, y = _data(2, [2, 3])
    out = model.edge(x)
    assert float(again.loss(x, out, y, experience=1)) > 0
    torch.testing.assert_close(
        again.loss(x, out, y, experience=1), hooks.loss(x, out, y, experience=1)
    )
    assert again.previous is None and again.consolidated_for == 1
