"""The ``hierfl`` logger of a run: progress on stderr and in the run folder's ``log.txt``."""

from __future__ import annotations

import logging
import sys
from pathlib import Path

FORMAT = "%(asctime)s %(levelname)s hierfl: %(message)s"


def setup_logging(out: Path | None) -> logging.Logger:
    """Send ``hierfl``'s INFO lines to stderr and, with ``out``, to ``out/log.txt``."""
    logger = logging.getLogger("hierfl")
    logger.setLevel(logging.INFO)
    logger.propagate = False
    for handler in list(logger.handlers):  # a second run in one process starts afresh
        logger.removeHandler(handler)
        handler.close()
    handlers: list[logging.Handler] = [logging.StreamHandler(sys.stderr)]
    if out is not None:
        out.mkdir(parents=True, exist_ok=True)
        handlers.append(logging.FileHandler(out / "log.txt"))
    fmt = logging.Formatter(FORMAT, "%H:%M:%S")
    for handler in handlers:
        handler.setFormatter(fmt)
        logger.addHandler(handler)
    return logger
