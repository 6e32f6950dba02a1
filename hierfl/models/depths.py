"""One cloud for edges at several depths, and the fleet's edge weights under one set of names.

Edges of a fleet may cut the network at different points (a weak device early, a strong one
late). The cloud is built at the shallowest cut, so it holds every layer any edge leaves to it;
a chunk cut deeper runs only the cloud's layers after its own cut. This relies on the
split-model contract of every registered model (``hierfl.models.base.SplitModel``): the cloud
is an ``nn.Sequential`` and each later cut point moves its first module to the edge segment,
so the modules after cut ``c`` are the cloud's modules from position ``index(c) -
index(model.cut)`` on. ``tests/contract/test_depths.py`` checks it for every model and cut.

The fleet's edge weights (``fleet_name``): the layers every edge has up to its cut keep their
names (``segment.*``; ``segment.0.*`` with a bottleneck, whose encoder is ``segment.1``), so
edges average them across depths; the rest, the exit head and a bottleneck's encoder, is named
``CUT:NAME``, averaged only among the edges at that cut. ``FleetModel`` is the cloud's model of
such a fleet: one ``DepthCloud`` and each depth's edge.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import replace
from typing import Any

import torch
from torch import nn

from hierfl.errors import ConfigError
from hierfl.models.base import EdgeOutput, SplitModel
from hierfl.models.factory import model_for


def cloud_from(model: SplitModel, cut: str) -> nn.Sequential:
    """The cloud's layers after ``cut`` (``model``'s own cut or a deeper one), sharing their
    parameters with ``model.cloud``: training it trains the cloud.

    Raises:
        ConfigError: ``cut`` is not one of the model's cut points, is shallower than the
            model's own cut, or the model has a bottleneck at its cut (its cloud starts with
            the decoder of that cut's codes) or a cloud that is not an ``nn.Sequential``.
    """
    cuts = type(model).cut_points
    if cut not in cuts:
        raise ConfigError("cut", f"unknown cut {cut!r}; allowed: {', '.join(cuts)}")
    skip = cuts.index(cut) - cuts.index(model.cut)
    if skip < 0:
        raise ConfigError(
            "cut",
            f"{cut} is shallower than the cloud's {model.cut}: the cloud is built at the "
            "fleet's shallowest cut",
        )
    if model.bottleneck is not None:
        raise ConfigError(
            "bottleneck", "edges at several depths need the cloud without a bottleneck"
        )
    if not isinstance(model.cloud, nn.Sequential):
        raise ConfigError(
            "model",
            f"{type(model).__name__}'s cloud is not an nn.Sequential: edges at several depths "
            "need one whose modules follow the cut points",
        )
    return model.cloud[skip:]


def fleet_name(name: str, cut: str, *, coded: bool) -> str:
    """Edge weight ``name`` of an edge at ``cut`` in the fleet's weights: the backbone's as it
    is (shared by every depth that has it), the exit's and encoder's as ``CUT:NAME``."""
    return name if name.startswith("segment.0." if coded else "segment.") else f"{cut}:{name}"


def to_fleet(state: Mapping[str, Any], cut: str, *, coded: bool) -> dict[str, Any]:
    """An edge's weights under the fleet's names."""
    return {fleet_name(k, cut, coded=coded): v for k, v in state.items()}


def from_fleet(state: Mapping[str, Any], names: Any, cut: str, *, coded: bool) -> dict[str, Any]:
    """The weights ``names`` (an edge at ``cut``'s own) taken from the fleet's ``state``.

    Raises:
        ConfigError: ``state`` lacks one of them (weights of another fleet).
    """
    wanted = {k: fleet_name(k, cut, coded=coded) for k in names}
    missing = sorted(v for v in wanted.values() if v not in state)
    if missing:
        raise ConfigError(
            "per-edge",
            f"the fleet's weights lack {', '.join(missing[:3])} for an edge at {cut}: the "
            "cloud and the edge disagree on the edges' cuts",
        )
    return {k: state[v] for k, v in wanted.items()}


class DepthCloud(nn.Module):
    """The cloud of a fleet: ``trunk`` built at the shallowest cut, entered at each chunk's
    own cut, after that cut's decoder where edges code their activations (a bottleneck)."""

    def __init__(self, trunk: nn.Sequential, skip: Mapping[str, int], decoders: nn.ModuleDict):
        super().__init__()
        self.trunk, self.skip, self.decoders = trunk, dict(skip), decoders

    def forward(self, activations: torch.Tensor, cut: str) -> torch.Tensor:
        if cut not in self.skip:
            raise ValueError(f"no edge of this fleet cuts at {cut!r}; its cuts: {list(self.skip)}")
        if cut in self.decoders:
            activations = self.decoders[cut](activations)
        out: torch.Tensor = self.trunk[self.skip[cut] :](activations)
        return out


class _AtDepth(nn.Module):
    """``DepthCloud`` entered at one cut: one depth's cloud as a plain module."""

    def __init__(self, cloud: DepthCloud, cut: str) -> None:
        super().__init__()
        self.cloud, self.cut = cloud, cut

    def forward(self, activations: torch.Tensor) -> torch.Tensor:
        out: torch.Tensor = self.cloud(activations, self.cut)
        return out


class _FleetEdge(nn.Module):
    """Each depth's edge; loading fleet-named weights picks the depth they belong to."""

    def __init__(self, depths: Mapping[str, SplitModel], coded: bool) -> None:
        super().__init__()
        self.depths = nn.ModuleDict({c: m.edge for c, m in depths.items()})
        self.coded, self.active = coded, next(iter(depths))

    def load_state_dict(self, state: Mapping[str, Any], strict: bool = True, assign: bool = False):  # type: ignore[override]
        cuts = {k.partition(":")[0] for k in state if ":" in k}
        if len(cuts) != 1 or not cuts <= set(self.depths):
            raise ValueError(f"expected the weights of one of {list(self.depths)}, got {cuts}")
        self.active = cuts.pop()
        edge = self.depths[self.active]
        own = from_fleet(state, edge.state_dict(), self.active, coded=self.coded)
        return edge.load_state_dict(own, strict=strict, assign=assign)

    def forward(self, x: torch.Tensor) -> EdgeOutput:
        out: EdgeOutput = self.depths[self.active](x)
        return out


class FleetModel(SplitModel):
    """The cloud's model of edges at several depths (``cuts``, shallowest first): one
    ``DepthCloud`` and each depth's edge (``depth(cut)``: that depth as a ``SplitModel``).

    ``edge.load_state_dict`` takes one depth's fleet-named weights and makes that depth the
    one ``forward_edge`` and ``forward_cloud`` run: the evaluation loads one edge's weights at a
    time (``hierfl.train.evaluate``). ``edge_state`` is every depth's, fleet-named.
    """

    def __init__(self, depths: Mapping[str, SplitModel]) -> None:
        cuts = tuple(depths)
        first = depths[cuts[0]]
        coded = first.bottleneck is not None
        # with a bottleneck each depth's cloud is (its decoder, the plain cloud at its cut)
        trunk = first.cloud[1] if coded else first.cloud  # type: ignore[index]
        if not isinstance(trunk, nn.Sequential):
            raise ConfigError(
                "model",
                f"{type(first).__name__}'s cloud is not an nn.Sequential: edges at several "
                "depths need one whose modules follow the cut points",
            )
        order = type(first).cut_points
        skip = {c: order.index(c) - order.index(cuts[0]) for c in cuts}
        decoders = nn.ModuleDict(
            {c: m.cloud[0] for c, m in depths.items()} if coded else {}  # type: ignore[index]
        )
        cloud = DepthCloud(trunk, skip, decoders)
        edge = _FleetEdge(depths, coded)
        super().__init__(
            edge,  # type: ignore[arg-type]
            cloud,
            cut=cuts[0],
            num_classes=first.num_classes,
            input_shape=first.input_shape,  # type: ignore[arg-type]
        )
        self.cuts, self.coded, self.bottleneck = cuts, coded, first.bottleneck
        self._edge = edge
        self._depths = {
            c: _view(m, _AtDepth(cloud, c)) for c, m in depths.items()
        }  # not submodules: their parameters are the edge's and the cloud's

    def depth(self, cut: str) -> SplitModel:
        """The fleet at ``cut``: that depth's edge before the shared cloud."""
        return self._depths[cut]

    @property
    def active(self) -> str:
        """The depth whose weights the edge loaded last."""
        return self._edge.active

    def forward_cloud(self, activations: torch.Tensor) -> torch.Tensor:
        out: torch.Tensor = self.cloud(activations, self.active)
        return out

    def activation_shape(self) -> tuple[int, ...]:
        return self.depth(self.active).activation_shape()

    def edge_state(self, *, copy: bool = False) -> dict[str, torch.Tensor]:
        state: dict[str, torch.Tensor] = {}
        for cut in self.cuts:
            state.update(to_fleet(self.depth(cut).edge_state(copy=copy), cut, coded=self.coded))
        return state


def _view(model: SplitModel, cloud: nn.Module) -> SplitModel:
    """``model``'s edge before ``cloud``, as a ``SplitModel`` of their own."""
    view = SplitModel(
        model.edge,
        cloud,
        cut=model.cut,
        num_classes=model.num_classes,
        input_shape=model.input_shape,  # type: ignore[arg-type]
    )
    view.bottleneck = model.bottleneck
    return view


def fleet_model(config: Any, num_classes: int, input_shape: tuple[int, int, int]) -> FleetModel:
    """The cloud's model of ``config``'s fleet (``config.fleet_cuts``): each depth's edge built
    as that edge builds it, one cloud from the shallowest cut."""
    depths = {
        c: model_for(replace(config, cut=c), num_classes, input_shape) for c in config.fleet_cuts
    }
    return FleetModel(depths)


def by_depth(state: Mapping[str, Any], cuts: tuple[str, ...]) -> list[dict[str, Any]]:
    """The fleet's weights ``state`` as one set per depth it holds (the shared layers and that
    cut's own), for ``FleetModel.edge.load_state_dict``: the aggregate holds every depth's, an
    edge's own weights one."""
    held = [c for c in cuts if any(k.startswith(f"{c}:") for k in state)]
    return [{k: v for k, v in state.items() if ":" not in k or k.startswith(f"{c}:")} for c in held]
