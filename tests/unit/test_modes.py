"""The baselines on the same models: split's gradient, cloud's raw uplink, edge-only, early exit."""

from __future__ import annotations

import copy
import dataclasses
import math
import types

import pytest
import torch

import hierfl
from hierfl.cloud.trainer import CloudTrainer
from hierfl.config import HierConfig
from hierfl.models import create_model
from hierfl.registry import PARTITIONERS
from hierfl.train.evaluate import early_exit_sweep

TINY = HierConfig(clients=2, experiences=2, rounds=2, local_epochs=2)


def test_split_edge_gradient_equals_end_to_end_backprop():
    torch.manual_seed(0)
    model = create_model("small-cnn", cut="block2", num_classes=10, input_shape=(1, 8, 8), seed=0)
    reference = copy.deepcopy(model)  # a monolithic copy with the same weights
    x, y = torch.rand(16, 1, 8, 8), torch.randint(0, 10, (16,))

    loss = torch.nn.functional.cross_entropy(reference(x), y)
    loss.backward()
    expected = {n: p.grad.clone() for n, p in reference.edge.segment.named_parameters()}

    a = model.edge.segment(x)
    grad = CloudTrainer(model.cloud, lr=0.1).train_batch_grad(a.detach(), y)
    a.backward(grad)
    for name, p in model.edge.segment.named_parameters():
        torch.testing.assert_close(p.grad, expected[name], rtol=1e-5, atol=1e-7)


@pytest.mark.parametrize(
    ("mode", "exits"),
    [
        ("hierarchical", ["edge", "cloud"]),
        ("split", ["cloud"]),
        ("cloud", ["cloud"]),
        ("edge", ["edge"]),
    ],
)
def test_every_mode_trains_and_reports_its_exits(digits_benchmark, tmp_path, mode, exits):
    config = dataclasses.replace(TINY, mode=mode)
    result = hierfl.run(config, benchmark=digits_benchmark)
    assert result.accuracy.exits() == exits
    for name in exits:
        assert result.accuracy.row(name, 1)[-1] > 0.3  # 5 new classes: chance is 0.2
    raw = result.communication["raw_input_bytes_uplink"]
    if mode == "cloud":
        # every training sample of both experiences went up once (in the first round of each
        # experience), as stored: uint8 pixels and a one-byte label; every reply carries the
        # two arrays' .npy headers (empty after the first round)
        samples = sum(len(e) for e in digits_benchmark.train)
        replies = 2 * 2 * 2  # edges x experiences x rounds
        assert raw == samples * (64 + 1) + replies * 2 * 128  # once, reused for every epoch
    else:
        assert raw == 0
    assert (result.metrics["early_exit"] != []) == (mode == "hierarchical")


def test_early_exit_sweep_by_hand():
    model = create_model("small-cnn", cut="block2", num_classes=10, input_shape=(1, 8, 8), seed=0)
    x, y = torch.rand(32, 1, 8, 8), torch.randint(0, 10, (32,))
    rows = early_exit_sweep(model, x, y, (0.0, 1.01))
    with torch.no_grad():
        model.eval()
        edge_acc = float((model.forward_edge(x).exit_logits.argmax(1) == y).float().mean())
        cloud_acc = float((model(x).argmax(1) == y).float().mean())
    assert rows[0]["offload_fraction"] == 0.0 and rows[0]["accuracy"] == pytest.approx(edge_acc)
    assert rows[1]["offload_fraction"] == 1.0 and rows[1]["accuracy"] == pytest.approx(cloud_acc)


class _FixedExits(torch.nn.Module):
    """A stand-in model whose exits answer fixed logits for samples 0..3 (x is the index)."""

    num_classes = 2

    def __init__(self, edge, cloud):
        super().__init__()
        self.anchor = torch.nn.Parameter(torch.zeros(1))  # a parameter, for the device
        self.edge_logits, self.cloud_logits = torch.tensor(edge), torch.tensor(cloud)

    def forward_edge(self, x):
        index = x.long().flatten()
        return types.SimpleNamespace(exit_logits=self.edge_logits[index], activations=index)

    def forward_cloud(self, index):
        return self.cloud_logits[index]


def _logit(p):
    """Two-class logits whose softmax puts ``p`` on class 0."""
    return [math.log(p), math.log(1 - p)]


def test_early_exit_routes_by_the_edge_exits_confidence():
    """Threshold 0.7, worked by hand: the edge answers where *its* confidence is >= 0.7.

    sample  edge p(0)  edge says  cloud says  label   answered by  right?
    0       0.95       0          1 (0.99)    0       edge         yes
    1       0.60       0          1 (0.99)    1       cloud        yes
    2       0.20       1 (0.80)   0 (0.60)    0       edge         no
    3       0.55       0          1 (0.90)    0       cloud        no
    Routing by the cloud's confidence (0.99, 0.99, 0.60, 0.90) would offload sample 2 only.
    """
    model = _FixedExits(
        [_logit(0.95), _logit(0.60), _logit(0.20), _logit(0.55)],
        [_logit(0.01), _logit(0.01), _logit(0.60), _logit(0.10)],
    )
    x, y = torch.arange(4.0).view(4, 1), torch.tensor([0, 1, 0, 0])
    (row,) = early_exit_sweep(model, x, y, (0.7,))
    assert row == {
        "threshold": 0.7,
        "accuracy": 0.5,
        "offload_fraction": 0.5,
        "edge_answered": 2,
        "answered_edge_accuracy": 0.5,  # samples 0 (right) and 2 (wrong) at the edge
        "answered_cloud_accuracy": 0.5,  # the full model on them: 0 wrong, 2 right
    }


def test_split_edge_stays_frozen_after_freeze_edge_after(digits_benchmark):
    from hierfl.boundary import RoundRequest
    from hierfl.edge.split import run_split_round

    config = dataclasses.replace(TINY, mode="split", freeze_edge_after=0, local_epochs=1)
    stream = PARTITIONERS.plugin("iid").make(
        digits_benchmark, partition_id=0, num_partitions=1, seed=0
    )
    model = create_model(
        "small-cnn", cut="", num_classes=10, input_shape=digits_benchmark.input_shape, seed=0
    )
    cloud = CloudTrainer(model.cloud, lr=0.01, optimizer="adam")
    start = {k: v.clone() for k, v in model.edge.state_dict().items()}

    def moved(experience: int) -> bool:
        result = run_split_round(
            config, RoundRequest(experience, 0), start, stream, cloud.train_batch_grad
        )
        assert result.chunk.trained == len(stream.experiences[experience])
        return any(not torch.equal(v, start[k]) for k, v in result.edge_state.items())

    assert moved(0)  # experience 0 trains the segment
    assert not moved(1)  # after it, the cloud's gradient no longer moves it


def test_a_split_batch_updates_batch_norm_statistics_once():
    """The edge recomputes f_e(x) for the backward pass; BatchNorm must not count it twice.

    Expected: the running statistics after one train-mode forward of the same batch from the
    same weights (as one forward-backward pass of a monolithic model leaves them).
    """
    from hierfl.boundary import RoundRequest
    from hierfl.data.streams import build_benchmark
    from hierfl.edge.split import SplitEdge

    config = HierConfig(
        mode="split",
        model="vgg16",  # BatchNorm in every conv block
        cut="block1",
        scenario="synthetic",
        input_shape="3x32x32",
        num_classes=4,
        samples_per_class=8,
        experiences=1,
        local_epochs=1,
        batch_size=8,
    ).validate()
    bench = build_benchmark(config)
    stream = PARTITIONERS.plugin("iid").make(bench, partition_id=0, num_partitions=1, seed=0)
    start = create_model("vgg16", cut="block1", num_classes=4, input_shape=(3, 32, 32), seed=0)
    weights = {k: v.clone() for k, v in start.edge.state_dict().items()}
    edge = SplitEdge(config, RoundRequest(0, 0), weights, stream)
    x, _ = edge.batches[0]
    start.train()
    with torch.no_grad():
        start.edge.segment(x)  # the one update a batch should make
    sent = edge.forward(0)
    edge.backward(0, torch.ones_like(sent.activations))
    stats = {k: v for k, v in start.edge.segment.state_dict().items() if "running" in k}
    assert stats, "the segment has BatchNorm"
    got = edge.model.edge.segment.state_dict()
    for name, expected in stats.items():
        torch.testing.assert_close(got[name], expected, rtol=0, atol=0)
    assert edge.compute_s > 0  # split mode reports its edge compute
