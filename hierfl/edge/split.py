"""Classic split learning, the baseline: per batch, the cloud returns the gradient at the cut.

The edge keeps no autograd graph between messages: on receiving the gradient for batch k it
recomputes ``f_e(x_k)`` with the same weights (nothing changed in between) and backpropagates,
so the protocol also works with a fresh ClientApp process per message. The recomputation
leaves BatchNorm's running statistics as the forward pass left them: each batch updates them
once, as it would in one forward-backward pass.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

import torch
from torch import nn

from hierfl.boundary import EdgeChunk, RoundRequest, RoundResult, SplitStep
from hierfl.config import HierConfig
from hierfl.data.containers import ClientStream
from hierfl.edge.node import edge_model
from hierfl.train.devices import resolve_device
from hierfl.train.optim import make_optimizer
from hierfl.train.privacy import privacy_of
from hierfl.train.schedule import round_batches, seed_for
from hierfl.util.storage import save_atomic


class SplitEdge:
    """An edge's side of one split-learning round: its segment, optimizer and batches."""

    def __init__(
        self,
        config: HierConfig,
        request: RoundRequest,
        edge_state: dict[str, torch.Tensor],
        stream: ClientStream,
    ) -> None:
        self.request = request
        self.partition_id = stream.partition_id
        self.device = torch.device(resolve_device("edge-device", config.edge_device))
        self.model = edge_model(config, stream, edge_state).to(self.device)
        self.optimizer = make_optimizer(
            config.optimizer,
            self.model.edge.segment.parameters(),
            lr=config.edge_lr,
            momentum=config.momentum,
        )
        self.batches = round_batches(config, stream, request)
        self.privacy = privacy_of(config)
        # Edge-stability policy, as in hierarchical mode: past ``freeze-edge-after`` the cloud's
        # gradient no longer moves the segment, so activations the cloud stored stay valid.
        self.frozen = 0 <= config.freeze_edge_after < request.experience
        self.noise_seed = seed_for(
            config, stream.partition_id, request.experience, request.round, 7
        )
        self.trained = 0
        self.compute_s = 0.0  # this round's edge compute so far (emulated slowdown included)
        self.slowdown = config.edge_slowdown

    def forward(self, step: int) -> SplitStep:
        start = time.perf_counter()
        x, y = self.batches[step]
        self.model.train()
        with torch.no_grad():
            a = self.model.edge.segment(x.to(self.device))
        generator = torch.Generator().manual_seed(self.noise_seed + step)
        shipped = self.privacy.apply(a.cpu(), generator)
        self.compute_s += time.perf_counter() - start
        return SplitStep(
            self.partition_id, self.request.experience, self.request.round, step, shipped, y
        )

    def backward(self, step: int, grad: torch.Tensor) -> None:
        """Apply the cloud's gradient at the cut for batch ``step``: one optimizer step."""
        start = time.perf_counter()
        x, y = self.batches[step]
        if self.frozen:
            self.trained += len(y)
            return
        self.model.train()
        with _statistics_kept(self.model.edge.segment):  # restored after the backward pass
            a = self.model.edge.segment(x.to(self.device))
            if tuple(grad.shape) != tuple(a.shape):
                raise ValueError(
                    f"gradient shape {tuple(grad.shape)} != activations {tuple(a.shape)}"
                )
            self.optimizer.zero_grad(set_to_none=True)
            a.backward(grad.to(self.device))
        self.optimizer.step()
        self.trained += len(y)
        self.compute_s += time.perf_counter() - start

    def result(self) -> RoundResult:
        chunk = EdgeChunk(
            torch.zeros(0),
            torch.zeros(0, dtype=torch.long),
            len(self.batches),
            0.0,
            0,
            self.compute_s,
            trained=self.trained,
        )
        state = self.model.edge_state()
        return RoundResult(
            self.partition_id, self.request.experience, self.request.round, state, chunk
        )

    # ---- persistence between ClientApp processes ---------------------------------------------
    def save(self, path: Path) -> None:
        save_atomic(
            {
                "edge": self.model.edge.state_dict(),
                "optimizer": self.optimizer.state_dict(),
                "trained": self.trained,
                "compute_s": self.compute_s,
                "request": [self.request.experience, self.request.round],
            },
            path,
        )

    def load(self, path: Path) -> None:
        saved = torch.load(path, weights_only=True)
        if saved["request"] != [self.request.experience, self.request.round]:
            raise ValueError(f"split state is for {saved['request']}, not this round")
        self.model.edge.load_state_dict(saved["edge"])
        self.optimizer.load_state_dict(saved["optimizer"])
        self.trained = int(saved["trained"])
        self.compute_s = float(saved.get("compute_s", 0.0))


@contextmanager
def _statistics_kept(module: nn.Module) -> Iterator[None]:
    """Run a train-mode forward (batch statistics) without touching the running ones."""
    norms = [m for m in module.modules() if isinstance(m, nn.modules.batchnorm._BatchNorm)]
    saved = [{k: v.clone() for k, v in m.named_buffers(recurse=False)} for m in norms]
    try:
        yield
    finally:
        for m, buffers in zip(norms, saved, strict=True):
            for name, value in buffers.items():
                getattr(m, name).copy_(value)


def run_split_round(
    config: HierConfig,
    request: RoundRequest,
    edge_state: dict[str, torch.Tensor],
    stream: ClientStream,
    cloud_step: Callable[[torch.Tensor, torch.Tensor], torch.Tensor],
) -> RoundResult:
    """A whole split round in one process: forward, wait for the cloud's gradient, backward."""
    edge = SplitEdge(config, request, edge_state, stream)
    for step in range(len(edge.batches)):
        sent = edge.forward(step)
        edge.backward(step, cloud_step(sent.activations, sent.labels))
    return edge.result()
