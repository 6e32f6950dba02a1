"""Bounds that keep one untrusted edge from taking over the model.

- ``check_weights``: an edge's weights must be finite and within ``bound`` (any |value|);
- ``clip_update``: an edge's update (its weights minus those it was sent) is scaled down to
  an L2 norm of at most ``max_norm`` (norm clipping, Sun et al. 2019);
- ``aggregate_ok``: the aggregate is kept only when finite and within ``bound``; otherwise
  the cloud rolls back to the previous edge weights;
- ``ActivationRange``: a chunk whose largest |activation| is far above what recent chunks
  carried (or above an absolute ceiling) is refused at arrival.

Robust aggregation (``fedmedian``, ``fedtrimmedavg``) is the complement for attacks that stay
inside these bounds; see docs/reliability.md.
"""

from __future__ import annotations

import math
import statistics
from collections import deque
from collections.abc import Mapping

import torch

from hierfl.errors import ChunkRejected

State = Mapping[str, torch.Tensor]


def _floats(state: State) -> list[tuple[str, torch.Tensor]]:
    return [(k, t) for k, t in state.items() if t.is_floating_point()]


def check_weights(state: State, bound: float = 0.0) -> None:
    """Raise ``ChunkRejected`` for a non-finite weight, or one with |value| above ``bound``
    (0: no bound)."""
    for name, t in _floats(state):
        if not bool(torch.isfinite(t).all()):
            raise ChunkRejected(f"edge weight {name} contains NaN or Inf")
        if bound and t.numel() and float(t.abs().max()) > bound:
            raise ChunkRejected(
                f"edge weight {name} has |value| {float(t.abs().max()):.3g} above "
                f"weight-bound={bound:g}"
            )


def aggregate_ok(state: State, bound: float = 0.0) -> str:
    """Why an aggregate cannot be kept ('' when it can)."""
    try:
        check_weights(state, bound)
    except ChunkRejected as exc:
        return str(exc)
    return ""


def update_norm(state: State, base: State) -> float:
    """L2 norm of ``state - base`` over the floating-point weights present in both."""
    total = 0.0
    for name, t in _floats(state):
        if name in base:
            total += float((t.double() - base[name].double()).pow(2).sum())
    return math.sqrt(total)


def clip_update(
    state: State, base: State, max_norm: float
) -> tuple[dict[str, torch.Tensor], float]:
    """``state`` with its update scaled to a norm of at most ``max_norm``; and the update's norm
    before clipping. Non-float tensors (BatchNorm's counter) are kept as they are."""
    norm = update_norm(state, base)
    if not max_norm or norm <= max_norm:
        return dict(state), norm
    scale = max_norm / norm
    clipped = {}
    for name, t in state.items():
        if t.is_floating_point() and name in base:
            b = base[name].to(t.dtype)
            clipped[name] = b + (t - b) * scale
        else:
            clipped[name] = t
    return clipped, norm


class ActivationRange:
    """Refuse activations far outside the running range.

    A chunk is refused when its largest |value| exceeds ``ceiling`` (0: none), or, once
    ``warmup`` chunks were accepted, ``factor`` times the median of the largest |values| of the
    last ``window`` accepted chunks (0: no relative bound). The median keeps one edge from
    moving the range: it would have to be most of the recent chunks.
    """

    def __init__(self, ceiling: float, factor: float, *, window: int = 32, warmup: int = 3) -> None:
        self.ceiling, self.factor, self.warmup = ceiling, factor, warmup
        self.recent: deque[float] = deque(maxlen=window)

    def check(self, activations: torch.Tensor) -> None:
        if not activations.numel() or not activations.is_floating_point():
            return
        peak = float(activations.detach().abs().max())
        if self.ceiling and peak > self.ceiling:
            raise ChunkRejected(f"activation |value| {peak:.3g} above act-max={self.ceiling:g}")
        if self.factor and len(self.recent) >= self.warmup:
            typical = statistics.median(self.recent)
            if typical > 0 and peak > self.factor * typical:
                raise ChunkRejected(
                    f"activation |value| {peak:.3g} is over act-range={self.factor:g} times "
                    f"the recent median peak {typical:.3g}"
                )
        self.recent.append(peak)
