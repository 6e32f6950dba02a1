"""An edge's node-local state between messages: optimizer, stream cursor, continual state, classes.

Each round writes its state atomically to ``edge_state-EEEEE-RRRRR.pt`` in the run's state
folder; the states of the last ``rounds + 2`` rounds are kept, so that a cloud resumed from a
checkpoint (at most one experience old) can ask for rounds again and the edge starts each one
from the state its predecessor left.
"""

from __future__ import annotations

from dataclasses import astuple
from pathlib import Path
from typing import Any

import torch

from hierfl.boundary import RoundRequest
from hierfl.util.storage import save_atomic

EdgeRecord = dict[str, Any]


def state_file(state_dir: Path, request: RoundRequest, prefix: str = "edge_state") -> Path:
    return Path(state_dir) / f"{prefix}-{request.experience:05d}-{request.round:05d}.pt"


def saved_states(state_dir: Path, prefix: str = "edge_state") -> list[tuple[tuple[int, int], Path]]:
    """The node-local states this edge kept, by the (experience, round) that wrote them;
    ``prefix`` names the series (``edge_state``, the weight exchange's ``exchange``)."""
    found = []
    for path in Path(state_dir).glob(f"{prefix}-*-*.pt"):
        _, experience, round = path.stem.split("-")
        found.append(((int(experience), int(round)), path))
    return sorted(found)


def latest_edge_state(state_dir: Path) -> EdgeRecord | None:
    """The state the edge's last round left (optimizer, cursor, continual state, classes)."""
    states = saved_states(state_dir)
    return torch.load(states[-1][1], weights_only=True) if states else None


def state_before(
    state_dir: Path, request: RoundRequest, prefix: str = "edge_state"
) -> EdgeRecord | None:
    """The state to start ``request``'s round from: the newest one written by an earlier round.

    Normally that is the last state. When the cloud restarts from a checkpoint older than the
    rounds this edge has trained since, it asks for those rounds again; the edge then starts
    from the state before them, so a resumed run computes exactly what an uninterrupted one
    does.
    """
    earlier = [path for key, path in saved_states(state_dir, prefix) if key < astuple(request)]
    return torch.load(earlier[-1], weights_only=True) if earlier else None


def save_edge_state(
    state_dir: Path, request: RoundRequest, state: EdgeRecord, keep: int, prefix: str = "edge_state"
) -> None:
    """Write ``request``'s state; keep only the newest ``keep``."""
    save_atomic(state, state_file(state_dir, request, prefix))
    for _, path in saved_states(state_dir, prefix)[:-keep]:
        path.unlink(missing_ok=True)
