"""Where node-local state lives by default: this user's own cache folder."""

from __future__ import annotations

import os
from pathlib import Path


def default_state_dir(partition_id: int) -> Path:
    """``$XDG_CACHE_HOME/hierfl/node-N`` (default ``~/.cache``): never a shared, predictable
    path such as ``/tmp/hierfl``, which another local user could create first."""
    cache = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(cache) / "hierfl" / f"node-{partition_id}"
