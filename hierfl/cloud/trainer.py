"""CloudTrainer: trains the cloud segment on activation batches from any number of edges."""

from __future__ import annotations

import dataclasses
import time
from collections import deque
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import torch
from torch import nn

from hierfl.config import HierConfig
from hierfl.train.continual import Continual, build_continual
from hierfl.train.masking import SeenClasses
from hierfl.train.optim import make_optimizer


@dataclass
class CloudStats:
    """Running totals of what the cloud trained on."""

    batches: int = 0
    examples: int = 0
    loss_sum: float = 0.0
    correct: int = 0
    compute_s: float = 0.0
    skipped: int = 0  # steps not taken because the loss or a gradient was not finite

    def stepped_since(self, before: CloudStats) -> bool:
        """The cloud took a step since ``before``, or had nothing to skip (a sound round)."""
        return self.batches > before.batches or self.skipped == before.skipped

    def add(self, loss: float, correct: int, examples: int) -> None:
        """One step taken on ``examples`` samples: their mean ``loss``, ``correct`` of them."""
        self.batches += 1
        self.examples += examples
        self.loss_sum += loss * examples
        self.correct += correct

    def figures(self, before: CloudStats | None = None) -> dict[str, float | int]:
        """The examples trained on since ``before`` (all), their mean loss and accuracy, as
        the cloud predicted them when it stepped."""
        b = before or CloudStats()
        n = self.examples - b.examples
        return {
            "examples": n,
            "loss": (self.loss_sum - b.loss_sum) / n if n else 0.0,
            "accuracy": (self.correct - b.correct) / n if n else 0.0,
        }


class CloudTrainer:
    """Owns the cloud segment ``f_c``; its loss never reaches the edge.

    Chunks are queued as they arrive and consumed one mini-batch at a time, so the caller can
    interleave cloud steps with polling for more replies and keep the cloud busy.
    """

    def __init__(
        self,
        cloud: nn.Module,
        *,
        lr: float,
        momentum: float = 0.0,
        optimizer: str = "sgd",
        batch_size: int = 32,
        epochs: int = 1,
        seed: int = 0,
        device: str = "cpu",
        continual: Continual | None = None,
        seen: SeenClasses | None = None,
    ) -> None:
        self.device = torch.device(device)
        self.cloud = cloud.to(self.device)
        params = list(self.cloud.parameters())  # none in edge mode: the cloud never trains
        self.optimizer = (
            make_optimizer(optimizer, params, lr=lr, momentum=momentum) if params else None
        )
        self.loss_fn = nn.CrossEntropyLoss()
        self.batch_size = batch_size
        self.epochs = epochs
        self.generator = torch.Generator().manual_seed(seed)
        # mini-batches: activations, labels, experience, and the cut they come from ("": the
        # cloud's own; a fleet's ``DepthCloud`` enters each at its cut)
        self.queue: deque[tuple[torch.Tensor, torch.Tensor, int, str]] = deque()
        self.queued_bytes = 0  # activations waiting in the queue
        self.continual = continual or Continual(())
        self.stats = CloudStats()
        self.depth_stats: dict[str, CloudStats] = {}  # by the cut chunks come from (a fleet)
        self.seen = seen  # classes that reached the cloud so far (``class-mask``)

    @classmethod
    def for_run(
        cls, config: HierConfig, module: nn.Module | None, num_classes: int, device: str
    ) -> CloudTrainer:
        """The run's cloud trainer of ``module`` (None: a cloud with nothing to train, as in
        edge mode), with its continual methods and class mask."""
        return cls(
            module if module is not None else nn.Identity(),
            device=device,
            optimizer=config.optimizer,
            lr=config.cloud_lr,
            momentum=config.momentum,
            batch_size=config.batch_size,
            epochs=config.cloud_passes,
            seed=config.seed,
            continual=build_continual(config),
            seen=SeenClasses(num_classes, enabled=config.class_mask == "seen"),
        )

    def enqueue(self, activations: torch.Tensor, labels: torch.Tensor, **where: Any) -> None:
        """Queue one chunk (``experience``, ``round``: where it belongs) as mini-batches: first
        in the order the edge trained them, then ``epochs - 1`` more shuffled passes."""
        self.enqueue_first(activations, labels, **where)
        self.enqueue_later([(activations, labels)], experience=where.get("experience", 0))

    def enqueue_first(
        self,
        activations: torch.Tensor,
        labels: torch.Tensor,
        *,
        experience: int = 0,
        round: int = 0,
        depth: str = "",
    ) -> None:
        """Queue a chunk's first pass, in the order its edge trained it (``depth``: the cut
        its edge ships from, where edges cut at several depths)."""
        self.continual.cloud_observe(activations, labels, experience=experience, round=round)
        self._queue_pass(activations, labels, None, experience, depth)

    def enqueue_later(
        self,
        chunks: Sequence[tuple[torch.Tensor, torch.Tensor]],
        *,
        experience: int = 0,
        depth: str = "",
    ) -> None:
        """Queue ``epochs - 1`` passes shuffled over all of a round's ``chunks`` together.

        Edges that keep their own weights (a compressed exchange) code the same class
        differently; passes taken one edge's chunk after another leave the cloud fitted to the
        last edge's codes (measured: cloud accuracy 0.94 through the last edge's weights, 0.28
        and 0.50 through the others'), so the later passes mix the edges' samples.
        """
        chunks = [(a, y) for a, y in chunks if len(y)]
        if self.epochs < 2 or not chunks:
            return
        if len(chunks) == 1:
            activations, labels = chunks[0]
        else:
            activations = torch.cat([a for a, _ in chunks])
            labels = torch.cat([y for _, y in chunks])
        for _ in range(self.epochs - 1):
            order = torch.randperm(len(labels), generator=self.generator)
            self._queue_pass(activations, labels, order, experience, depth)

    def enqueue_later_depths(
        self,
        later: Mapping[str, Sequence[tuple[torch.Tensor, torch.Tensor]]],
        *,
        experience: int = 0,
    ) -> None:
        """``enqueue_later`` for a round's chunks by the cut they come from: each depth's
        passes mixed over its chunks, then the mini-batches of all depths in one random
        order, so that no depth's batches all come last and the shared layers end the round
        fitted to every depth."""
        start = len(self.queue)
        for depth, chunks in later.items():
            self.enqueue_later(chunks, experience=experience, depth=depth)
        if len(later) < 2:
            return
        tail = [self.queue.pop() for _ in range(len(self.queue) - start)][::-1]
        order = torch.randperm(len(tail), generator=self.generator)
        self.queue.extend(tail[i] for i in order.tolist())

    def _queue_pass(
        self,
        activations: torch.Tensor,
        labels: torch.Tensor,
        order: torch.Tensor | None,
        experience: int,
        depth: str = "",
    ) -> None:
        """One pass as mini-batches, in ``order`` (None: as given, views of the chunk)."""
        for start in range(0, int(labels.shape[0]), self.batch_size):
            if order is None:  # views, not copies: the chunk is held once
                a = activations[start : start + self.batch_size]
                y = labels[start : start + self.batch_size]
            else:
                idx = order[start : start + self.batch_size]
                a, y = activations[idx], labels[idx]
            self.queue.append((a, y, experience, depth))
            self.queued_bytes += a.numel() * a.element_size()

    @property
    def pending(self) -> int:
        return len(self.queue)

    def step(self) -> bool:
        """Train on the next queued mini-batch; return False if the queue was empty."""
        if not self.queue:
            return False
        a, y, experience, depth = self.queue.popleft()
        self.queued_bytes -= a.numel() * a.element_size()
        self.train_batch(*self.continual.cloud_batch(a, y, experience=experience), depth=depth)
        return True

    def drain(self) -> None:
        while self.step():
            pass

    def train_batch_grad(
        self,
        activations: torch.Tensor,
        labels: torch.Tensor,
        *,
        experience: int = 0,
        round: int = 0,
    ) -> torch.Tensor:
        """Split learning: one step, returning ``dL/da`` at the cut for the edge (pre-step).

        A continual strategy may mix stored activations into the step; the gradient returned
        is then rescaled to that of the mean loss over the edge's own samples, so replay does
        not shrink the edge's step.
        """
        a = activations.to(self.device).detach().requires_grad_(True)
        self.continual.cloud_observe(a.detach(), labels, experience=experience, round=round)
        mixed, mixed_labels = self.continual.cloud_batch(a, labels, experience=experience)
        skipped = self.stats.skipped
        self.train_batch(mixed, mixed_labels)
        if self.stats.skipped > skipped or a.grad is None:  # no step: nothing to send down
            return torch.zeros_like(activations).cpu()
        return (a.grad * (len(mixed_labels) / len(labels))).detach().cpu()

    def train_batch(
        self, activations: torch.Tensor, labels: torch.Tensor, *, depth: str = ""
    ) -> float:
        """One step of ``CE(f_c(a), y)``; returns the loss. ``depth``: the cut ``a`` comes
        from, for a fleet's ``DepthCloud`` (``hierfl.models.depths``).

        A step whose loss or gradient is not finite is not taken (``stats.skipped`` counts
        it): one bad batch must not turn every cloud weight into NaN.
        """
        start = time.perf_counter()
        self.cloud.train()
        a, y = activations.to(self.device), labels.to(self.device)
        logits = self.cloud(a, depth) if depth else self.cloud(a)
        if self.seen is not None:
            self.seen.add(y)
            logits = self.seen.apply(logits)
        loss = self.loss_fn(logits, y)
        if self.optimizer is None:
            raise RuntimeError("this cloud has nothing to train (edge mode)")
        self.optimizer.zero_grad(set_to_none=True)
        loss.backward()
        if not _finite(loss, self.cloud.parameters()):
            self.optimizer.zero_grad(set_to_none=True)
            self.stats.skipped += 1
            self.stats.compute_s += time.perf_counter() - start
            return float(loss.detach())
        self.optimizer.step()
        value, correct = float(loss.detach()), int((logits.argmax(1) == y).sum())
        self.stats.add(value, correct, len(y))
        if depth:
            self.depth_stats.setdefault(depth, CloudStats()).add(value, correct, len(y))
        self.stats.compute_s += time.perf_counter() - start
        return value

    def depth_snapshot(self) -> dict[str, CloudStats]:
        """The per-depth totals as they stand (``depth_figures``' ``before``)."""
        return {d: dataclasses.replace(s) for d, s in self.depth_stats.items()}

    def depth_figures(
        self, before: dict[str, CloudStats] | None = None, cuts: Sequence[str] = ()
    ) -> dict[str, dict[str, float | int]]:
        """What the cloud trained on from each of ``cuts`` (else each depth it met) since
        ``before`` (all): examples, mean loss and accuracy."""
        return {
            d: self.depth_stats.get(d, CloudStats()).figures((before or {}).get(d))
            for d in (cuts or list(self.depth_stats))
        }


def _finite(loss: torch.Tensor, params: object) -> bool:
    """The loss and every gradient are finite (one fused check per tensor)."""
    if not bool(torch.isfinite(loss)):
        return False
    grads = [p.grad for p in params if p.grad is not None]  # type: ignore[attr-defined]
    return all(bool(torch.isfinite(g).all()) for g in grads)
