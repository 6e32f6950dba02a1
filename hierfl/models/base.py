"""The split-model contract: an edge segment with an early-exit head, and a cloud segment."""

from __future__ import annotations

from typing import Any, ClassVar, NamedTuple

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
    ``EdgeModule``) and ``self.cloud`` for the chosen cut. ``forward`` is the monolithic
    network: ``forward_cloud(forward_edge(x).activations)``.
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
    exit_head: str | None = None,
    bottleneck: int = 0,
    code_bits: int = 8,
    recon_weight: float = 0.0,
) -> SplitModel:
    """Build a registered model; with ``seed`` its initial weights are reproducible.

    ``exit_head`` names a head from ``hierfl.models.heads``; it is passed on only when given,
    so that models without that keyword (third-party ones) keep working with the default.
    ``bottleneck`` > 0 puts a learned ``code_bits``-bit bottleneck of that many channels at
    the cut (``hierfl.models.bottleneck``); every model and cut supports it.
    """
    from hierfl.plugins import MODELS

    cls = MODELS.get(name)
    cut = cut or cls.default_cut
    cls.check_cut(cut)
    kwargs: dict[str, object] = {"cut": cut, "num_classes": num_classes, "input_shape": input_shape}
    if exit_head is not None:
        kwargs["exit_head"] = exit_head

    def build() -> SplitModel:
        model = cls(**kwargs)
        if bottleneck:
            from hierfl.models.bottleneck import add_bottleneck

            width = model.activation_shape()[0]
            if bottleneck > width:
                raise ConfigError(
                    "bottleneck",
                    f"{bottleneck} channels is wider than the cut: {name} at {cut} has {width} "
                    f"channels, so allowed 1..{width} (to quantize without a bottleneck, set "
                    "codec=int8)",
                )

            add_bottleneck(model, bottleneck, code_bits, recon_weight)
        return model

    if seed is not None:
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(seed)
            return build()
    return build()


def model_for(config: Any, num_classes: int, input_shape: tuple[int, int, int]) -> SplitModel:
    """The run's model (``config``'s ``model``, ``cut``, ``exit-head`` and ``seed``) for a
    stream of ``num_classes`` classes and ``input_shape`` inputs."""
    return create_model(
        config.model,
        cut=config.cut,
        num_classes=num_classes,
        input_shape=input_shape,
        seed=config.seed,
        exit_head=config.exit_head or None,
        bottleneck=config.bottleneck,
        code_bits=config.code_bits,
        recon_weight=config.bottleneck_recon,
    )
