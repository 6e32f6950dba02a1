"""Edges at their own cuts (``per-edge``): each edge's config, the refusals, and averaging only
what edges share: the shared layers among all, each depth's own among the edges at that depth."""

from __future__ import annotations

import itertools
import math
from types import SimpleNamespace

import pytest
import torch
from flwr.serverapp import strategy as fs

from hierfl.analysis.fleet import per_edge_value
from hierfl.app.aggregation import shared_groups
from hierfl.app.grid_federation import GridFederation
from hierfl.app.inprocess import ensure_task_identity
from hierfl.app.protocol import encode_result
from hierfl.boundary import EdgeChunk, RoundRequest, RoundResult
from hierfl.config import HierConfig
from hierfl.errors import ConfigError
from hierfl.results.summary import summary_lines

FP32 = {"weight-codec": "fp32"}


def _config(per_edge: str, **extra) -> HierConfig:
    return HierConfig.from_mapping({"per-edge": per_edge, **FP32, **extra}).validate()


def test_each_edge_takes_its_own_values_cycling_over_the_partitions():
    config = _config("cut=block3,block1;edge-slowdown=1,4,16;bitrate=1e6", clients=4)
    edges = [config.for_edge(p) for p in range(4)]
    assert [e.cut for e in edges] == ["block3", "block1", "block3", "block1"]
    assert [e.edge_slowdown for e in edges] == [1.0, 4.0, 16.0, 1.0]
    assert {e.bitrate for e in edges} == {1e6}
    assert config.fleet_cuts == ("block1", "block3")  # shallowest first, as the model orders
    assert config.cut == "" and config.edge_slowdown == 1.0  # the cloud's own stay
    assert _config("edge-slowdown=2,3").fleet_cuts == ()  # one cut for all: no fleet
    assert config.edge_cuts == ("block3", "block1", "block3", "block1")
    assert [config.edge_cut(p) for p in (0, 1, 5)] == ["block3", "block1", "block1"]
    assert _config("edge-slowdown=2,3", cut="block2").edge_cuts == ("block2",) * 3


def test_the_per_edge_value_written_for_a_fleet_reads_back_as_its_edges():
    text = per_edge_value(["block3", "block1"], [1, 4.5], [1e6, 2.5e5], latencies=[0, 0.02])
    assert text == "cut=block3,block1;edge-slowdown=1,4.5;bitrate=1e+06,250000;latency=0,0.02"
    edges = [_config(text, clients=2).for_edge(p) for p in range(2)]
    assert [(e.cut, e.edge_slowdown, e.bitrate, e.latency) for e in edges] == [
        ("block3", 1.0, 1e6, 0.0),
        ("block1", 4.5, 2.5e5, 0.02),
    ]
    assert "latency" not in per_edge_value(["block1"], [1], [1e6], latencies=[0])


@pytest.mark.parametrize(
    ("per_edge", "extra", "message"),
    [
        ("cut=block1,nope", {}, "partition 1's cut: unknown cut 'nope'"),
        ("edge-slowdown=1,0.5", {}, "partition 1's edge-slowdown: must be >= 1"),
        ("rounds=2", {}, "'rounds' is not a per-edge key"),
        ("cut=block1;cut=block2", {}, "'cut' repeats"),
        ("cut=", {}, "expected KEY=V0,V1,..."),
        ("cut=block1,block3", {"mode": "split"}, "need mode=hierarchical"),
        ("cut=block1,block3", {"cl": "cloud-replay"}, "continual methods on the edge side"),
    ],
)
def test_what_per_edge_refuses_is_named(per_edge, extra, message):
    with pytest.raises(ConfigError, match="per-edge") as err:
        HierConfig.from_mapping({"per-edge": per_edge, **FP32, **extra}).validate()
    assert message in str(err.value)


def test_weights_are_grouped_by_the_edges_that_hold_them():
    states = [
        {"segment.w": 0, "a:exit.w": 0},
        {"segment.w": 0, "a:exit.w": 0},
        {"segment.w": 0, "segment.deep": 0, "b:exit.w": 0},
    ]
    groups = {names: members for names, members in shared_groups(states)}  # type: ignore[misc]
    assert groups == {
        ("segment.w",): [0, 1, 2],
        ("a:exit.w",): [0, 1],
        ("segment.deep", "b:exit.w"): [2],
    }
    assert shared_groups(states[:2]) == [(("segment.w", "a:exit.w"), [0, 1])]


def t(v: float) -> torch.Tensor:
    return torch.full((2,), v)


def _two_depths() -> list[dict[str, torch.Tensor]]:
    """Edges 0 and 1 at depth a, edge 2 at the deeper b (a layer of its own: segment.deep)."""
    return [
        {"segment.w": t(1), "a:exit.w": t(1)},
        {"segment.w": t(3), "a:exit.w": t(3)},
        {"segment.w": t(8), "segment.deep": t(8), "b:exit.w": t(8)},
    ]


class _Grid:
    """A node per entry of ``states`` (partition = node - 11), its reply's weights."""

    def __init__(self, states: list[dict[str, torch.Tensor]], request: RoundRequest):
        self.states, self.request = states, request
        self.ids, self.inbox = itertools.count(), []

    def get_node_ids(self):
        return [11 + i for i in range(len(self.states))]

    def push_messages(self, messages):
        ids = []
        for msg in messages:
            mid, partition = f"m{next(self.ids)}", msg.metadata.dst_node_id - 11
            chunk = EdgeChunk(torch.zeros(4, 3), torch.tensor([0, 1, 2, 3]), 1, 0.5, 2, 0.01)
            result = RoundResult(partition, 0, 0, self.states[partition], chunk)
            self.inbox.append(
                SimpleNamespace(
                    metadata=SimpleNamespace(reply_to_message_id=mid),
                    has_error=lambda: False,
                    content=encode_result(result),
                )
            )
            ids.append(mid)
        return ids

    def pull_messages(self, ids):
        out, self.inbox = self.inbox, []
        return out


def test_only_what_edges_share_is_averaged_and_a_private_layer_is_the_edges_own(
    fedavg_strategy,
):
    states = _two_depths()
    dispatched = {"segment.w": t(0), "segment.deep": t(0), "a:exit.w": t(0), "b:exit.w": t(0)}
    dispatched["c:exit.w"] = t(7)  # a depth no edge trained this round
    request = RoundRequest(0, 0)
    fed = GridFederation(_Grid(states, request), fedavg_strategy, message_ttl=60)
    fed.dispatch(request, dispatched)
    assert len(fed.poll()) == 3
    got = fed.aggregate()
    assert got is not None
    expected = {
        "segment.w": t(4),  # (1 + 3 + 8) / 3: every edge holds it
        "a:exit.w": t(2),  # (1 + 3) / 2: the edges at a only
        "b:exit.w": t(8),  # the one edge at b: untouched by the others' updates
        "segment.deep": t(8),  # the deeper layer only the edge at b has
        "c:exit.w": t(7),  # as dispatched
    }
    assert got.keys() == expected.keys()
    for name, value in expected.items():
        torch.testing.assert_close(got[name], value, msg=name)


def test_a_round_with_the_edges_of_one_depth_only_keeps_the_other_depths_weights(
    fedavg_strategy,
):
    """With ``clients-per-round`` a round may sample the edges of one depth only: the other
    depths' weights stay as dispatched (a fleet's aggregate keeps every depth's)."""

    states = [{"segment.w": t(v), "a:exit.w": t(v)} for v in (1, 3, 5)]
    dispatched = {"segment.w": t(0), "a:exit.w": t(0), "segment.deep": t(6), "b:exit.w": t(7)}
    request = RoundRequest(0, 0)
    fed = GridFederation(_Grid(states, request), fedavg_strategy, message_ttl=60)
    fed.dispatch(request, dispatched)
    assert len(fed.poll()) == 3
    got = fed.aggregate()
    assert got is not None and got.keys() == dispatched.keys()
    expected = {"segment.w": t(3), "a:exit.w": t(3), "segment.deep": t(6), "b:exit.w": t(7)}
    for name, value in expected.items():
        torch.testing.assert_close(got[name], value, msg=name)


def _fedadam() -> fs.FedAdam:
    ensure_task_identity(0)  # Flower's Message needs one outside a Flower runtime
    nodes = {"min_train_nodes": 1, "min_available_nodes": 1, "min_evaluate_nodes": 0}
    return fs.FedAdam(eta=0.1, beta_1=0.9, beta_2=0.99, tau=1e-3, fraction_evaluate=0, **nodes)


def _adam_first_step(dispatched: float, mean: float) -> float:
    """FedAdam's first server step (Reddi et al. 2021; Flower's bias-corrected rate at server
    round 1) from ``dispatched`` towards the round's mean ``mean``."""
    delta = mean - dispatched
    m, v = 0.1 * delta, 0.01 * delta**2
    eta = 0.1 * math.sqrt(1 - 0.99**2) / (1 - 0.9**2)
    return dispatched + eta * m / (math.sqrt(v) + 1e-3)


@pytest.mark.parametrize("depths", ["both", "one", "one cut"])
def test_a_strategy_with_server_state_steps_once_over_the_grouped_mean(depths):
    """FedAdam with edges at two depths (or a sampled round with one): each name's mean among
    the edges that hold it, then one Adam step over every name; a name no edge trained has
    no change and stays. With one cut, the plain FedAdam step. The weights stay float32."""

    states = _two_depths()
    means = {"segment.w": 4.0, "a:exit.w": 2.0, "segment.deep": 8.0, "b:exit.w": 8.0}
    if depths == "one":
        states = states[:2]
        means = {"segment.w": 2.0, "a:exit.w": 2.0, "segment.deep": 0.5, "b:exit.w": 0.5}
    start = {"segment.w": 0.0, "segment.deep": 0.5, "a:exit.w": 0.0, "b:exit.w": 0.5}
    if depths == "one cut":  # every edge holds every weight: the strategy's own path
        states, means = states[:2], {"segment.w": 2.0, "a:exit.w": 2.0}
        start = {name: start[name] for name in means}
    dispatched = {name: t(v) for name, v in start.items()}
    request = RoundRequest(0, 0)
    fed = GridFederation(_Grid(states, request), _fedadam(), message_ttl=60, server_state=True)
    fed.dispatch(request, dispatched)
    assert len(fed.poll()) == len(states)
    got = fed.aggregate()
    assert got is not None and got.keys() == dispatched.keys()
    for name, mean in means.items():
        expected = t(_adam_first_step(start[name], mean))
        # float32 as dispatched, though Flower's server optimizer computes in float64
        torch.testing.assert_close(got[name], expected, msg=name)


def test_a_sampled_fleet_runs_in_process(tmp_path):
    """Four edges at two depths, two a round (some rounds ask one depth only), the default
    compressed exchange: the run completes without events and keeps both depths' exits."""
    import hierfl
    from hierfl.cloud.checkpoint import load_checkpoint

    run = {
        "clients": 4,
        "clients-per-round": 2,
        "experiences": 1,
        "rounds": 4,
        "local-epochs": 1,
        "per-edge": "cut=block1,block3",  # partitions 0, 2 at block1; 1, 3 at block3
    }
    result = hierfl.run(run, out=tmp_path / "run")
    assert result.metrics["status"] == "completed" and result.metrics["events"] == []
    fleet = load_checkpoint(tmp_path / "run").edge_state
    assert any(k.startswith("block1:exit.") for k in fleet)
    assert any(k.startswith("block3:exit.") for k in fleet)
    metrics = result.metrics
    depths = metrics["per_depth"]
    assert list(depths) == ["block1", "block3"]
    assert [depths[c]["partitions"] for c in depths] == [[0, 2], [1, 3]]
    for cut, row in depths.items():  # each depth's edges' own final accuracy, averaged
        assert row["evaluated"] == [p for p in row["partitions"] if str(p) in metrics["per_client"]]
        own = [metrics["per_client"][str(p)]["final"] for p in row["evaluated"]]
        for key in ("cloud_accuracy", "edge_accuracy"):
            assert row[key] == pytest.approx(sum(f[key] for f in own) / len(own))
        by_round = [r["cloud_by_depth"].get(cut, {"examples": 0}) for r in metrics["rounds"]]
        assert row["cloud_train"]["examples"] == sum(r["examples"] for r in by_round) > 0
    # one pass over every shipped sample (ship=every-epoch, one local epoch), split by depth
    shipped = sum(r["examples"] for r in metrics["rounds"])
    assert sum(row["cloud_train"]["examples"] for row in depths.values()) == shipped
    lines = summary_lines(metrics, None)
    assert [line.split(":")[0] for line in lines if line.startswith("at ")] == [
        "at block1 (edges 0, 2)",
        "at block3 (edges 1, 3)",
    ]
