"""Every registered model and cut honours the split-model contract."""

from __future__ import annotations

import pytest
import torch

from hierfl.edge import EdgeTrainer
from hierfl.models import create_model, list_models
from hierfl.plugins import MODELS

CASES = [(name, cut) for name in list_models() for cut in MODELS.get(name).cut_points]


def test_small_cnn_has_at_least_three_cuts():
    assert len(MODELS.get("small-cnn").cut_points) >= 3


@pytest.mark.parametrize(("name", "cut"), CASES)
def test_split_forward_equals_monolithic(name, cut):
    x = torch.rand(5, 1, 8, 8)
    model = create_model(name, cut=cut, num_classes=10, input_shape=(1, 8, 8), seed=3)
    out = model.forward_edge(x)
    assert out.exit_logits.shape == (5, 10)
    assert tuple(out.activations.shape[1:]) == model.activation_shape()
    # The same seed builds the same network whatever the cut: every cut's split must agree
    # with the monolithic network built for the first cut.
    reference = create_model(
        name, cut=MODELS.get(name).cut_points[0], num_classes=10, input_shape=(1, 8, 8), seed=3
    )
    expected = reference(x)
    torch.testing.assert_close(model.forward_cloud(out.activations), expected)


@pytest.mark.parametrize(("name", "cut"), CASES)
def test_one_training_step_is_deterministic(name, cut):
    x, y = torch.rand(8, 1, 8, 8), torch.randint(0, 10, (8,))
    states = []
    for _ in range(2):
        model = create_model(name, cut=cut, num_classes=10, input_shape=(1, 8, 8), seed=1)
        EdgeTrainer(model.edge, lr=0.01).train_chunk([(x, y)], max_bytes=2**30)
        states.append(model.edge.state_dict())
    for k in states[0]:
        assert torch.equal(states[0][k], states[1][k])
