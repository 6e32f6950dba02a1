"""Where Flower's command-line tools live: this environment's ``bin/`` first, then ``PATH``."""

from __future__ import annotations

import shutil
import sys
from pathlib import Path

from hierfl.errors import HierflError


def flower_bin(name: str) -> str:
    """The path of ``name`` (``flwr``, ``flower-superlink``, ...), installed with hierfl."""
    local = Path(sys.executable).parent / name
    found = str(local) if local.exists() else shutil.which(name)
    if not found:
        raise HierflError(f"{name} not found: install hierfl into this environment")
    return found
