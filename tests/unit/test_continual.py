"""Continual-learning plug-ins: the reservoir, edge replay, cloud replay, freezing, online."""

from __future__ import annotations

import pytest
import torch

from hierfl.boundary import RoundRequest
from hierfl.config import HierConfig
from hierfl.edge.node import run_edge_round
from hierfl.edge.state import latest_edge_state
from hierfl.errors import ConfigError
from hierfl.models import create_model
from hierfl.registry import PARTITIONERS
from hierfl.train.continual import build_continual
from hierfl.train.schedule import round_data
from strategies.buffer import Reservoir
from strategies.continual import CloudReplay, EdgeReplay


def test_reservoir_is_bounded_and_keeps_a_uniform_sample():
    buf = Reservoir(100, seed=0)
    x = torch.arange(10_000).float().view(-1, 1)
    buf.add(x, torch.zeros(10_000, dtype=torch.long), tag=0)
    assert len(buf) == 100 and buf.seen == 10_000
    kept = buf.x.flatten()
    # a uniform sample of 0..9999 has mean ~5000 (std of the mean ~290)
    assert 4000 < float(kept.mean()) < 6000
    assert len(set(kept.tolist())) == 100


def test_reservoir_draws_only_from_earlier_experiences_and_resumes_from_state():
    buf = Reservoir(50, seed=1)
    buf.add(torch.zeros(30, 2), torch.zeros(30, dtype=torch.long), tag=0)
    buf.add(torch.ones(30, 2), torch.ones(30, dtype=torch.long), tag=1)
    x, y = buf.sample(64, before=1)
    assert torch.equal(y, torch.zeros(64, dtype=torch.long)) and float(x.sum()) == 0.0
    assert buf.sample(5, before=0) is None
    copy = Reservoir(50, seed=99)
    copy.load_state_dict(buf.state_dict())
    assert torch.equal(copy.sample(10, before=2)[1], buf.sample(10, before=2)[1])


def test_edge_replay_mixes_old_samples_into_every_batch():
    replay = EdgeReplay(20, seed=0)
    replay.observe(torch.zeros(10, 1), torch.full((10,), 3), experience=0)
    batches = [(torch.ones(4, 1), torch.full((4,), 7))] * 3
    assert replay.batches(batches, experience=0) == batches  # nothing older yet
    mixed = replay.batches(batches, experience=1)
    for _x, y in mixed:
        assert y.tolist() == [7] * 4 + [3] * 4


def test_cloud_replay_keeps_only_each_experience_last_round():
    replay = CloudReplay(100, seed=0)
    replay.observe(torch.full((5, 2), 1.0), torch.zeros(5, dtype=torch.long), experience=0, round=0)
    replay.observe(torch.full((5, 2), 2.0), torch.zeros(5, dtype=torch.long), experience=0, round=1)
    replay.end_experience(0)
    a, y = replay.batch(torch.zeros(3, 2), torch.ones(3, dtype=torch.long), experience=1)
    assert a.shape == (6, 2) and torch.equal(a[3:], torch.full((3, 2), 2.0))


def test_strategies_combine_by_name_and_unknown_names_are_rejected():
    continual = build_continual(HierConfig(cl="edge-replay+cloud-replay"))
    assert continual.names == ("edge-replay", "cloud-replay")
    assert len(continual.edge) == 1 and len(continual.cloud) == 1
    with pytest.raises(ConfigError, match="cl: unknown value 'ewc-9000'"):
        HierConfig(cl="edge-replay+ewc-9000").validate()


def _stream(bench, **kw):
    return PARTITIONERS.plugin("iid").make(bench, partition_id=0, num_partitions=1, seed=0)


def test_frozen_edge_segment_does_not_move_but_its_exit_does(digits_benchmark, tmp_path):
    config = HierConfig(experiences=2, rounds=1, local_epochs=1, freeze_edge_after=0, bottleneck=0)
    stream = _stream(digits_benchmark)
    start = create_model("small-cnn", cut="", num_classes=10, input_shape=(1, 8, 8), seed=0)
    state = start.edge.state_dict()
    result = run_edge_round(config, RoundRequest(1, 0), state, stream, tmp_path)
    for k, v in result.edge_state.items():
        if k.startswith("segment."):
            assert torch.equal(v, state[k]), k
    assert any(
        not torch.equal(v, state[k]) for k, v in result.edge_state.items() if k.startswith("exit.")
    )


def test_online_rounds_see_every_sample_exactly_once(digits_benchmark):
    config = HierConfig(experiences=2, rounds=4, online=True, batch_size=16)
    stream = _stream(digits_benchmark)
    seen = torch.cat([round_data(config, stream, RoundRequest(0, r))[1] for r in range(4)])
    assert len(seen) == len(stream.experiences[0])
    assert sorted(seen.tolist()) == sorted(stream.experiences[0].y.tolist())


def test_edge_replay_raw_samples_stay_on_the_edge(digits_benchmark, tmp_path):
    config = HierConfig(experiences=2, rounds=1, local_epochs=1, cl="edge-replay", bottleneck=0)
    stream = _stream(digits_benchmark)
    model = create_model("small-cnn", cut="", num_classes=10, input_shape=(1, 8, 8), seed=0)
    state = model.edge.state_dict()
    run_edge_round(config, RoundRequest(0, 0), state, stream, tmp_path)
    result = run_edge_round(config, RoundRequest(1, 0), state, stream, tmp_path)
    chunk = result.chunk
    # the chunk holds activations (64x4x4), never pixels, for new and replayed samples alike
    assert chunk.activations.shape[1:] == (64, 4, 4) and not chunk.raw
    old = set(digits_benchmark.train[0].classes)
    assert old & set(chunk.labels.tolist())  # replayed classes travel as activations
    saved = latest_edge_state(tmp_path)
    assert saved["continual"]["0"]["x"].shape[1:] == (1, 8, 8)  # the buffer: on the device
    assert len(saved["continual"]["0"]["y"]) <= config.settings("edge-replay").size


def test_lwf_distils_the_previous_experience_exit():
    from strategies.lwf import LwF

    model = create_model("small-cnn", cut="", num_classes=10, input_shape=(1, 8, 8), seed=0)
    lwf = LwF()
    x = torch.rand(8, 1, 8, 8)
    lwf.observe(x, torch.tensor([1, 4] * 4), experience=0)
    lwf.begin_round(model.edge, experience=0)
    assert lwf.loss(x, model.edge(x), torch.zeros(8), experience=0) == 0.0  # no teacher yet
    lwf.begin_round(model.edge, experience=1)  # snapshot: student == teacher
    assert float(lwf.loss(x, model.edge(x), torch.zeros(8), experience=1).detach()) < 1e-6
    with torch.no_grad():
        model.edge.exit[-1].weight.add_(torch.randn_like(model.edge.exit[-1].weight))
    drifted = lwf.loss(x, model.edge(x), torch.zeros(8), experience=1)
    assert float(drifted.detach()) > 1e-3 and drifted.requires_grad
    restored = LwF()
    restored.load_state_dict(lwf.state_dict())
    restored.begin_round(model.edge, experience=1)  # same experience: keeps the old teacher
    torch.testing.assert_close(restored.loss(x, model.edge(x), None, experience=1), drifted)


@pytest.mark.parametrize(
    ("mode", "cl"),
    [("split", "edge-replay"), ("cloud", "lwf"), ("split", "ewc"), ("edge", "cloud-replay")],
)
def test_a_strategy_the_mode_cannot_run_is_a_config_error(mode, cl):
    with pytest.raises(ConfigError) as err:
        HierConfig(mode=mode, cl=cl).validate()
    assert err.value.key == "cl" and mode in str(err.value)


@pytest.mark.parametrize(
    ("mode", "cl"), [("split", "cloud-replay"), ("cloud", "cloud-replay"), ("edge", "ewc")]
)
def test_strategies_that_fit_the_mode_validate(mode, cl):
    HierConfig(mode=mode, cl=cl).validate()


def test_split_replay_returns_the_gradient_of_the_edges_own_samples():
    """Replayed activations join the cloud's step but leave the edge's gradient unchanged."""
    from hierfl.cloud.trainer import CloudTrainer
    from hierfl.train.continual import Continual

    model = create_model("small-cnn", cut="", num_classes=4, input_shape=(1, 8, 8), seed=0)
    a_old = model.edge(torch.randn(16, 1, 8, 8)).activations.detach()
    replay = CloudReplay(64, seed=0)
    replay.observe(a_old, torch.tensor([0, 1] * 8), experience=0, round=0)
    replay.end_experience(0)
    a = model.edge(torch.randn(8, 1, 8, 8)).activations.detach()
    y = torch.tensor([2, 3] * 4)
    plain = CloudTrainer(
        create_model("small-cnn", cut="", num_classes=4, input_shape=(1, 8, 8), seed=0).cloud,
        lr=0.01,
        optimizer="sgd",
    )
    mixed = CloudTrainer(
        model.cloud,
        lr=0.01,
        optimizer="sgd",
        continual=Continual(("cloud-replay",), cloud=[replay]),
    )
    expected = plain.train_batch_grad(a, y)
    got = mixed.train_batch_grad(a, y, experience=1, round=0)
    torch.testing.assert_close(got, expected)
    assert mixed.stats.examples == 16 and plain.stats.examples == 8  # replay was trained on
