"""The cloud's passes over a round's chunks: the first as each edge trained it, the later ones
shuffled over every edge's chunk together."""

from __future__ import annotations

import torch
from torch import nn

from hierfl.cloud.trainer import CloudTrainer


def _trainer(epochs: int, batch_size: int = 16) -> CloudTrainer:
    torch.manual_seed(0)
    net = nn.Sequential(nn.Linear(6, 32), nn.ReLU(), nn.Linear(32, 4))
    return CloudTrainer(net, lr=0.1, momentum=0.9, batch_size=batch_size, epochs=epochs)


def _edge_codes(shift: int, tag: int, n: int, g: torch.Generator):
    """An edge's codes: class c lights feature (c + shift) % 4, plus the edge's own tag
    feature. Two edges with different shifts code the same class differently, as edges that
    keep their own weights do."""
    y = torch.randint(0, 4, (n,), generator=g)
    x = torch.zeros(n, 6)
    x[torch.arange(n), (y + shift) % 4] = 1.0
    x[:, 4 + tag] = 1.0
    return x + 0.05 * torch.randn(n, 6, generator=g), y


def _accuracy(trainer: CloudTrainer, x: torch.Tensor, y: torch.Tensor) -> float:
    trainer.cloud.eval()
    with torch.no_grad():
        return float((trainer.cloud(x).argmax(1) == y).float().mean())


def test_a_round_of_edges_that_code_differently_is_learned_for_every_edge():
    g = torch.Generator().manual_seed(0)
    a, b = _edge_codes(0, 0, 128, g), _edge_codes(1, 1, 128, g)
    trainer = _trainer(epochs=8)
    for chunk in (a, b):  # as the round's replies arrive
        trainer.enqueue_first(*chunk)
    trainer.enqueue_later([a, b])  # when the round closes
    trainer.drain()
    # one edge's 8 passes after the other's leave this cloud at 0.0 on the first edge's codes
    assert _accuracy(trainer, *a) == 1.0
    assert _accuracy(trainer, *b) == 1.0


def test_the_first_pass_is_each_chunk_in_order_and_later_passes_mix_every_chunk():
    ids_a, ids_b = torch.arange(40.0), torch.arange(40.0, 72.0)  # a sample's id as its feature
    trainer = _trainer(epochs=3, batch_size=8)
    chunks = [(ids_a[:, None], torch.zeros(40).long()), (ids_b[:, None], torch.ones(32).long())]
    for chunk in chunks:
        trainer.enqueue_first(*chunk)
    trainer.enqueue_later(chunks)
    batches = [a.flatten() for a, _, _, _ in trainer.queue]
    first, later = batches[:9], batches[9:]  # 5 batches of chunk a, then 4 of chunk b
    assert torch.equal(torch.cat(first), torch.cat([ids_a, ids_b]))
    assert len(later) == 2 * 9
    for p in range(2):  # every later pass holds every sample once
        seen = torch.cat(later[p * 9 : (p + 1) * 9]).sort().values
        assert torch.equal(seen, torch.arange(72.0))
    mixed = [bool((b < 40).any() and (b >= 40).any()) for b in later]
    assert sum(mixed) >= len(later) // 2  # most later batches hold both edges' samples


def test_one_chunk_queues_its_passes_as_enqueue_always_did():
    x, y = torch.arange(20.0)[:, None], torch.arange(20) % 4
    trainer = _trainer(epochs=3, batch_size=8)
    trainer.enqueue(x, y)
    g = torch.Generator().manual_seed(0)  # the trainer's generator, seeded as for_run seeds it
    expected = [torch.arange(20)] + [torch.randperm(20, generator=g) for _ in range(2)]
    got = torch.cat([a.flatten() for a, _, _, _ in trainer.queue]).long()
    assert torch.equal(got, torch.cat(expected))
    assert trainer.queued_bytes == 3 * 20 * 4
