"""The split-model contract: an edge segment with an early-exit head, and a cloud segment."""

from __future__ import annotations

from typing import ClassVar, NamedTuple

import torch
from torch import nn

from hierfl.errors import ConfigError


class EdgeOutput(NamedTuple):
    """What the edge computes: its exit's logits and the activations at the cut."""

    exit_logits: torch.Tensor
    activations: torch.Tensor


class EdgeModule(nn.Module):
    """Edge segment ``f_e`` plus early-exit head ``h_e``: the part an edge device trains."""

    def __init__(self, segment: nn.Module, exit_head: nn.Module) -> None:
        super().__init__()
        self.segment = segment
        self.exit = exit_head

    def forward(self, x: torch.Tensor) -> EdgeOutput:
        activations = self.segment(x)
        return EdgeOutput(self.exit(activations), activations)


class SplitModel(nn.Module):
    """A network cut at a named separation point.

    Subclasses declare ``cut_points`` (ordered names) and build ``self.edge`` (an
    ``EdgeModule``) and ``self.cloud`` for the chosen cut. ``forward`` is the monolithic
    network: ``forward_cloud(forward_edge(x).activations)``.
    """

    cut_points: ClassVar[tuple[str, ...]] = ()

    def __init__(
        self,
        edge: EdgeModule,
        cloud: nn.Module,
        *,
        cut: str,
        num_classes: int,
        input_shape: tuple[int, int, int],
    ) -> None:
        super().__init__()
        self.edge = edge
        self.cloud = cloud
        self.cut = cut
        self.num_classes = num_classes
        self.input_shape = tuple(input_shape)

    def activation_shape(self) -> tuple[int, ...]:
        """Shape of one sample's activations at the cut."""
        with torch.no_grad():
            return tuple(self.edge.segment(torch.zeros(1, *self.input_shape)).shape[1:])

    def forward_edge(self, x: torch.Tensor) -> EdgeOutput:
        return self.edge(x)

    def forward_cloud(self, activations: torch.Tensor) -> torch.Tensor:
        return self.cloud(activations)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.forward_cloud(self.forward_edge(x).activations)

    @classmethod
    def check_cut(cls, cut: str) -> None:
        if cut not in cls.cut_points:
            raise ConfigError(
                "cut",
                f"unknown cut {cut!r} for {cls.__name__}; allowed: {', '.join(cls.cut_points)}",
            )


def list_models() -> list[str]:
    from hierfl.plugins import MODELS

    return MODELS.names()


def create_model(
    name: str,
    *,
    cut: str,
    num_classes: int,
    input_shape: tuple[int, int, int],
    seed: int | None = None,
) -> SplitModel:
    """Build a registered model; with ``seed`` its initial weights are reproducible."""
    from hierfl.plugins import MODELS

    cls = MODELS.get(name)
    cls.check_cut(cut)
    if seed is not None:
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(seed)
            return cls(cut=cut, num_classes=num_classes, input_shape=input_shape)
    return cls(cut=cut, num_classes=num_classes, input_shape=input_shape)
