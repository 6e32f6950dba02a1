"""ServerApp = cloud trainer plus the round loop; writes the run folder at the end."""

from __future__ import annotations

import logging
import sys
from pathlib import Path

import torch
from flwr.app import Context
from flwr.serverapp import Grid, ServerApp

from hierfl.app.federation import FlowerFederation
from hierfl.config import HierConfig
from hierfl.modes import MODES
from hierfl.orchestrator import Orchestrator
from hierfl.plugins import AGGREGATORS
from hierfl.run_folder import finish_run
from hierfl.streams import load_test_benchmark

app = ServerApp()


def _setup_logging(out: Path) -> None:
    logger = logging.getLogger("hierfl")
    logger.setLevel(logging.INFO)
    logger.propagate = False
    fmt = logging.Formatter("%(asctime)s %(levelname)s hierfl: %(message)s", "%H:%M:%S")
    out.mkdir(parents=True, exist_ok=True)
    for handler in (logging.StreamHandler(sys.stderr), logging.FileHandler(out / "log.txt")):
        handler.setFormatter(fmt)
        logger.addHandler(handler)


@app.main()
def main(grid: Grid, context: Context) -> None:
    config = HierConfig.from_mapping(context.run_config).validate()
    out = Path(config.out).resolve()
    _setup_logging(out)
    if config.cloud_threads:
        torch.set_num_threads(config.cloud_threads)
    logging.getLogger("hierfl").info("run folder %s; config %s", out, config.to_flwr())
    test = load_test_benchmark(config, cache_dir=out / ".cache")
    strategy = AGGREGATORS.get(config.strategy)(config)
    federation = FlowerFederation(
        grid,
        strategy,
        message_ttl=config.reply_timeout * 2,
        sequential=MODES[config.mode].sequential,
    )
    # Edges keep their state under this name; a resumed run (``resume``) reuses the old one.
    state_key = config.state_key or f"run-{context.run_id}"
    result = Orchestrator(config, federation, test, checkpoint_dir=out, state_key=state_key).run()
    finish_run(config, result, out)
