"""ServerApp = cloud trainer plus the round loop: ``hierfl.run`` over the ServerApp's Grid."""

from __future__ import annotations

from pathlib import Path

import torch
from flwr.app import Context
from flwr.serverapp import Grid, ServerApp

from hierfl.api import run
from hierfl.app.flower_internals import check_flower_version
from hierfl.config import HierConfig
from hierfl.errors import RunFailed
from hierfl.util.logs import setup_logging

app = ServerApp()


@app.main()
def main(grid: Grid, context: Context) -> None:
    config = HierConfig.from_mapping(context.run_config).validate()
    out = Path(config.out).resolve()
    check_flower_version(setup_logging(out).warning)
    if config.cloud_threads:
        torch.set_num_threads(config.cloud_threads)
    # Edges keep their state under this name; a resumed run (``resume``) reuses the old one.
    state_key = config.state_key or f"run-{context.run_id}"
    try:
        run(config, grid=grid, out=out, state_key=state_key)
    except RunFailed:  # metrics.json says so; ``hierfl run`` reads it and exits non-zero
        pass
