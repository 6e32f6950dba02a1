"""``hierfl.run``: the one entry point of a run, for the CLI, the ServerApp, benchmarks and tests.

>>> import hierfl
>>> result = hierfl.run(clients=2, experiences=1, rounds=1, local_epochs=1)  # doctest: +SKIP
>>> sorted(result.final)  # doctest: +SKIP
['cloud_accuracy', 'cloud_bwt', 'cloud_forgetting', 'edge_accuracy', 'edge_bwt', ...]

Without ``grid`` the edges run in this process (``hierfl.app.inprocess.InProcessGrid``); with a
Flower ``Grid`` (a ServerApp's) they are real SuperNodes. Either way the same orchestrator,
federation, edge handlers and Flower strategy run.
"""

from __future__ import annotations

import dataclasses
import logging
import tempfile
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from hierfl.app.grid_federation import GridFederation, build_strategy
from hierfl.app.inprocess import InProcessGrid
from hierfl.cloud.orchestrator import Orchestrator
from hierfl.config import HierConfig
from hierfl.data.avalanche import from_avalanche
from hierfl.data.containers import Benchmark, ClientStream
from hierfl.data.streams import build_benchmark, load_test_benchmark, partition_stream
from hierfl.errors import ConfigError, RunFailed
from hierfl.modes import MODES
from hierfl.preflight import preflight
from hierfl.resolve import resolve
from hierfl.results.accuracy import AccuracyMatrix
from hierfl.results.run_folder import write_run_folder
from hierfl.results.summary import finish_run, run_metrics

Grid = Any  # a ``flwr.serverapp.Grid``; Flower is imported only by ``hierfl.app``

log = logging.getLogger("hierfl")


@dataclass
class Result:
    """What a run produced: the ``metrics.json`` content plus the accuracy matrices."""

    config: HierConfig
    metrics: dict[str, Any]
    accuracy: AccuracyMatrix  # per exit: R[k][j], accuracy on experience j after k
    clients: dict[int, AccuracyMatrix] = field(default_factory=dict)  # per edge (partition)
    out: Path | None = None  # the run folder, when one was written

    @property
    def final(self) -> dict[str, float]:
        """Stream accuracy, forgetting and BWT of each exit after the last experience."""
        return dict(self.metrics["final"])

    @property
    def status(self) -> str:
        """``completed``, or ``failed`` (``metrics["reason"]`` says why)."""
        return str(self.metrics.get("status", "completed"))

    @property
    def communication(self) -> dict[str, Any]:
        return dict(self.metrics["communication"])

    @property
    def time(self) -> dict[str, Any]:
        return dict(self.metrics["time"])

    def write(self, folder: str | Path) -> Path:
        """Write ``metrics.json``, ``metrics.csv`` and the plots to ``folder``."""
        write_run_folder(folder, self.metrics)
        return Path(folder)


def resolve_config(
    config: HierConfig | Mapping[str, Any] | None, overrides: Mapping[str, Any]
) -> HierConfig:
    """A validated config from a ``HierConfig``, a mapping (dashed or underscored keys) and
    keyword overrides, later ones winning (``hierfl.resolve.resolve``; the log says which
    continual-method defaults were filled in and which keys have no effect)."""
    base = config if isinstance(config, HierConfig) else None
    layers = [dict(config) if isinstance(config, Mapping) else {}, dict(overrides)]
    return resolve(layers, base=base, say=log.info, warn=log.warning)


def run(
    config: HierConfig | Mapping[str, Any] | None = None,
    /,
    *,
    grid: Grid | None = None,
    benchmark: Any = None,
    out: str | Path | None = None,
    state_key: str = "",
    **overrides: Any,
) -> Result:
    """Train and evaluate one run; return its ``Result``.

    Args:
        config: a ``HierConfig``, or a mapping of config keys; ``overrides`` win over it
            (``hierfl.run(clients=2, strategy="fedmedian")``).
        grid: a Flower ``Grid`` whose nodes are ``hierfl-client`` SuperNodes (the ServerApp
            passes its own), or an ``InProcessGrid``. None: the edges run in this process.
        benchmark: the stream to learn: hierfl's ``Benchmark``, or an Avalanche benchmark (an
            object with ``train_stream`` and ``test_stream``); None: the config's ``scenario``.
            With a Flower grid only its test stream is used (edges build their own streams).
        out: a folder for ``metrics.json``, the plots, checkpoints and (in process) the edges'
            node-local state; None: nothing is written.
        state_key: the name of the edges' state folders (a resumed run reuses the old one).

    Raises:
        ConfigError: a config value is invalid (the message names the key).
        RunFailed: the run stopped on a systematic failure; ``metrics.json`` (with ``out``)
            records ``status: "failed"`` and the reason; ``exc.result`` is the ``Result``.
    """
    session = prepare(
        config, grid=grid, benchmark=benchmark, out=out, state_key=state_key, **overrides
    )
    return session.run()


@dataclass
class Session:
    """A run assembled and ready: ``run()`` trains it. ``orchestrator`` is open to tests."""

    config: HierConfig
    orchestrator: Orchestrator
    engine: str  # "flower" (a Flower grid) or "inprocess"
    folder: Path | None
    _tmp: tempfile.TemporaryDirectory | None = None

    def run(self) -> Result:
        try:
            result = self.orchestrator.run()
        finally:
            if self._tmp is not None:
                self._tmp.cleanup()
        if self.folder is not None:
            metrics = finish_run(self.config, result, self.folder, engine=self.engine)
        else:
            metrics = run_metrics(self.config, result, engine=self.engine)
        outcome = Result(self.config, metrics, result.matrix, dict(result.clients), self.folder)
        if result.status == "failed":
            raise RunFailed(result.reason, outcome)
        return outcome


def prepare(
    config: HierConfig | Mapping[str, Any] | None = None,
    /,
    *,
    grid: Grid | None = None,
    benchmark: Any = None,
    out: str | Path | None = None,
    state_key: str = "",
    clock: Callable[[], float] | None = None,
    **overrides: Any,
) -> Session:
    """Assemble a run as ``run`` does (same arguments), without starting it.

    ``clock`` replaces the orchestrator's clock (tests of timeouts).
    """
    cfg = resolve_config(config, overrides)
    folder = Path(out).resolve() if out is not None else None
    if folder is not None:
        cfg = dataclasses.replace(cfg, out=str(folder))
    bench = _benchmark(benchmark)
    if bench is not None:
        cfg = _fit_to(cfg, bench)
    tmp = None
    if grid is None:
        if bench is None:
            preflight(cfg)
            bench = _build(cfg)
        state_key = state_key or cfg.state_key or "run-0"
        if folder is None:
            tmp = tempfile.TemporaryDirectory(prefix="hierfl-nodes-")
        nodes = folder / "nodes" if folder is not None else Path(tmp.name)  # type: ignore[union-attr]
        grid = InProcessGrid(
            dataclasses.replace(cfg, state_key=state_key), edge_streams(cfg, bench), nodes
        )
    engine = "inprocess" if isinstance(grid, InProcessGrid) else "flower"
    federation = GridFederation(
        grid,
        build_strategy(cfg),
        message_ttl=cfg.reply_timeout,  # a request lives as long as the cloud waits for it
        sequential=MODES[cfg.mode].sequential,
    )
    orchestrator = Orchestrator(
        cfg,
        federation,
        bench if bench is not None else _test_set(cfg, folder),
        poll_interval=0.05 if engine == "flower" else 0.0,
        checkpoint_dir=folder,
        state_key=state_key,
        **({"clock": clock} if clock is not None else {}),
    )
    return Session(cfg, orchestrator, engine, folder, tmp)


def _fit_to(config: HierConfig, bench: Benchmark) -> HierConfig:
    """A given benchmark sets the number of experiences unless the config asks for fewer."""
    count = len(bench.test)
    if config.experiences == HierConfig().experiences and count != config.experiences:
        log.info("experiences=%d: the benchmark's own count", count)
        return dataclasses.replace(config, experiences=count).validate()
    if config.experiences > count:
        raise ConfigError("experiences", f"got {config.experiences}, but the benchmark has {count}")
    return config


def edge_streams(config: HierConfig, benchmark: Benchmark) -> list[ClientStream]:
    """Every edge's private stream: the registered partitioner's share, then its delays."""
    return [partition_stream(config, benchmark, i, config.clients) for i in range(config.clients)]


def _build(config: HierConfig) -> Benchmark:
    return build_benchmark(config)


def _benchmark(benchmark: Any) -> Benchmark | None:
    """hierfl's own ``Benchmark`` as is; an Avalanche benchmark converted to tensors."""
    if benchmark is None or isinstance(benchmark, Benchmark):
        return benchmark

    return from_avalanche(benchmark)


def _test_set(config: HierConfig, folder: Path | None) -> Benchmark:
    cache = folder / ".cache" if folder is not None else Path(tempfile.gettempdir()) / "hierfl"
    return load_test_benchmark(config, cache_dir=cache)
