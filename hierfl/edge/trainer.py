"""EdgeTrainer: trains the edge segment and its exit on the local loss, chunk by chunk."""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field

import torch
from torch import nn

from hierfl.boundary import LABEL_BYTES, EdgeChunk
from hierfl.errors import ConfigError
from hierfl.models.base import EdgeModule, EdgeOutput
from hierfl.train.masking import SeenClasses
from hierfl.train.optim import make_optimizer
from hierfl.train.privacy import ActivationPrivacy

# A continual-learning term for a batch: (inputs, edge output, labels) -> loss.
ExtraLoss = Callable[[torch.Tensor, EdgeOutput, torch.Tensor], "torch.Tensor | float"]


class EdgeTrainer:
    """Owns the edge module and its optimizer; no gradient ever arrives from the cloud.

    Each mini-batch is one step on ``CE(h_e(f_e(x)), y)``; the activations ``f_e(x)`` computed
    in that forward pass are detached and collected for the cloud.
    """

    def __init__(
        self,
        edge: EdgeModule,
        *,
        lr: float,
        momentum: float = 0.0,
        optimizer: str = "sgd",
        proximal_mu: float = 0.0,
        device: str = "cpu",
        freeze_segment: bool = False,
        seen: SeenClasses | None = None,
        privacy: ActivationPrivacy | None = None,
        generator: torch.Generator | None = None,
    ) -> None:
        self.device = torch.device(device)
        self.edge = edge.to(self.device)
        # Edge-stability policy: a frozen segment keeps the activations the cloud stored valid;
        # the exit keeps learning on top of it.
        for p in self.edge.segment.parameters():
            p.requires_grad_(not freeze_segment)
        self.frozen = freeze_segment
        self.optimizer = make_optimizer(optimizer, self.edge.parameters(), lr=lr, momentum=momentum)
        self.loss_fn = nn.CrossEntropyLoss()
        self.proximal_mu = proximal_mu
        # The exit's loss covers only the classes this edge has met (``class-mask``).
        self.seen = seen
        # What leaves the device may be clipped and noised (``act-clip``, ``act-noise``).
        self.privacy = privacy or ActivationPrivacy()
        self.generator = generator
        # FedProx anchors local training to the weights the edge received this round.
        self._anchor = [p.detach().clone() for p in self.edge.parameters()] if proximal_mu else []

    def _proximal_term(self) -> torch.Tensor | float:
        if not self.proximal_mu:
            return 0.0
        sq = sum(
            ((p - a) ** 2).sum() for p, a in zip(self.edge.parameters(), self._anchor, strict=True)
        )
        return 0.5 * self.proximal_mu * sq

    def train_chunk(
        self,
        batches: Iterable[tuple[torch.Tensor, torch.Tensor]],
        *,
        max_bytes: int,
        ship: bool = True,
        extra_loss: ExtraLoss | None = None,
        ship_from: int = 0,
    ) -> EdgeChunk:
        """Train on ``batches`` until they run out or the next one would exceed ``max_bytes``.

        The chunk never exceeds ``max_bytes``: a batch whose activations would not fit is not
        trained on either, so edge and cloud see the same samples; ``truncated`` says so. With
        ``ship=False`` (``edge`` mode) nothing is kept for the cloud and every batch is trained.
        Batches before index ``ship_from`` are trained but not shipped (``ship=last-epoch``).
        """
        self.edge.train()
        tally, truncated = _Tally(), False
        start = time.perf_counter()
        for index, (x, y) in enumerate(batches):
            shipping = ship and index >= ship_from
            x, y = x.to(self.device), y.to(self.device)
            out = self.edge(x)
            batch_bytes = out.activations.numel() * out.activations.element_size()
            batch_bytes += y.numel() * LABEL_BYTES
            if shipping and tally.shipped_bytes + batch_bytes > max_bytes:
                if not tally.activations:
                    raise ConfigError(
                        "max-chunk-mb",
                        f"one batch needs {batch_bytes / 2**20:.3f} MiB, more than the bound; "
                        "raise max-chunk-mb or lower batch-size",
                    )
                truncated = True
                break
            loss, logits = self._step(x, y, out, extra_loss)
            if shipping:
                shipped = self.privacy.apply(out.activations.detach().cpu(), self.generator)
                tally.ship(shipped, y.detach().cpu(), batch_bytes)
            tally.count(loss, logits, y)
        return tally.chunk(time.perf_counter() - start, truncated)

    def _step(
        self, x: torch.Tensor, y: torch.Tensor, out: EdgeOutput, extra_loss: ExtraLoss | None
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """One optimizer step on the exit loss (plus the extra terms); its loss and logits."""
        logits = out.exit_logits
        if self.seen is not None:
            self.seen.add(y)
            logits = self.seen.apply(logits)
        loss = self.loss_fn(logits, y)
        self.optimizer.zero_grad(set_to_none=True)
        extra = extra_loss(x, out, y) if extra_loss is not None else 0.0
        if out.extra_loss is not None:  # e.g. a bottleneck's reconstruction term
            extra = extra + out.extra_loss
        (loss + self._proximal_term() + extra).backward()
        self.optimizer.step()
        return loss, logits


@dataclass
class _Tally:
    """What a chunk ships, and the exit's figures over the batches trained."""

    activations: list[torch.Tensor] = field(default_factory=list)
    labels: list[torch.Tensor] = field(default_factory=list)
    shipped_bytes: int = 0
    batches: int = 0
    loss_sum: float = 0.0
    correct: int = 0
    trained: int = 0

    def ship(self, activations: torch.Tensor, labels: torch.Tensor, nbytes: int) -> None:
        self.activations.append(activations)
        self.labels.append(labels)
        self.shipped_bytes += nbytes

    def count(self, loss: torch.Tensor, logits: torch.Tensor, y: torch.Tensor) -> None:
        self.batches += 1
        self.loss_sum += float(loss.detach()) * len(y)
        self.correct += int((logits.argmax(1) == y).sum())
        self.trained += len(y)

    def chunk(self, seconds: float, truncated: bool) -> EdgeChunk:
        return EdgeChunk(
            activations=torch.cat(self.activations) if self.activations else torch.zeros(0),
            labels=torch.cat(self.labels) if self.labels else torch.zeros(0, dtype=torch.long),
            batches=self.batches,
            exit_loss=self.loss_sum / max(self.trained, 1),
            exit_correct=self.correct,
            compute_s=seconds,
            truncated=truncated,
            trained=self.trained,
        )


def raw_chunk(batches: Iterable[tuple[torch.Tensor, torch.Tensor]], *, max_bytes: int) -> EdgeChunk:
    """``cloud`` mode: the edge trains nothing and uploads its raw inputs, within the bound.

    A single batch larger than the bound is an error: raise ``max-chunk-mb``.
    """
    xs: list[torch.Tensor] = []
    ys: list[torch.Tensor] = []
    total = 0
    truncated = False
    for x, y in batches:
        nbytes = x.numel() * x.element_size() + y.numel() * LABEL_BYTES
        if total + nbytes > max_bytes:
            if not xs:
                raise ConfigError("max-chunk-mb", "one batch of raw inputs exceeds the bound")
            truncated = True
            break
        xs.append(x.to(torch.float32))
        ys.append(y)
        total += nbytes
    x_all = torch.cat(xs) if xs else torch.zeros(0)
    y_all = torch.cat(ys) if ys else torch.zeros(0, dtype=torch.long)
    return EdgeChunk(x_all, y_all, len(xs), 0.0, 0, 0.0, truncated, trained=0, raw=True)
