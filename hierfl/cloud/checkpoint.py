"""Server checkpoints: everything the cloud needs to continue a run after a crash or ``kill -9``.

A checkpoint is written atomically (``checkpoint.pt`` in the run folder) at the end of every
experience, and every ``checkpoint-every`` rounds when that is set. It holds the round cursor,
the aggregated edge weights, the cloud segment and its optimizer, the cloud's continual-learning
state (replay buffers), the classes seen, the aggregation strategy's server-side state (e.g.
FedAdam's moments) and the metrics so far. Edges keep their own state in
their node-local folders, under the run's ``state-key``, which the checkpoint records so that a
resumed run finds it again.
"""

from __future__ import annotations

import copy
import dataclasses
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from hierfl.boundary import EdgeState
from hierfl.cloud.federation import Federation
from hierfl.cloud.trainer import CloudStats, CloudTrainer
from hierfl.config import HierConfig
from hierfl.errors import ConfigError
from hierfl.results.accuracy import AccuracyMatrix
from hierfl.util.storage import save_atomic

CHECKPOINT = "checkpoint.pt"
VERSION = 1
# Keys that may differ between the interrupted run and its resumption.
RESUMABLE_CHANGES = frozenset(
    {
        "out",
        "resume",
        "state_key",
        "set_keys",
        "reply_timeout",
        "node_wait_timeout",
        "edge_threads",
        "cloud_threads",
        "edge_device",
        "cloud_device",
        "checkpoint_every",
        "data_dir",
    }
)


@dataclass
class Checkpoint:
    """The cloud's state after round ``next_round - 1`` of the run's schedule."""

    config: dict[str, Any]
    next_round: int
    state_key: str
    edge_state: dict[str, torch.Tensor]
    cloud: dict[str, Any]  # module, optimizer, stats, generator, continual, seen
    result: dict[str, Any]
    federation: dict[str, Any] = dataclasses.field(default_factory=dict)  # strategy state


def result_state(result: Any) -> dict[str, Any]:
    """A ``RunResult`` as plain containers (accuracy matrices as cell lists)."""
    state: dict[str, Any] = {}
    for f in dataclasses.fields(result):
        value = getattr(result, f.name)
        if isinstance(value, AccuracyMatrix):
            state[f.name] = value.to_dict()
        elif f.name == "clients":
            state[f.name] = {str(pid): m.to_dict() for pid, m in value.items()}
        else:
            state[f.name] = copy.deepcopy(value)
    return state


def restore_result(result: Any, state: dict[str, Any]) -> None:
    """Fill a fresh ``RunResult`` from ``result_state``'s output (unknown keys are ignored)."""
    for f in dataclasses.fields(result):
        if f.name not in state:
            continue
        value = state[f.name]
        if isinstance(getattr(result, f.name), AccuracyMatrix):
            value = AccuracyMatrix.from_dict(value)
        elif f.name == "clients":
            value = {int(pid): AccuracyMatrix.from_dict(m) for pid, m in value.items()}
        setattr(result, f.name, value)


def cloud_snapshot(cloud: CloudTrainer, uploads: list) -> dict[str, Any]:
    """The cloud trainer's state: module, optimizer, stats, RNG, continual state, seen classes,
    and (cloud mode) the current experience's uploads."""
    return {
        "module": {k: v.detach().cpu() for k, v in cloud.cloud.state_dict().items()},
        "optimizer": cloud.optimizer.state_dict() if cloud.optimizer else None,
        "stats": dataclasses.asdict(cloud.stats),
        "depth_stats": {d: dataclasses.asdict(s) for d, s in cloud.depth_stats.items()},
        "generator": cloud.generator.get_state(),
        "continual": cloud.continual.cloud_state(),
        "seen": cloud.seen.classes() if cloud.seen is not None else [],
        "uploads": uploads,
    }


def restore_cloud(cloud: CloudTrainer, saved: dict[str, Any]) -> list:
    """Load ``cloud_snapshot``'s output into ``cloud``; returns the saved uploads."""
    cloud.cloud.load_state_dict(saved["module"])
    if cloud.optimizer is not None and saved["optimizer"] is not None:
        cloud.optimizer.load_state_dict(saved["optimizer"])
    cloud.stats = CloudStats(**saved["stats"])
    cloud.depth_stats = {d: CloudStats(**s) for d, s in saved.get("depth_stats", {}).items()}
    cloud.generator.set_state(saved["generator"])
    cloud.continual.load_cloud_state(saved["continual"])
    if cloud.seen is not None:
        cloud.seen.add(torch.tensor(saved["seen"], dtype=torch.long))
    return list(saved["uploads"])


def save_checkpoint(folder: Path, checkpoint: Checkpoint) -> Path:
    path = Path(folder) / CHECKPOINT
    save_atomic({"version": VERSION, **dataclasses.asdict(checkpoint)}, path)
    return path


def load_checkpoint(folder: str | Path) -> Checkpoint:
    """Read ``folder/checkpoint.pt``; a missing or unreadable file is a ``resume`` error."""
    path = Path(folder) / CHECKPOINT
    if not path.is_file():
        raise ConfigError(
            "resume", f"no {CHECKPOINT} in {folder}; pass the run folder of an interrupted run"
        )
    try:
        data = torch.load(path, weights_only=True)
    except Exception as exc:  # a truncated or foreign file
        raise ConfigError("resume", f"cannot read {path}: {exc}") from None
    if data.get("version") != VERSION:
        raise ConfigError("resume", f"{path} has version {data.get('version')}, need {VERSION}")
    data.pop("version")
    return Checkpoint(**data)


def check_compatible(checkpoint: Checkpoint, config: HierConfig) -> None:
    """The resumed run must train the same model on the same schedule."""
    current = config.to_dict()
    for key, value in checkpoint.config.items():
        if key in RESUMABLE_CHANGES or key not in current:
            continue
        if current[key] != value:
            raise ConfigError(
                "resume",
                f"the checkpoint was written with {key.replace('_', '-')}={value!r} but this run "
                f"has {current[key]!r}; resume with the interrupted run's config",
            )


def checkpoint_due(config: HierConfig, done: int) -> bool:
    """Whether to checkpoint after ``done`` rounds of the schedule: at each experience's end
    (unless ``checkpoint-every`` is -1), and every ``checkpoint-every`` rounds when > 0."""
    every = config.checkpoint_every
    ended = done % config.rounds == 0
    return (ended and every >= 0) or (every > 0 and done % every == 0)


def save_run(
    folder: Path,
    config: HierConfig,
    *,
    next_round: int,
    state_key: str,
    edge_state: EdgeState,
    cloud: CloudTrainer,
    uploads: list,
    result: Any,
    federation: Federation,
) -> Path:
    """Write a run's checkpoint: cursor, weights, cloud, metrics so far, strategy state."""
    checkpoint = Checkpoint(
        config=config.to_dict(),
        next_round=next_round,
        state_key=state_key,
        edge_state={k: v.detach().cpu() for k, v in edge_state.items()},
        cloud=cloud_snapshot(cloud, uploads),
        result=result_state(result),
        federation=federation.state_dict(),
    )
    return save_checkpoint(folder, checkpoint)


def resume_run(
    config: HierConfig, cloud: CloudTrainer, federation: Federation, result: Any
) -> tuple[Checkpoint, list]:
    """Load ``config.resume``'s checkpoint into the cloud, the federation and ``result``;
    return it and the cloud-mode uploads it kept."""
    checkpoint = load_checkpoint(config.resume)
    check_compatible(checkpoint, config)
    restore_result(result, checkpoint.result)
    uploads = restore_cloud(cloud, checkpoint.cloud)
    federation.load_state_dict(checkpoint.federation)
    return checkpoint, uploads
