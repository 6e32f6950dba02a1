"""The split-model contract: an edge segment with an early-exit head, and a cloud segment."""

from __future__ import annotations

from typing import ClassVar, NamedTuple

import torch
from torch import nn

from hierfl.errors import ConfigError


class EdgeOutput(NamedTuple):
    """What the edge computes: its exit's logits and the activations at the cut (what the
    cloud receives), and any extra term the edge's own loss should include (a bottleneck's
    reconstruction loss, ``hierfl.models.bottleneck``)."""

    exit_logits: torch.Tensor
    activations: torch.Tensor
    extra_loss: torch.Tensor | None = None


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
    ``EdgeModule``) and ``self.cloud`` for the chosen cut. Edges at several depths
    (``hierfl.models.depths``) need the cloud to be an ``nn.Sequential`` whose first module
    each later cut moves to the edge segment, as the registered models do. ``forward`` is the
    monolithic network: ``forward_cloud(forward_edge(x).activations)``.
    """

    cut_points: ClassVar[tuple[str, ...]] = ()
    default_cut: ClassVar[str] = ""  # used when the config leaves ``cut`` empty
    bottleneck: tuple[int, int] | None = None  # (channels, bits) when the cut is coded

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
        """Shape of one sample's activations at the cut.

        Runs the segment in eval mode on the segment's device, so that asking leaves
        BatchNorm's running statistics untouched.
        """
        segment = self.edge.segment
        param = next(segment.parameters(), None)
        device = param.device if param is not None else torch.device("cpu")
        was_training = segment.training
        segment.eval()
        try:
            with torch.no_grad():
                x = torch.zeros(1, *self.input_shape, device=device)
                return tuple(segment(x).shape[1:])
        finally:
            segment.train(was_training)

    def forward_edge(self, x: torch.Tensor) -> EdgeOutput:
        return self.edge(x)

    def forward_cloud(self, activations: torch.Tensor) -> torch.Tensor:
        return self.cloud(activations)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.forward_cloud(self.forward_edge(x).activations)

    def edge_state(self, *, copy: bool = False) -> dict[str, torch.Tensor]:
        """The edge module's weights as detached CPU tensors: what an edge sends and the cloud
        aggregates. ``copy``: tensors of their own, unaffected by later loads into the model."""
        state = {k: v.detach().cpu() for k, v in self.edge.state_dict().items()}
        return {k: v.clone() for k, v in state.items()} if copy else state

    def full_network(self) -> nn.Module:
        """Edge segment then cloud segment as one module, without the exit (``cloud`` mode)."""
        return nn.Sequential(self.edge.segment, self.cloud)

    @classmethod
    def check_cut(cls, cut: str) -> None:
        if cut not in cls.cut_points:
            raise ConfigError(
                "cut",
                f"unknown cut {cut!r} for {cls.__name__}; allowed: {', '.join(cls.cut_points)}",
            )
