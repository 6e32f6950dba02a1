"""Edges at several depths and one cloud (``hierfl.models.depths``), for every model and cut:
the edge at any cut plus the cloud's part after it is the monolithic network, and the cloud's
loss reaches no edge and none of the cloud's layers before the chunk's cut."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from hierfl.cloud.trainer import CloudTrainer
from hierfl.errors import ConfigError
from hierfl.models import create_model, list_models
from hierfl.models.depths import FleetModel, cloud_from, from_fleet, to_fleet
from hierfl.registry import MODELS

INPUT_SHAPES = {"small-cnn": (1, 8, 8), "vgg16": (3, 32, 32), "resnet18": (3, 32, 32)}
CASES = [(name, cut) for name in list_models() for cut in MODELS.get(name).cut_points]


def _build(name: str, cut: str, **kwargs) -> nn.Module:
    shape = INPUT_SHAPES.get(name, (3, 32, 32))
    return create_model(name, cut=cut, num_classes=10, input_shape=shape, seed=5, **kwargs)


def _input(name: str) -> torch.Tensor:
    return torch.rand(
        4, *INPUT_SHAPES.get(name, (3, 32, 32)), generator=torch.Generator().manual_seed(1)
    )


@pytest.mark.parametrize(("name", "cut"), CASES)
def test_two_edges_at_different_cuts_and_one_cloud_equal_the_monolithic_network(name, cut):
    first = MODELS.get(name).cut_points[0]
    cloud_model = _build(name, first)  # the fleet's shallowest cut: the cloud holds the rest
    shallow, deep = _build(name, first), _build(name, cut)  # two edges, the same seed
    x = _input(name)
    # train mode: BatchNorm normalises with the batch's own statistics, not the identity
    expected = cloud_model.train()(x)
    for edge in (shallow, deep):
        activations = edge.train().forward_edge(x).activations
        got = cloud_from(cloud_model, edge.cut)(activations)
        torch.testing.assert_close(got, expected)


@pytest.mark.parametrize(("name", "cut"), CASES)
def test_the_cloud_loss_reaches_no_edge_and_no_cloud_layer_before_the_cut(name, cut):
    cuts = MODELS.get(name).cut_points
    cloud_model, edge = _build(name, cuts[0]), _build(name, cut)
    activations = edge.forward_edge(_input(name)).activations
    part = cloud_from(cloud_model, cut)
    loss = nn.functional.cross_entropy(part(activations.detach()), torch.tensor([0, 1, 2, 3]))
    loss.backward()
    assert all(p.grad is None for p in edge.edge.parameters())
    trained = {id(p) for p in part.parameters()}
    for p in cloud_model.cloud.parameters():
        assert (p.grad is not None) == (id(p) in trained)
    before = cuts.index(cut) - cuts.index(cuts[0])  # the cloud's modules the chunk skips
    assert len(list(cloud_model.cloud.children())) == len(list(part.children())) + before


def test_a_cut_the_cloud_does_not_hold_is_refused():
    cloud_model = _build("small-cnn", "block2")
    with pytest.raises(ConfigError, match="shallower than the cloud's block2"):
        cloud_from(cloud_model, "block1")
    with pytest.raises(ConfigError, match="unknown cut 'block9'"):
        cloud_from(cloud_model, "block9")
    with pytest.raises(ConfigError, match="without a bottleneck"):
        cloud_from(_build("small-cnn", "block1", bottleneck=4), "block2")


def _fleet(name: str, cuts: tuple[str, ...], bottleneck: int = 0) -> FleetModel:
    return FleetModel({c: _build(name, c, bottleneck=bottleneck) for c in cuts})


@pytest.mark.parametrize("bottleneck", [0, 2])
@pytest.mark.parametrize(("name", "cut"), CASES)
def test_a_fleet_model_at_each_depth_is_that_depths_monolithic_network(name, cut, bottleneck):
    """The cloud's model of a fleet (the first cut and ``cut``): loading one depth's weights,
    its two exits equal that depth's own model built alone (a bottleneck's decoder too)."""
    first = MODELS.get(name).cut_points[0]
    cuts = tuple(dict.fromkeys((first, cut)))
    fleet = _fleet(name, cuts, bottleneck).train()
    x = _input(name)
    for c in cuts:
        alone = _build(name, c, bottleneck=bottleneck).train()
        weights = to_fleet(alone.edge_state(), c, coded=bool(bottleneck))
        fleet.edge.load_state_dict(weights)
        assert fleet.active == c
        out = fleet.forward_edge(x)
        expected = alone.forward_edge(x)
        torch.testing.assert_close(out.exit_logits, expected.exit_logits)
        torch.testing.assert_close(fleet.forward_cloud(out.activations), alone(x))


@pytest.mark.parametrize("name", list_models())
def test_a_fleets_shared_layers_keep_their_names_and_each_depths_own_are_apart(name):
    cuts = MODELS.get(name).cut_points
    states = {c: _build(name, c, bottleneck=2).edge_state() for c in (cuts[0], cuts[-1])}
    named = {c: to_fleet(s, c, coded=True) for c, s in states.items()}
    shared = set(named[cuts[0]]) & set(named[cuts[-1]])
    # the shallow edge's backbone is shared with the deep one, bit for bit (the same seed)
    backbone = {k for k in named[cuts[0]] if k.startswith("segment.0.")}
    assert shared == backbone and backbone
    for k in shared:
        torch.testing.assert_close(named[cuts[0]][k], named[cuts[-1]][k])
    # the exit and the encoder are each depth's own; the deep edge's deeper layers are shared
    # names too (an edge at a third cut between them would share some)
    for c, state in named.items():
        own = {k for k in state if not k.startswith("segment.0.")}
        assert own and all(k.startswith(f"{c}:") for k in own)
    union = {**named[cuts[0]], **named[cuts[-1]]}
    for c, state in states.items():
        back = from_fleet(union, state, c, coded=True)
        assert back.keys() == state.keys()
        assert all(torch.equal(back[k], state[k]) for k in state)
    with pytest.raises(ConfigError, match="disagree on the edges' cuts"):
        from_fleet(named[cuts[0]], states[cuts[-1]], cuts[-1], coded=True)


@pytest.mark.parametrize("name", list_models())
def test_the_fleets_cloud_trains_each_chunk_from_its_cut_and_reaches_no_edge(name):
    """Chunks of two depths queued in one ``CloudTrainer``: each enters the cloud at its own cut
    (their shapes differ: a wrong route fails), every edge weight stays as it was, and only the
    chunk's own decoder learns from it."""
    cuts = MODELS.get(name).cut_points
    fleet = _fleet(name, (cuts[0], cuts[-1]), bottleneck=2)
    x, y = _input(name), torch.tensor([0, 1, 2, 3])
    shallow = fleet.depth(cuts[0]).forward_edge(x).activations.detach()  # as the wire ships
    deep = fleet.depth(cuts[-1]).forward_edge(x).activations.detach()
    edges_before = fleet.edge_state(copy=True)
    decoders_before = {
        c: [p.clone() for p in d.parameters()] for c, d in fleet.cloud.decoders.items()
    }
    trainer = CloudTrainer(fleet.cloud, lr=0.1, batch_size=4)
    trainer.enqueue_first(shallow, y, depth=cuts[0])
    trainer.drain()
    assert trainer.stats.batches == 1
    assert all(p.grad is None for p in fleet.edge.parameters())
    for k, v in fleet.edge_state().items():
        assert torch.equal(v, edges_before[k]), k
    moved = {
        c: any(
            not torch.equal(p, q) for p, q in zip(d.parameters(), decoders_before[c], strict=True)
        )
        for c, d in fleet.cloud.decoders.items()
    }
    assert moved == {cuts[0]: True, cuts[-1]: False}
    trainer.enqueue_first(deep, y, depth=cuts[-1])
    trainer.drain()
    assert trainer.stats.batches == 2


def test_the_cloud_counts_what_it_trained_on_from_each_depth():
    """``depth_figures``: examples and mean loss per cut, over the whole run or since a
    snapshot; the run-wide totals count every depth."""
    cuts = MODELS.get("small-cnn").cut_points
    shallow, deep = cuts[0], cuts[-1]
    fleet = _fleet("small-cnn", (shallow, deep), bottleneck=2)
    x, y = _input("small-cnn"), torch.tensor([0, 1, 2, 3])
    acts = {c: fleet.depth(c).forward_edge(x).activations.detach() for c in (shallow, deep)}
    trainer = CloudTrainer(fleet.cloud, lr=0.1, batch_size=4)
    first = trainer.train_batch(acts[shallow], y, depth=shallow)
    second = trainer.train_batch(acts[shallow][:2], y[:2], depth=shallow)
    before = trainer.depth_snapshot()
    third = trainer.train_batch(acts[deep], y, depth=deep)
    figures = trainer.depth_figures()
    assert figures[shallow]["examples"] == 6
    assert figures[shallow]["loss"] == pytest.approx((4 * first + 2 * second) / 6)
    assert figures[deep]["examples"] == 4 and figures[deep]["loss"] == pytest.approx(third)
    assert all(0.0 <= f["accuracy"] <= 1.0 for f in figures.values())
    assert trainer.depth_figures(before) == {
        shallow: {"examples": 0, "loss": 0.0, "accuracy": 0.0},
        deep: figures[deep],
    }
    assert trainer.stats.examples == 10 and trainer.stats.batches == 3


def test_later_passes_interleave_the_depths_of_a_round():
    """``enqueue_later_depths``: every depth's later passes are queued (a mini-batch for each
    of its samples' passes), in one order across depths, not one depth after the other."""
    trainer = CloudTrainer(nn.Identity(), lr=0.1, batch_size=2, epochs=3, seed=0)
    later = {
        "a": [(torch.zeros(6, 3), torch.arange(6)), (torch.zeros(2, 3), torch.arange(2))],
        "b": [(torch.ones(4, 5), torch.arange(4))],
    }
    trainer.enqueue_later_depths(later, experience=1)
    depths = [depth for _, _, _, depth in trainer.queue]
    assert depths.count("a") == 2 * 4 and depths.count("b") == 2 * 2  # 2 passes, batches of 2
    assert depths != sorted(depths) and depths != sorted(depths, reverse=True)
    for a, y, experience, depth in trainer.queue:  # each batch whole, from its own depth
        assert experience == 1 and len(y) == 2 and a.shape[1] == (3 if depth == "a" else 5)
    single = CloudTrainer(nn.Identity(), lr=0.1, batch_size=2, epochs=3, seed=0)
    single.enqueue_later_depths({"": later["a"]})
    alone = CloudTrainer(nn.Identity(), lr=0.1, batch_size=2, epochs=3, seed=0)
    alone.enqueue_later(later["a"])
    assert [y.tolist() for _, y, _, _ in single.queue] == [y.tolist() for _, y, _, _ in alone.queue]
