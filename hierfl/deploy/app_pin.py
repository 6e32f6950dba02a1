"""Only our own app runs on the edges: ``hierfl-client`` refuses any other app before its code runs.

In Flower 1.42 anyone who reaches the SuperLink port can ``flwr run`` an app, and every
SuperNode then runs that app's ClientApp. Flower's own check (``--trusted-entities``) accepts
only apps signed through Flower Hub, which a private deployment does not have. So hierfl-client
checks each new run's app bundle (FAB) itself, inside the SuperNode, before the SuperNode stores
it or starts any process for it:

- an app whose SHA-256 is in ``--allow-app-hash`` is accepted as it is;
- otherwise the app must be *code-free* (only ``pyproject.toml`` and text files: no Python file
  that could shadow the installed package), its ClientApp must be exactly
  ``hierfl.client_app:app`` and its publisher ``hierfl``. The code that then runs is the
  hierfl this device's owner installed; what the run may ask of it is bounded by the edge
  policy (``hierfl.edge.policy``).

A refused app gets Flower's own ``INVALID_FAB`` error reply, so the ServerApp sees the edge
fail; hierfl-client logs why. The check hooks Flower 1.42's SuperNode loop (its FAB
verification step, driven with hierfl's verifier); with another Flower version hierfl-client
refuses to start rather than run unchecked apps.
"""

from __future__ import annotations

import hashlib
import io
import sys
import tomllib
import zipfile
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import PurePosixPath

from hierfl.app.flower_internals import install_fab_check

CLIENT_APP = "hierfl.client_app:app"
PUBLISHER = "hierfl"
_TEXT_SUFFIXES = {".md", ".txt", ".rst"}


@dataclass(frozen=True)
class AppPin:
    """Which apps this edge runs."""

    hashes: frozenset[str] = field(default_factory=frozenset)

    def refusal(self, fab: bytes) -> str:
        """Why ``fab`` may not run here ('' when it may)."""
        digest = hashlib.sha256(fab).hexdigest()
        if digest in self.hashes:
            return ""
        try:
            with zipfile.ZipFile(io.BytesIO(fab)) as z:
                names = [n for n in z.namelist() if not n.endswith("/")]
                pyproject = tomllib.loads(z.read("pyproject.toml").decode("utf-8"))
        except (zipfile.BadZipFile, KeyError, UnicodeDecodeError, tomllib.TOMLDecodeError) as exc:
            return f"not a readable Flower app ({exc})"
        carried = [n for n in names if not _is_text(n)]
        if carried:
            return (
                f"the app carries code or other files ({', '.join(sorted(carried)[:5])}); only "
                f"hierfl's code-free app runs here (sha256 {digest}; allow it with "
                "--allow-app-hash if you trust it)"
            )
        flwr_app = pyproject.get("tool", {}).get("flwr", {}).get("app", {})
        component = flwr_app.get("components", {}).get("clientapp")
        if component != CLIENT_APP:
            return f"its ClientApp is {component!r}, not {CLIENT_APP!r}"
        if flwr_app.get("publisher") != PUBLISHER:
            return f"its publisher is {flwr_app.get('publisher')!r}, not {PUBLISHER!r}"
        return ""


def _is_text(name: str) -> bool:
    path = PurePosixPath(name)
    if name == "pyproject.toml" or (path.parts and path.parts[0] == ".info"):
        return True
    return len(path.parts) == 1 and (
        path.suffix.lower() in _TEXT_SUFFIXES or path.name.upper().startswith("LICENSE")
    )


def install(pin: AppPin, say: Callable[[str], None] | None = None) -> None:
    """Make this process's SuperNode check every new run's app against ``pin`` before it stores
    it or starts any process for it (``flower_internals.install_fab_check``); a refused app is
    logged with the reason."""
    tell = say or (lambda text: print(text, file=sys.stderr, flush=True))

    def refusal(fab: bytes, run_id: int) -> str:
        why = pin.refusal(fab)
        if why:
            tell(f"hierfl-client: refused the app of run {run_id}: {why}")
        return why

    install_fab_check(refusal)
