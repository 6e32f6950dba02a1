"""``hierfl run --engine simulation``: the same ServerApp and ClientApp through Flower's
Simulation Engine (Ray), on this machine.

A simulation-mode ``flower-superlink`` on loopback runs the ServerApp and ``clients`` virtual
SuperNodes whose ClientApps live in long-lived Ray actors (no process per message), each with
``sim-cpus-per-edge`` CPUs and ``sim-gpus-per-edge`` of a GPU; ``flwr run`` submits the app with
``--federation-config``. An edge keeps what must outlive a message (optimizer, cursor, replay
buffer, exchange residuals) in its node-local state folder, as on a device: under the run folder
(``nodes-sim/``), not in an actor. docs/deployment.md says how to run it on a Ray cluster.
"""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path
from typing import IO

from hierfl.config import HierConfig
from hierfl.deploy.launch import (
    CONNECTION,
    finish_run,
    flower_bin,
    flower_env,
    free_port,
    start_superlink,
    stream_run,
    write_app,
    write_connection,
)
from hierfl.deploy.processes import LaunchError, Processes
from hierfl.results.summary import ENGINE_ENV

# Ray's own start-up (its dashboard, usage stats) adds seconds and tries the network.
RAY_ENV = {
    "RAY_USAGE_STATS_ENABLED": "0",
    "RAY_DISABLE_DOCKER_CPU_WARNING": "1",
    "RAY_DEDUP_LOGS": "0",
    "RAY_ENABLE_UV_RUN_RUNTIME_ENV": "0",
}


def ray_missing() -> bool:
    return importlib.util.find_spec("ray") is None


def gpus_per_edge(config: HierConfig) -> float:
    """``sim-gpus-per-edge``, or for -1 (auto) a share of one GPU among the edges that run at
    once where the edges train on CUDA, else none."""
    if config.sim_gpus_per_edge >= 0:
        return config.sim_gpus_per_edge
    from hierfl.results.summary import edges_at_once
    from hierfl.train.devices import resolve_device

    if resolve_device("edge-device", config.edge_device) == "cpu":
        return 0.0
    return round(1.0 / edges_at_once(config, "simulation"), 4)


def federation_config(config: HierConfig) -> str:
    """``flwr run --federation-config``: the virtual edges and each one's resources."""
    return (
        f"num-supernodes={config.clients} "
        f"client-resources-num-cpus={config.sim_cpus_per_edge} "
        f"client-resources-num-gpus={gpus_per_edge(config)!r}"
    )


def run_simulated(
    config: HierConfig, *, echo: IO[str] = sys.stdout, timeout: float | None = None
) -> Path:
    """Run ``config`` through a simulation SuperLink on loopback; return the run folder.

    Raises:
        LaunchError: Ray is not installed (``pip install -e ".[simulation]"``), or the
            SuperLink or ``flwr run`` failed (their logs are in the run folder's ``logs/``).
        RunFailed: the run stopped on a systematic failure (``metrics.json`` says why).
    """
    if ray_missing():
        raise LaunchError(
            "--engine simulation needs Ray: pip install -e '.[simulation]' "
            "(flwr[simulation], ray 2.55.1)"
        )
    out = Path(config.out).resolve()
    config = HierConfig.from_mapping({"out": str(out)}, base=config)
    logs = out / "logs"
    logs.mkdir(parents=True, exist_ok=True)
    write_app(out / "app", config)
    flwr_home = out / ".flwr"
    env = flower_env(flwr_home)
    env.update(RAY_ENV)
    env[ENGINE_ENV] = "simulation"
    env["XDG_CACHE_HOME"] = str(out / "nodes-sim")  # each virtual edge's node-local state
    port = free_port()
    write_connection(flwr_home, port)
    procs = Processes()
    try:
        start_superlink(procs, env, port, logs, simulation=True)
        run = [flower_bin("flwr"), "run", str(out / "app"), CONNECTION, "--stream"]
        run += ["--federation-config", federation_config(config)]
        stream_run(run, env, echo, logs / "flwr-run.log", procs, timeout)
    finally:
        procs.stop()
    return finish_run(out, logs)
