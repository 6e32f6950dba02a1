"""Masked fixed heads: a node neither learns nor predicts classes it has not met."""

from __future__ import annotations

import torch
from torch import nn

from hierfl.cloud.trainer import CloudTrainer
from hierfl.edge.trainer import EdgeTrainer
from hierfl.models import create_model
from hierfl.train.evaluate import early_exit_sweep, exit_accuracies
from hierfl.train.masking import SeenClasses, mask_logits

SHAPE = (1, 8, 8)
CLASSES = 10


def _model(seed: int = 0):
    return create_model("small-cnn", cut="", num_classes=CLASSES, input_shape=SHAPE, seed=seed)


def _last_linear(module: nn.Module) -> nn.Linear:
    return [m for m in module.modules() if isinstance(m, nn.Linear)][-1]


def _batches(classes: list[int], n: int = 24, seed: int = 0):
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(n, *SHAPE, generator=g)
    y = torch.tensor(classes * (n // len(classes)))
    return [(x[i : i + 8], y[i : i + 8]) for i in range(0, n, 8)]


def _edge_rows_after_training(seen: SeenClasses | None) -> tuple[torch.Tensor, torch.Tensor]:
    model = _model()
    before = _last_linear(model.edge.exit).weight.detach().clone()
    trainer = EdgeTrainer(model.edge, lr=0.01, optimizer="adam", seen=seen)
    trainer.train_chunk(_batches([0, 1]), max_bytes=2**30)
    return before, _last_linear(model.edge.exit).weight.detach()


def test_an_edge_leaves_the_exit_rows_of_classes_it_never_met_untouched():
    before, after = _edge_rows_after_training(SeenClasses(CLASSES))
    assert not torch.equal(before[:2], after[:2])  # the classes it met are learnt
    assert torch.equal(before[2:], after[2:])  # the others: bit-identical
    before, after = _edge_rows_after_training(SeenClasses(CLASSES, enabled=False))
    assert not torch.equal(before[2:], after[2:])  # without the mask they are pushed down


def test_the_cloud_head_learns_only_the_classes_that_reached_it():
    model = _model()
    seen = SeenClasses(CLASSES, [5])  # learnt earlier
    head = _last_linear(model.cloud)
    before = head.weight.detach().clone()
    cloud = CloudTrainer(model.cloud, lr=0.01, optimizer="adam", seen=seen)
    a = model.edge(torch.randn(8, *SHAPE)).activations.detach()
    cloud.train_batch(a, torch.tensor([3, 4] * 4))
    changed = [c for c in range(CLASSES) if not torch.equal(before[c], head.weight[c])]
    assert changed == [3, 4, 5]
    assert seen.classes() == [3, 4, 5]


def test_masked_logits_put_no_probability_on_unseen_classes():
    logits = torch.randn(4, CLASSES)
    keep = torch.zeros(CLASSES, dtype=torch.bool)
    keep[[2, 7]] = True
    probs = mask_logits(logits, keep).softmax(1)
    assert torch.allclose(probs[:, [2, 7]].sum(1), torch.ones(4))
    assert probs[:, ~keep].abs().max() == 0


def test_evaluation_predicts_only_among_the_classes_introduced_so_far():
    model = _model(seed=3)
    x = torch.randn(40, *SHAPE)
    y = torch.full((40,), 6)
    # with a single class introduced every prediction is that class, whatever the weights
    assert exit_accuracies(model, x, y, classes=[6]) == {"edge": 1.0, "cloud": 1.0}
    unmasked = exit_accuracies(model, x, y)
    assert unmasked["edge"] < 1.0 or unmasked["cloud"] < 1.0
    rows = early_exit_sweep(model, x, y, (0.0, 1.0), classes=[6])
    assert [r["accuracy"] for r in rows] == [1.0, 1.0]
    assert rows[0]["offload_fraction"] == 0.0  # confidence is 1 at the edge: nothing offloaded
