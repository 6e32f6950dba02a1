"""The cloud's defence on the activation path: a round's chunks screened for wrong labels.

No aggregator sees the labels an edge ships, and the cloud trains on them: an edge that flips
them poisons the cloud however its weights are aggregated. What it cannot fake is the other
edges' data. Each sample of an edge is labelled afresh by the nearest class centroid of the
*other* edges' activations; its **agreement** is the share whose shipped label is that class.
A class's centroid is the coordinate-wise median of the other edges' per-edge means (each from
at least ``MIN_CLASS`` samples) when at least two of them hold it, so that one edge can neither
define a class for the others nor move it; else the last such centroid of an earlier round (the
classes of past experiences); else the class is not judged. Its **expected** agreement is what
the other edges' labels reach, each against the centroids of the rest of them (its own data
left out, as the judged edge's is), per class (the median over them, weighted by the edge's
class counts; for a class no other edge holds this round, their overall agreement): an edge
holding only hard classes (non-IID) is compared on those classes, and a new class that every
edge meets at once (class-incremental) is new for all of them alike. An edge whose agreement
over all its samples is below ``threshold`` times its expected one is flagged; the cloud then
leaves its round out (``hierfl.cloud.collect``). The screen assumes an honest majority: where
it would flag half of the round's edges or more, it flags none and says so.

It needs at least three edges in the round and an honest majority for each class; an edge with
fewer than ``MIN_SCORED`` samples to judge, or whose expected agreement is not well above chance
(no class signal in the features yet), is not judged. On non-IID data each edge's segment drifts
towards its own classes, so honest edges agree less: the default threshold (0.4) is set below
what honest edges reached on Dirichlet 0.3 data (docs/reliability.md).
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass

import torch

from hierfl.cloud.robust import median_rows

log = logging.getLogger(__name__)

MIN_SCORED = 32  # samples an edge needs in judged classes to be judged
MIN_CLASS = 8  # samples of a class an edge needs for its mean to count towards a centroid


@dataclass(frozen=True)
class Screened:
    """One edge's labels against the other edges' class centroids."""

    index: int  # among the chunks passed in
    agreement: float  # share of its judged samples labelled as their nearest centroid
    expected: float  # what the other edges' labels reach on the same classes
    scored: int  # its judged samples
    worst: tuple[int, float, float, int] = (-1, 1.0, 1.0, 0)  # class, agreement, expected, n

    def flagged(self, threshold: float) -> bool:
        """Below ``threshold`` times the expected agreement over all its judged samples. (Its
        worst class is reported, not judged: honest non-IID edges fall below the threshold on
        single classes of theirs, measured in docs/reliability.md.)"""
        if self.scored < MIN_SCORED:
            return False
        return self.agreement < threshold * self.expected

    @property
    def reason(self) -> str:
        k, agreement, expected, n = self.worst
        return (
            f"its labels agree with the other edges' class centroids on "
            f"{self.agreement:.0%} of {self.scored} samples, where the others' reach "
            f"{self.expected:.0%} (class {k}: {agreement:.0%} of {n}, the others {expected:.0%})"
        )


class LabelScreen:
    """Screens each round's chunks; remembers each class's last centroid."""

    def __init__(self, threshold: float) -> None:
        self.threshold = threshold
        self.references: dict[int, torch.Tensor] = {}  # class -> centroid of an earlier round

    def screen(self, chunks: Sequence[tuple[torch.Tensor, torch.Tensor]]) -> list[Screened]:
        """The chunks (activations, labels) whose agreement is below ``threshold`` times their
        expected agreement; the centroids of the chunks kept are remembered."""
        if len(chunks) < 3:
            return []
        feats = [a.detach().flatten(1).float() for a, _ in chunks]
        labels = [y.long() for _, y in chunks]
        means = [_class_means(f, y) for f, y in zip(feats, labels, strict=True)]
        scores = score_labels(feats, labels, means, self.references)
        flagged = [s for s in scores if s.flagged(self.threshold)]
        if flagged and 2 * len(flagged) >= len(chunks):
            log.warning(
                "label-screen: %d of %d edges of the round below the threshold; no honest "
                "majority to judge by (their features moved apart), none left out",
                len(flagged),
                len(chunks),
            )
            flagged = []
        out = {s.index for s in flagged}
        self.references.update(_centroids([m for i, m in enumerate(means) if i not in out]))
        return flagged


def score_labels(
    feats: Sequence[torch.Tensor],
    labels: Sequence[torch.Tensor],
    means: Sequence[dict[int, torch.Tensor]],
    references: dict[int, torch.Tensor],
) -> list[Screened]:
    """Every chunk's agreement and expected agreement. Edge ``i`` and the others are scored
    against the same centroids, the others', so that an edge holding most of a class (non-IID)
    is not judged against a worse centroid than they are."""
    out = []
    for i in range(len(feats)):
        others = [j for j in range(len(feats)) if j != i]
        centroids = {**references, **_centroids([means[j] for j in others])}
        if len(centroids) < 2:
            continue
        correct, counts = _per_class(feats[i], labels[i], centroids)
        rates = [
            _per_class(feats[j], labels[j], _left_out(j, others, means, references)) for j in others
        ]
        scored = sum(counts.values())
        overall = [sum(c.values()) / max(sum(n.values()), 1) for c, n in rates]
        expected, worst = 0.0, (-1, 1.0, 1.0, 0)
        for k, n in counts.items():
            e = _median([c[k] / m[k] for c, m in rates if m.get(k)] or overall)
            expected += n * e
            a = correct[k] / n
            if n >= MIN_SCORED and e and a / e < worst[1] / worst[2]:
                worst = (k, a, e, n)
        if scored and expected / scored >= 2 / len(centroids):  # else no signal to judge by
            agreement = sum(correct.values()) / scored
            out.append(Screened(i, agreement, expected / scored, scored, worst))
    return out


def _left_out(
    j: int,
    others: Sequence[int],
    means: Sequence[dict[int, torch.Tensor]],
    references: dict[int, torch.Tensor],
) -> dict[int, torch.Tensor]:
    """The centroids edge ``j`` of ``others`` is scored against for an expected agreement:
    the rest's, without its own means (scored against centroids of its own data an edge agrees
    with itself, and with few edges the others' expected agreement would be near 1 however far
    apart honest edges' features are). A class one of the rest holds counts: the edge judged
    is not among them."""
    rest = [means[m] for m in others if m != j]
    return {**references, **_centroids(rest, holders=1)}


def _median(values: list[float]) -> float:
    return float(median_rows(torch.tensor(values)))


def _class_means(f: torch.Tensor, y: torch.Tensor) -> dict[int, torch.Tensor]:
    """The edge's mean activation of each class it holds at least ``MIN_CLASS`` samples of."""
    classes, counts = y.unique(return_counts=True)
    return {
        int(k): f[y == k].mean(0) for k, n in zip(classes, counts, strict=True) if n >= MIN_CLASS
    }


def _centroids(
    means: Sequence[dict[int, torch.Tensor]], holders: int = 2
) -> dict[int, torch.Tensor]:
    """Per class that at least ``holders`` of ``means`` hold, the median of their means."""
    out = {}
    for k in sorted({k for m in means for k in m}):
        held = [m[k] for m in means if k in m]
        if len(held) >= holders:
            out[k] = median_rows(torch.stack(held))
    return out


def _per_class(
    f: torch.Tensor, y: torch.Tensor, centroids: dict[int, torch.Tensor]
) -> tuple[dict[int, float], dict[int, int]]:
    """Samples labelled by the nearest of ``centroids``: per class of ``y`` that has a
    centroid, how many agree with the shipped label and how many were judged."""
    classes = torch.tensor(sorted(centroids))
    known = torch.isin(y, classes)
    if not bool(known.any()):
        return {}, {}
    table = torch.stack([centroids[int(k)] for k in classes])
    hits = classes[torch.cdist(f[known], table).argmin(1)] == y[known]
    correct: dict[int, float] = {}
    counts: dict[int, int] = {}
    for k in y[known].unique().tolist():
        mine = y[known] == k
        correct[k], counts[k] = float(hits[mine].sum()), int(mine.sum())
    return correct, counts
