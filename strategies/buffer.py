"""A bounded reservoir of tagged samples: the storage behind edge and cloud (latent) replay."""

from __future__ import annotations

from typing import Any

import torch


class Reservoir:
    """Reservoir sampling over everything observed, at most ``capacity`` samples.

    Every observed sample has the same chance of being kept, whatever its arrival time; each
    kept sample carries the experience it came from, so replay can draw only from earlier
    experiences. The generator state is part of ``state_dict`` so that a fresh process per
    message continues the same random sequence.
    """

    def __init__(self, capacity: int, seed: int = 0) -> None:
        if capacity <= 0:
            raise ValueError("capacity must be > 0")
        self.capacity = capacity
        self.generator = torch.Generator().manual_seed(seed)
        self.x: torch.Tensor | None = None
        self.y = torch.zeros(0, dtype=torch.long)
        self.tag = torch.zeros(0, dtype=torch.long)
        self.seen = 0

    def __len__(self) -> int:
        return int(self.y.shape[0])

    def add(self, x: torch.Tensor, y: torch.Tensor, tag: int) -> None:
        x, y = x.detach().cpu(), y.detach().cpu()
        for i in range(len(y)):
            self.seen += 1
            if len(self) < self.capacity:
                self.x = (
                    x[i : i + 1].clone() if self.x is None else torch.cat([self.x, x[i : i + 1]])
                )
                self.y = torch.cat([self.y, y[i : i + 1]])
                self.tag = torch.cat([self.tag, torch.tensor([tag])])
                continue
            j = int(torch.randint(self.seen, (1,), generator=self.generator))
            if j < self.capacity:
                assert self.x is not None
                self.x[j], self.y[j], self.tag[j] = x[i], y[i], tag

    def sample(self, n: int, *, before: int) -> tuple[torch.Tensor, torch.Tensor] | None:
        """``n`` samples (with replacement) from experiences ``< before``, or None if none."""
        pool = torch.nonzero(self.tag < before).flatten()
        if n <= 0 or len(pool) == 0 or self.x is None:
            return None
        idx = pool[torch.randint(len(pool), (n,), generator=self.generator)]
        return self.x[idx], self.y[idx]

    def state_dict(self) -> dict[str, Any]:
        return {
            "x": self.x,
            "y": self.y,
            "tag": self.tag,
            "seen": self.seen,
            "rng": self.generator.get_state(),
        }

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.x, self.y, self.tag = state["x"], state["y"], state["tag"]
        self.seen = int(state["seen"])
        self.generator.set_state(state["rng"])
