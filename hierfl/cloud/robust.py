"""Bounds that keep one untrusted edge from taking over the model.

- ``check_weights``: an edge's weights must be finite and within ``bound`` (any |value|);
- ``clip_update``: an edge's update (its weights minus those it was sent) is scaled down to
  an L2 norm of at most ``max_norm`` (norm clipping, Sun et al. 2019);
- ``centered_clip``: an update farther from the round's coordinate-wise median update than a
  multiple of the median distance is replaced by the median update (after centered clipping,
  Karimireddy et al. 2021, started at the median): the honest majority sets the bound, so no
  norm needs tuning per model or data set;
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
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

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


@dataclass(frozen=True)
class Clipped:
    """One edge's update replaced by the round's median update (``centered_clip``)."""

    index: int  # among the states passed in
    distance: float  # from the median update
    radius: float  # the bound it exceeded


def centered_clip(
    states: Sequence[State], base: State, factor: float
) -> tuple[list[dict[str, torch.Tensor]], list[Clipped]]:
    """``states`` with each update (``state - base``) farther than ``factor`` times the median
    distance from the coordinate-wise median update replaced by that median update; and the
    ones replaced.

    The edge's vote still counts, its direction does not: an attacker that stays just within
    the radius moves the aggregate by at most the radius times its weight (the bound of
    centered clipping), and one that overshoots (boosting, IPM) is ignored. With fewer than
    three states there is no majority to take the bound from, and they are
    returned as they are. Updates within the radius, and the tensors that are not floating
    point, are kept bit for bit.
    """
    out = [dict(s) for s in states]
    names = [k for k, t in out[0].items() if t.is_floating_point() and k in base]
    if not factor or len(out) < 3 or not names:
        return out, []
    flat = torch.stack(
        [torch.cat([(s[k].float() - base[k].float()).flatten() for k in names]) for s in out]
    )
    center = median_rows(flat)
    distances = (flat - center).norm(dim=1)
    radius = factor * float(median_rows(distances))
    clipped: list[Clipped] = []
    for i, d in enumerate(distances.tolist()):
        if d <= radius or d == 0:
            continue
        offset = 0
        for k in names:
            size = out[i][k].numel()
            part = center[offset : offset + size].view_as(out[i][k])
            out[i][k] = (base[k].float() + part).to(out[i][k].dtype)
            offset += size
        clipped.append(Clipped(i, d, radius))
    return out, clipped


def median_rows(t: torch.Tensor) -> torch.Tensor:
    """The median along the first dimension, the mean of the middle two for an even count
    (``torch.median`` takes the lower one)."""
    ordered = t.sort(dim=0).values
    n = t.shape[0]
    return (ordered[(n - 1) // 2] + ordered[n // 2]) / 2


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
