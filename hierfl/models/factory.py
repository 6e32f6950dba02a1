"""Building the run's model: a registered ``SplitModel`` by name, at a cut, with a bottleneck."""

from __future__ import annotations

from typing import Any

import torch

from hierfl.errors import ConfigError
from hierfl.models.base import SplitModel
from hierfl.models.bottleneck import add_bottleneck
from hierfl.registry import MODELS


def list_models() -> list[str]:
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
    cls = MODELS.get(name)
    cut = cut or cls.default_cut
    cls.check_cut(cut)
    kwargs: dict[str, object] = {"cut": cut, "num_classes": num_classes, "input_shape": input_shape}
    if exit_head is not None:
        kwargs["exit_head"] = exit_head

    def build() -> SplitModel:
        model = cls(**kwargs)
        if bottleneck:
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
        bottleneck=config.bottleneck_channels,
        code_bits=config.code_bits,
        recon_weight=config.bottleneck_recon,
    )
