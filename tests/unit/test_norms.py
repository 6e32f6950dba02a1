"""BatchNorm statistics recalibrated after a round (``hierfl.train.norms``)."""

from __future__ import annotations

import torch
from torch import nn

from hierfl.train.norms import recalibrate


def _net() -> nn.Sequential:
    torch.manual_seed(0)
    return nn.Sequential(nn.Linear(4, 3), nn.BatchNorm1d(3), nn.Dropout(0.5), nn.ReLU())


def test_statistics_become_those_of_the_batches_under_the_current_weights():
    net = _net()
    bn = net[1]
    bn.running_mean.fill_(5.0)  # stale statistics
    bn.running_var.fill_(9.0)
    weights = {k: v.detach().clone() for k, v in net.named_parameters()}
    gen = torch.Generator().manual_seed(1)
    batches = [(torch.randn(8, 4, generator=gen) * 3 + 1, torch.zeros(8)) for _ in range(5)]
    net.train(False)

    used = recalibrate(net, batches, torch.device("cpu"))

    with torch.no_grad():
        pre = [net[0](x) for x, _ in batches]  # what the norm layer saw, computed apart
    want_mean = torch.stack([h.mean(0) for h in pre]).mean(0)
    want_var = torch.stack([h.var(0, unbiased=True) for h in pre]).mean(0)
    assert used == 5
    assert torch.allclose(bn.running_mean, want_mean, atol=1e-5)
    assert torch.allclose(bn.running_var, want_var, atol=1e-5)
    assert bn.momentum == 0.1 and not net.training  # restored
    for k, v in weights.items():
        assert torch.equal(net.state_dict()[k], v), k  # weights untouched


def test_without_batches_or_norm_layers_nothing_changes():
    net = _net()
    before = net[1].running_mean.clone()
    assert recalibrate(net, [], torch.device("cpu")) == 0
    assert recalibrate(net, [(torch.randn(1, 4), torch.zeros(1))], torch.device("cpu")) == 0
    assert torch.equal(net[1].running_mean, before)
    assert recalibrate(nn.Linear(4, 2), [(torch.randn(4, 4), torch.zeros(4))], "cpu") == 0
