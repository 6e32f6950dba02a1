"""Optional protection of the activations an edge ships: per-sample clipping plus Gaussian noise.

``act-clip C`` rescales each sample's activation tensor to an L2 norm of at most ``C``;
``act-noise SIGMA`` then adds independent ``N(0, SIGMA^2)`` noise to every value. Both act only
on what leaves the device: the edge's own exit trains on the clean activations. Clipping bounds
how much any one sample can move what the cloud sees, and the noise hides fine detail (the
input-reconstruction attacks on split learning invert exactly that detail); the price is the
cloud's accuracy, which ``benchmarks/privacy.py`` measures. This is not a formal differential
privacy guarantee: labels travel in the clear and the noise is not calibrated to a budget.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from hierfl.config import HierConfig


@dataclass(frozen=True)
class ActivationPrivacy:
    """``clip``: per-sample L2 bound (0 = none); ``noise``: Gaussian std (0 = none)."""

    clip: float = 0.0
    noise: float = 0.0

    @property
    def active(self) -> bool:
        return self.clip > 0 or self.noise > 0

    def apply(self, a: torch.Tensor, generator: torch.Generator | None = None) -> torch.Tensor:
        """The protected copy of a batch of activations ``a`` (``[n, ...]``, detached)."""
        if not self.active:
            return a
        out = a.detach().to(torch.float32)
        if self.clip > 0:
            norms = out.flatten(1).norm(dim=1).clamp_min(1e-12)
            scale = (self.clip / norms).clamp(max=1.0)
            out = out * scale.view(-1, *([1] * (out.dim() - 1)))
        if self.noise > 0:
            noise = torch.randn(out.shape, generator=generator, dtype=out.dtype, device="cpu")
            out = out + self.noise * noise.to(out.device)
        return out


def privacy_of(config: HierConfig) -> ActivationPrivacy:
    """The run's protection of shipped activations (``act-clip``, ``act-noise``)."""
    return ActivationPrivacy(config.act_clip, config.act_noise)
