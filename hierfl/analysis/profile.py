"""Cut-point profiles: activation bytes, parameters and forward FLOPs on each side of a cut."""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any, cast

import torch
from torch import nn
from torch.utils.flop_counter import FlopCounterMode

from hierfl.errors import ConfigError
from hierfl.models import SplitModel, create_model
from hierfl.registry import MODELS

FP32_BYTES = 4


@dataclass(frozen=True)
class CutProfile:
    """What a cut costs, per sample: the inputs to the runtime model and the planner.

    ``activation_bytes_per_sample`` is fp32; ``wire_bytes_per_sample`` is what one sample's
    activations cost on the link: the bottleneck's codes (``code_bits`` each, packed) when the
    cut has one, else fp32 (a codec scales it). FLOPs are forward FLOPs counted by
    ``torch.utils.flop_counter`` (matmuls and convolutions, two per multiply-add); BatchNorm,
    activations and pooling are not counted, which under-counts by a few percent at most.
    ``edge_flops`` includes the exit head (and the encoder), because the edge runs them on every
    sample; ``cloud_flops`` includes the cloud's decoder.
    """

    model: str
    cut: str
    input_shape: tuple[int, ...]
    activation_shape: tuple[int, ...]
    activation_bytes_per_sample: int
    input_bytes_per_sample: int
    edge_params: int
    exit_params: int
    cloud_params: int
    edge_flops: int
    cloud_flops: int
    bottleneck: int = 0  # channels of the bottleneck at the cut (0: none)
    code_bits: int = 8
    wire_bytes_per_sample: int = 0
    encoder_params: int = 0
    decoder_params: int = 0  # the cloud's decoder (the edge has one of the same size)
    encoder_flops: int = 0
    decoder_flops: int = 0
    exit_flops: int = 0  # the exit head's forward (part of ``edge_flops``)
    # What the segment and the exit keep for their backward pass, per sample: every distinct
    # tensor a leaf module outputs (an in-place ReLU's output is its input, counted once).
    edge_saved_bytes: float = 0.0
    exit_saved_bytes: float = 0.0

    @property
    def raw_uint8_bytes_per_sample(self) -> int:
        """One input as 8-bit pixels: what cloud mode uploads by default."""
        return math.prod(self.input_shape)


def _params(module: nn.Module) -> int:
    return sum(p.numel() for p in module.parameters())


def _flops(module: nn.Module, x: torch.Tensor) -> int:
    counter = FlopCounterMode(display=False)
    with counter:
        module(x)
    return int(counter.get_total_flops())


def probe_model(
    name: str,
    cut: str,
    input_shape: tuple[int, int, int],
    num_classes: int = 10,
    *,
    exit_head: str | None = None,
    bottleneck: int = 0,
    code_bits: int = 8,
) -> SplitModel:
    """The model that profiles and plans measure: seed 0, eval mode (so a batch of one works)."""
    return create_model(
        name,
        cut=cut,
        num_classes=num_classes,
        input_shape=input_shape,
        seed=0,
        exit_head=exit_head,
        bottleneck=bottleneck,
        code_bits=code_bits,
    ).eval()


def profile_cut(
    name: str,
    cut: str,
    input_shape: tuple[int, int, int],
    num_classes: int = 10,
    *,
    exit_head: str | None = None,
    bottleneck: int = 0,
    code_bits: int = 8,
) -> CutProfile:
    """Profile model ``name`` cut at ``cut`` (with a ``bottleneck``-channel bottleneck of
    ``code_bits`` bits when > 0) on one sample of ``input_shape``.

    The model runs in eval mode on a batch of one, so BatchNorm neither needs a batch nor
    changes; the weights are random, which does not change any count.
    """
    model = probe_model(
        name,
        cut,
        input_shape,
        num_classes,
        exit_head=exit_head,
        bottleneck=bottleneck,
        code_bits=code_bits,
    )
    activations, edge_flops, cloud_flops, extras = _measure(model, input_shape, bool(bottleneck))
    activation_shape = tuple(activations.shape[1:])
    values = math.prod(activation_shape)
    wire = math.ceil(values * code_bits / 8) if bottleneck else FP32_BYTES * values
    return CutProfile(
        model=name,
        cut=cut,
        input_shape=tuple(input_shape),
        activation_shape=activation_shape,
        activation_bytes_per_sample=FP32_BYTES * math.prod(activation_shape),
        input_bytes_per_sample=FP32_BYTES * math.prod(input_shape),
        edge_params=_params(model.edge.segment),
        exit_params=_params(model.edge.exit),
        cloud_params=_params(model.cloud),
        edge_flops=edge_flops,
        cloud_flops=cloud_flops,
        bottleneck=bottleneck,
        code_bits=code_bits,
        wire_bytes_per_sample=wire,
        **extras,
    )


def _measure(
    model: SplitModel, input_shape: tuple[int, int, int], coded: bool
) -> tuple[torch.Tensor, int, int, dict[str, Any]]:
    """One sample through the model: its activations at the cut, the edge's and the cloud's
    forward FLOPs, and the other figures of ``CutProfile`` (the bottleneck's when ``coded``)."""
    with torch.no_grad():
        x = torch.zeros(1, *input_shape)
        activations, edge_saved = _saved_bytes(model.edge.segment, x)
        _, exit_saved = _saved_bytes(model.edge.exit, activations)
        edge_flops = _flops(model.edge, x)
        cloud_flops = _flops(model.cloud, activations)
        figures: dict[str, Any] = {
            "exit_flops": _flops(model.edge.exit, activations),
            "edge_saved_bytes": edge_saved,
            "exit_saved_bytes": exit_saved,
        }
        if coded:
            figures.update(_coder_figures(model, x, activations))
    return activations, edge_flops, cloud_flops, figures


def _saved_bytes(module: nn.Module, x: torch.Tensor) -> tuple[torch.Tensor, float]:
    """``module(x)`` and the bytes of the distinct tensors its leaf modules output."""
    outputs: list[torch.Tensor] = []  # kept alive so that no storage is reused mid-forward
    hooks = [
        m.register_forward_hook(lambda _m, _i, out: outputs.append(out))
        for m in module.modules()
        if not list(m.children())
    ]
    try:
        result = module(x)
    finally:
        for hook in hooks:
            hook.remove()
    seen: dict[int, int] = {}
    for out in outputs:
        if isinstance(out, torch.Tensor):
            seen[out.untyped_storage().data_ptr()] = out.numel() * out.element_size()
    return result, float(sum(seen.values()))


def _coder_figures(model: SplitModel, x: torch.Tensor, activations: torch.Tensor) -> dict[str, int]:
    """A bottleneck's encoder and cloud decoder: parameters and forward FLOPs.

    ``add_bottleneck`` made both sides Sequentials: (segment, encoder), (decoder, cloud).
    """
    segment = cast(nn.Sequential, model.edge.segment)
    cloud = cast(nn.Sequential, model.cloud)
    features = segment[0](x)
    return {
        "encoder_params": _params(segment[1]),
        "decoder_params": _params(cloud[0]),
        "encoder_flops": _flops(segment[1], features),
        "decoder_flops": _flops(cloud[0], activations),
    }


def profile_model(
    name: str,
    input_shape: tuple[int, int, int],
    num_classes: int = 10,
    *,
    exit_head: str | None = None,
    bottleneck: int = 0,
    code_bits: int = 8,
) -> list[CutProfile]:
    """Profile every cut of model ``name``, in the model's order (shallowest first).

    With a ``bottleneck``, cuts narrower than it are left out (it would not narrow them); a
    bottleneck wider than every cut is a ``ConfigError``.
    """
    profiles, refused = [], None
    for cut in MODELS.get(name).cut_points:
        try:
            profiles.append(
                profile_cut(
                    name,
                    cut,
                    input_shape,
                    num_classes,
                    exit_head=exit_head,
                    bottleneck=bottleneck,
                    code_bits=code_bits,
                )
            )
        except ConfigError as exc:
            if exc.key != "bottleneck":
                raise
            refused = exc
    if not profiles and refused is not None:
        raise refused
    return profiles


_COLUMNS = (
    ("cut", 8),
    ("activations", 12),
    ("act KiB", 9),
    ("wire B", 9),
    ("edge params", 12),
    ("exit params", 12),
    ("cloud params", 13),
    ("edge FLOPs", 11),
    ("cloud FLOPs", 12),
)


def _si(value: float) -> str:
    """Three significant figures with a K/M/G/T suffix: FLOPs span six orders of magnitude."""
    for suffix, scale in (("T", 1e12), ("G", 1e9), ("M", 1e6), ("K", 1e3)):
        if value >= scale:
            return f"{value / scale:.3g}{suffix}"
    return f"{value:.3g}"


def _row(p: CutProfile) -> tuple[str, ...]:
    return (
        p.cut,
        "x".join(str(d) for d in p.activation_shape),
        f"{p.activation_bytes_per_sample / 1024:.1f}",
        f"{p.wire_bytes_per_sample:,}",
        f"{p.edge_params:,}",
        f"{p.exit_params:,}",
        f"{p.cloud_params:,}",
        _si(p.edge_flops),
        _si(p.cloud_flops),
    )


def format_profiles(profiles: list[CutProfile]) -> str:
    """A fixed-width table, one row per cut, under a line naming the model and input.

    Per-sample figures; the input's own size is in the title, for comparing against uploading
    raw inputs (the ``cloud`` mode).
    """
    if not profiles:
        return ""
    first = profiles[0]
    shape = "x".join(str(d) for d in first.input_shape)
    title = (
        f"{first.model} on {shape} inputs ({first.raw_uint8_bytes_per_sample:,} B per sample as "
        f"uint8, {first.input_bytes_per_sample / 1024:.1f} KiB fp32)"
    )
    if first.bottleneck:
        title += (
            f"; bottleneck of {first.bottleneck} channels at {first.code_bits} bits: "
            f"wire B are its codes"
        )
    header = " ".join(
        f"{label:<{w}}" if i < 2 else f"{label:>{w}}" for i, (label, w) in enumerate(_COLUMNS)
    )
    lines = [title, header, "-" * len(header)]
    for p in profiles:
        cells = _row(p)
        lines.append(
            " ".join(
                f"{c:<{w}}" if i < 2 else f"{c:>{w}}"
                for i, (c, (_, w)) in enumerate(zip(cells, _COLUMNS, strict=True))
            )
        )
    if first.bottleneck:
        lines.append("")
        lines.append(
            f"{'cut':<8} {'encoder params':>14} {'encoder FLOPs':>13} "
            f"{'decoder params':>14} {'decoder FLOPs':>13}"
        )
        for p in profiles:
            lines.append(
                f"{p.cut:<8} {p.encoder_params:>14,} {_si(p.encoder_flops):>13} "
                f"{p.decoder_params:>14,} {_si(p.decoder_flops):>13}"
            )
    return "\n".join(lines)
