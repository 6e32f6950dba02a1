"""A learned bottleneck at the cut: few channels, a few bits each, learned by the edge alone.

Split-computing work (BottleNet++, Shao and Zhang 2020; BottleFit and the Entropic Student,
Matsubara et al. 2022) sends features through a narrow learned layer plus quantization and
trains it with the task gradient end to end. Here no gradient crosses the cut, so the edge
learns the bottleneck from its own exit loss:

- the **encoder** (end of the edge segment): a 1x1 conv to ``C`` channels, BatchNorm and a
  sigmoid, then a ``bits``-bit quantizer with a straight-through estimator. Its output, the
  *codes*, is what the cloud receives (as integers on the wire, ``hierfl.codecs``);
- the **edge's decoder** (start of the exit): a 1x1 conv back to the cut's channels, BatchNorm
  and ReLU, then the model's own exit head. The exit therefore trains on exactly what the cloud
  receives. Optionally (``bottleneck-recon``) the edge also learns to reconstruct the cut's
  features from the codes, so that the codes keep what later layers may need (InfoPro, Wang et
  al., ICLR 2021, warns that a purely local loss can discard it);
- the **cloud's decoder** (start of the cloud segment): the same shape, trained by the cloud.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from hierfl.codecs import CODE_BITS
from hierfl.codecs.tensor import dequantize, to_codes
from hierfl.models.base import EdgeModule, EdgeOutput, SplitModel


def quantize(z: torch.Tensor, bits: int) -> torch.Tensor:
    """``z`` in [0, 1] rounded to ``bits`` bits; the gradient passes straight through.

    The forward value is ``dequantize(to_codes(z))`` exactly, so the edge computes with the same
    float32 numbers the cloud decodes.
    """
    return z + (dequantize(to_codes(z, bits), bits) - z).detach()


class Encoder(nn.Module):
    """Cut features -> ``channels`` codes of ``bits`` bits each (as floats in [0, 1])."""

    def __init__(self, in_channels: int, channels: int, bits: int) -> None:
        super().__init__()
        self.conv = nn.Conv2d(in_channels, channels, 1, bias=False)
        self.norm = nn.BatchNorm2d(channels)
        self.bits = bits

    def forward(self, features: torch.Tensor) -> torch.Tensor:
        return quantize(torch.sigmoid(self.norm(self.conv(features))), self.bits)


def decoder(channels: int, out_channels: int) -> nn.Module:
    """Codes -> features of the cut's width (ReLU: the cut's features are non-negative)."""
    return nn.Sequential(
        nn.Conv2d(channels, out_channels, 1, bias=False),
        nn.BatchNorm2d(out_channels),
        nn.ReLU(inplace=True),
    )


class CodedEdge(EdgeModule):
    """The edge with a bottleneck: ``segment`` ends in the encoder, ``exit`` starts with the
    edge's decoder. ``recon_weight`` > 0 adds ``recon_weight * MSE(decoded, features)`` to the
    edge's loss while training (``EdgeOutput.extra_loss``)."""

    segment: nn.Sequential
    exit: nn.Sequential

    def __init__(
        self, edge: EdgeModule, encoder: Encoder, edge_decoder: nn.Module, recon_weight: float
    ) -> None:
        super().__init__(
            nn.Sequential(edge.segment, encoder), nn.Sequential(edge_decoder, edge.exit)
        )
        self.recon_weight = recon_weight

    def forward(self, x: torch.Tensor) -> EdgeOutput:
        features = self.segment[0](x)
        codes = self.segment[1](features)
        restored = self.exit[0](codes)
        logits = self.exit[1](restored)
        extra = None
        if self.training and self.recon_weight:
            extra = self.recon_weight * F.mse_loss(restored, features.detach())
        return EdgeOutput(logits, codes, extra)


def add_bottleneck(
    model: SplitModel, channels: int, bits: int = 8, recon_weight: float = 0.0
) -> SplitModel:
    """Put a ``channels``-wide, ``bits``-bit bottleneck at ``model``'s cut (in place)."""
    if bits not in CODE_BITS:
        raise ValueError(f"code bits must be one of {CODE_BITS}, got {bits}")
    width = model.activation_shape()[0]
    model.edge = CodedEdge(
        model.edge, Encoder(width, channels, bits), decoder(channels, width), recon_weight
    )
    model.cloud = nn.Sequential(decoder(channels, width), model.cloud)
    model.bottleneck = (channels, bits)
    return model
