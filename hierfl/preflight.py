"""Checks that need the scenario, run before any process starts and without building it.

``hierfl run`` calls ``preflight`` before the SuperLink, the SuperNodes or the ServerApp exist,
and ``hierfl.run`` before it builds the benchmark, so that ``experiences=11`` on the 10 classes
of digits, an input shape a model cannot take or a data folder with the wrong layout is one
line naming the key, not a failure deep inside a Flower process.
"""

from __future__ import annotations

import logging
import os
import shutil
from pathlib import Path

from hierfl.cloud.checkpoint import check_compatible, load_checkpoint
from hierfl.config import HierConfig
from hierfl.data.containers import ScenarioInfo
from hierfl.data.streams import build_benchmark, scenario_spec
from hierfl.errors import ConfigError, HierflError
from hierfl.models import model_for
from hierfl.registry import SCENARIOS
from hierfl.train.devices import resolve_device

log = logging.getLogger("hierfl")
MIN_FREE_BYTES = 64 * 2**20  # a run folder needs room for checkpoints and logs
RUN_FOLDER_MARKS = ("metrics.json", "checkpoint.pt", "log.txt", "logs", "app")


def describe(config: HierConfig) -> ScenarioInfo:
    """The scenario's class count and input shape; a folder scenario's layout is checked.

    A plug-in that declares no ``describe`` is built instead (correct, but slower).
    """
    plugin = SCENARIOS.plugin(config.scenario)
    if plugin.describe is None:
        bench = build_benchmark(config)
        return ScenarioInfo(bench.num_classes, bench.input_shape)
    return plugin.info(scenario_spec(config), config.settings(config.scenario))  # type: ignore[no-any-return]


def preflight(config: HierConfig) -> ScenarioInfo:
    """Check the config against its scenario and model; return the scenario's description.

    Raises:
        ConfigError: naming the key: ``experiences`` above the class count, an input shape the
            model cannot take, ``data-dir`` missing or of the wrong layout, ...
    """
    if config.resume:  # the checkpoint is there, readable, and of this run's schedule
        check_compatible(load_checkpoint(config.resume), config)
    info = describe(config)  # a folder scenario explains its own layout
    if config.data_dir and not Path(config.data_dir).expanduser().is_dir():
        raise ConfigError("data-dir", f"no such folder: {config.data_dir}")
    if config.experiences > info.num_classes:
        raise ConfigError(
            "experiences",
            f"got {config.experiences}; {config.scenario} has {info.num_classes} classes, so "
            f"allowed 1..{info.num_classes} (each experience needs at least one class)",
        )
    _check_model(config, info)

    resolve_device("edge-device", config.edge_device)
    resolve_device("cloud-device", config.cloud_device)
    return info


def _check_model(config: HierConfig, info: ScenarioInfo) -> None:
    """The model takes the scenario's input shape at the chosen cut: one forward pass of one
    sample through the edge, its exit and the cloud."""
    import torch

    try:
        model = model_for(config, info.num_classes, info.input_shape).eval()
        with torch.no_grad():
            x = torch.zeros(1, *info.input_shape)
            model.forward_edge(x)
            model(x)
    except HierflError:
        raise
    except (RuntimeError, ValueError) as exc:
        shape = "x".join(map(str, info.input_shape))
        raise ConfigError(
            "input-shape",
            f"{config.model} cannot take {shape} inputs at cut {config.cut or 'default'} "
            f"({str(exc).splitlines()[0]}); set input-shape (e.g. 3x32x32) or pick another "
            "model or cut",
        ) from None


def prepare_run_folder(out: Path, *, resume: bool = False, overwrite: bool = False) -> None:
    """Make sure ``out`` can hold a run: creatable, writable, with room, and not another run.

    Raises:
        ConfigError("out", ...): the folder cannot be created or written, the disk is (nearly)
            full, or it holds a finished or interrupted run or other files (``overwrite``
            replaces a run folder; never a folder that is not one).
    """
    try:
        out.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise ConfigError(
            "out", f"cannot create {out}: {exc.strerror}; choose another --out"
        ) from None
    if not os.access(out, os.W_OK | os.X_OK):
        raise ConfigError("out", f"{out} is not writable; choose another --out")
    free = shutil.disk_usage(out).free
    if free < MIN_FREE_BYTES:
        raise ConfigError(
            "out",
            f"only {free / 2**20:.0f} MiB free under {out}; free some space or choose "
            "another --out",
        )
    if resume:
        return
    entries = [p.name for p in out.iterdir()]
    if not entries:
        return
    is_run = any(name in RUN_FOLDER_MARKS for name in entries)
    if is_run and overwrite:
        log.warning("--overwrite: replacing the run in %s", out)
        for entry in out.iterdir():
            shutil.rmtree(entry) if entry.is_dir() and not entry.is_symlink() else entry.unlink()
        return
    if (out / "metrics.json").exists():
        raise ConfigError(
            "out", f"{out} holds a finished run; choose another --out or pass --overwrite"
        )
    if (out / "checkpoint.pt").exists():
        raise ConfigError(
            "out",
            f"{out} holds an interrupted run; continue it with --resume {out}, or pass "
            "--overwrite to start over",
        )
    if is_run:
        raise ConfigError("out", f"{out} holds another run's files; pass --overwrite")
    raise ConfigError(
        "out", f"{out} is not empty and is not a hierfl run folder; choose another --out"
    )
