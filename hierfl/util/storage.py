"""Atomic, private writes for node-local and server state.

A crash never leaves a half-written file: each write goes to a fresh temporary file created
beside its target with ``O_EXCL`` (``tempfile.mkstemp``: mode 0600, never following a planted
symlink) and is then renamed into place. Node state folders are private (0700) and must
belong to the user running the node.
"""

from __future__ import annotations

import os
import stat
import tempfile
from pathlib import Path

import torch

from hierfl.errors import HierflError


def private_dir(path: str | Path) -> Path:
    """Create ``path`` (and its parents) as a folder only this user can enter (0700).

    An existing folder must be a real folder (not a symlink) owned by this user; it is then
    made 0700. Anything else is refused: another local user may have planted it.
    """
    path = Path(path)
    path.mkdir(mode=0o700, parents=True, exist_ok=True)
    info = os.lstat(path)
    if not stat.S_ISDIR(info.st_mode):
        raise HierflError(f"{path} is not a folder (a symlink?); refusing to keep state there")
    if hasattr(os, "getuid") and info.st_uid != os.getuid():
        raise HierflError(
            f"{path} belongs to another user (uid {info.st_uid}); refusing to keep state "
            "there: pick another --state-dir"
        )
    if stat.S_IMODE(info.st_mode) != 0o700:
        os.chmod(path, 0o700)
    return path


def save_atomic(obj: object, path: Path) -> None:
    """``torch.save`` to a private temporary file beside ``path``, then rename it into place."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as f:
            torch.save(obj, f)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
