"""``hierfl-client`` keeps its edge worker alive: a dead worker is restarted, with back-off.

A worker that exits (killed, out of memory, a crash in torch) is restarted at the same socket
address, after 1, 2, 4, ... seconds, at most ``max_restarts`` times; each restart is logged. The
worker's state lives in the node-local folder, so a restart loses nothing. While a restart is
under way the ClientApp waits for it (``STATUS`` in the socket folder says ``restarting``);
once restarts are exhausted the status says ``gave-up``, the ClientApp runs every message in
its own process (slower, same result), and ``hierfl-client`` says so once.
"""

from __future__ import annotations

import os
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from pathlib import Path

from hierfl.deploy import edge_worker

STATUS = "status"  # in the socket folder: "ready", "restarting" or "gave-up"


def read_status(address: str) -> str:
    """The worker's status as its supervisor wrote it ("" when none was written)."""
    try:
        return Path(os.path.dirname(address), STATUS).read_text().strip()
    except OSError:
        return ""


class WorkerSupervisor:
    """Starts the node's edge worker and restarts it when it dies."""

    def __init__(
        self,
        state_dir: Path,
        key: bytes,
        *,
        max_restarts: int = 5,
        first_backoff_s: float = 1.0,
        poll_s: float = 0.5,
        say: Callable[[str], None] | None = None,
    ) -> None:
        self.state_dir = Path(state_dir)
        self.key = key
        self.max_restarts = max_restarts
        self.first_backoff_s = first_backoff_s
        self.poll_s = poll_s
        self.say = say or (lambda line: print(f"hierfl-client: {line}", file=sys.stderr))
        self.restarts = 0
        self.proc: subprocess.Popen | None = None
        self.address = ""
        self._stopping = threading.Event()
        self._thread: threading.Thread | None = None

    @property
    def log(self) -> Path:
        return self.state_dir / "edge-worker.log"

    def start(self) -> str:
        """Start the worker and its watch; returns the socket address."""
        self.proc, self.address = edge_worker.start(self.state_dir, self.key, self.log)
        self._status("ready")
        self._thread = threading.Thread(target=self._watch, daemon=True, name="worker-watch")
        self._thread.start()
        return self.address

    def _status(self, value: str) -> None:
        folder = os.path.dirname(self.address)
        os.makedirs(folder, mode=0o700, exist_ok=True)
        tmp = os.path.join(folder, f".{STATUS}.tmp")
        Path(tmp).write_text(value)
        os.replace(tmp, os.path.join(folder, STATUS))

    def _watch(self) -> None:
        while not self._stopping.wait(self.poll_s):
            assert self.proc is not None
            code = self.proc.poll()
            if code is None:
                continue
            if self.restarts >= self.max_restarts:
                # said before it is published: whoever reads "gave-up" finds the reason logged
                self.say(
                    f"edge worker exited with code {code}; {self.restarts} restarts used up: "
                    "from now on every message runs in Flower's ClientApp process (slower, "
                    f"same results); see {self.log}"
                )
                self._status("gave-up")
                return
            self.restarts += 1
            delay = self.first_backoff_s * 2 ** (self.restarts - 1)
            self.say(
                f"edge worker exited with code {code}; restart {self.restarts} of "
                f"{self.max_restarts} in {delay:g}s"
            )
            self._status("restarting")
            if self._stopping.wait(delay):
                return
            self.proc, _ = edge_worker.start(self.state_dir, self.key, self.log, self.address)
            self._status("ready")

    def stop(self) -> None:
        """Stop watching, then the worker; remove the socket folder."""
        import shutil

        self._stopping.set()
        if self._thread is not None:
            self._thread.join(timeout=5)
        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
        if self.address:
            shutil.rmtree(os.path.dirname(self.address), ignore_errors=True)


def wait_until_ready(address: str, timeout_s: float, *, poll_s: float = 0.2) -> bool:
    """Wait while the supervisor restarts the worker; False if it gave up or time ran out."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        status = read_status(address)
        if status == "gave-up":
            return False
        if status == "ready" and os.path.exists(address):
            return True
        time.sleep(poll_s)
    return False
