"""Edge and cloud engines: what crosses the cut, what each step may change, chunk bounds."""

from __future__ import annotations

import pytest
import torch

from hierfl.boundary import LABEL_BYTES
from hierfl.cloud.trainer import CloudTrainer
from hierfl.edge.trainer import EdgeTrainer
from hierfl.errors import ConfigError
from hierfl.models import create_model
from hierfl.train.schedule import epoch_batches


def _model(cut: str = "block2"):
    return create_model("small-cnn", cut=cut, num_classes=10, input_shape=(1, 8, 8), seed=0)


def _data(n: int = 64, seed: int = 0):
    g = torch.Generator().manual_seed(seed)
    return torch.rand(n, 1, 8, 8, generator=g), torch.randint(0, 10, (n,), generator=g)


def _snapshot(module: torch.nn.Module) -> dict[str, torch.Tensor]:
    return {k: v.detach().clone() for k, v in module.state_dict().items()}


def _batches(x, y, batch_size=16, epochs=1):
    return epoch_batches(
        x, y, batch_size=batch_size, epochs=epochs, generator=torch.Generator().manual_seed(1)
    )


def test_cloud_step_leaves_edge_parameters_and_grads_unchanged():
    model = _model()
    x, y = _data()
    edge = EdgeTrainer(model.edge, lr=0.01)
    chunk = edge.train_chunk(_batches(x, y), max_bytes=2**30)
    assert all(p.grad is not None for p in model.edge.parameters())
    weights = _snapshot(model.edge)
    grads = [p.grad.clone() for p in model.edge.parameters()]
    cloud = CloudTrainer(model.cloud, lr=0.1)
    cloud.train_batch(chunk.activations[:16], chunk.labels[:16])
    for k, v in model.edge.state_dict().items():
        assert torch.equal(v, weights[k]), k
    for p, g in zip(model.edge.parameters(), grads, strict=True):
        assert torch.equal(p.grad, g)


def test_activations_leaving_the_edge_carry_no_graph():
    model = _model()
    x, y = _data()
    chunk = EdgeTrainer(model.edge, lr=0.01).train_chunk(_batches(x, y), max_bytes=2**30)
    assert chunk.activations.requires_grad is False
    assert chunk.activations.grad_fn is None
    assert chunk.activations.shape == (64, *model.activation_shape())
    assert torch.equal(chunk.labels.sort().values, y.sort().values)


def test_edge_step_changes_only_edge_parameters():
    model = _model()
    x, y = _data()
    edge_before, cloud_before = _snapshot(model.edge), _snapshot(model.cloud)
    EdgeTrainer(model.edge, lr=0.05).train_chunk(_batches(x, y), max_bytes=2**30)
    for k, v in model.cloud.state_dict().items():
        assert torch.equal(v, cloud_before[k]), k
    changed = [k for k, v in model.edge.state_dict().items() if not torch.equal(v, edge_before[k])]
    assert set(changed) == set(edge_before)  # every edge weight moved (segment and exit)


def test_cloud_step_changes_cloud_parameters():
    model = _model()
    a = torch.randn(16, *model.activation_shape())
    y = torch.randint(0, 10, (16,))
    before = _snapshot(model.cloud)
    CloudTrainer(model.cloud, lr=0.1).train_batch(a, y)
    assert any(not torch.equal(v, before[k]) for k, v in model.cloud.state_dict().items())


def test_chunk_stays_within_the_byte_bound():
    model = _model()
    x, y = _data(n=160)
    per_sample = 4 * int(torch.tensor(model.activation_shape()).prod()) + LABEL_BYTES
    bound = int(per_sample * 16 * 3.5)  # room for three and a half batches of 16
    chunk = EdgeTrainer(model.edge, lr=0.01).train_chunk(_batches(x, y), max_bytes=bound)
    assert chunk.nbytes <= bound
    assert chunk.batches == 3 and chunk.num_examples == 48
    assert chunk.truncated
    assert chunk.nbytes == 48 * per_sample


def test_chunk_bound_smaller_than_one_batch_is_a_config_error():
    model = _model()
    x, y = _data()
    with pytest.raises(ConfigError, match="max-chunk-mb"):
        EdgeTrainer(model.edge, lr=0.01).train_chunk(_batches(x, y), max_bytes=100)


def test_cloud_queue_trains_every_queued_sample_once_per_epoch():
    model = _model()
    a = torch.randn(40, *model.activation_shape())
    y = torch.randint(0, 10, (40,))
    cloud = CloudTrainer(model.cloud, lr=0.01, batch_size=16, epochs=2)
    cloud.enqueue(a, y)
    assert cloud.pending == 6  # ceil(40 / 16) = 3 batches, twice
    cloud.drain()
    assert cloud.pending == 0
    assert cloud.stats.examples == 80 and cloud.stats.batches == 6


def test_proximal_term_pulls_edge_towards_received_weights():
    x, y = _data()
    drift = {}
    for mu in (0.0, 5.0):
        model = _model()
        start = _snapshot(model.edge)
        trainer = EdgeTrainer(model.edge, lr=0.05, proximal_mu=mu)
        trainer.train_chunk(_batches(x, y, epochs=3), max_bytes=2**30)
        drift[mu] = sum(
            float((v - start[k]).pow(2).sum()) for k, v in model.edge.state_dict().items()
        )
    assert drift[5.0] < drift[0.0]


def test_epoch_batches_cover_every_sample_and_never_yield_a_single_sample():
    x, y = torch.arange(33).float().view(33, 1, 1, 1), torch.arange(33)
    batches = list(_batches(x, y, batch_size=16, epochs=2))
    assert [len(b[1]) for b in batches] == [16, 17, 16, 17]
    assert sorted(torch.cat([b[1] for b in batches[:2]]).tolist()) == list(range(33))
