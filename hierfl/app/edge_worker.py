"""The long-lived edge worker: one per ``hierfl-client``, so a message does not pay torch's import.

Flower starts a fresh ``flwr-clientapp`` process for every message. Importing torch and hierfl
there costs seconds per message, which is most of Flower's fixed overhead. ``hierfl-client``
therefore starts this worker once, next to its SuperNode; the ClientApp (which imports only
Flower) forwards each request to it over an authenticated local socket and returns its reply.

- The socket is a Unix socket in a private folder (mode 0700), and the peer must also know the
  node's random key (``multiprocessing.connection``'s HMAC challenge) before anything is read.
- Requests are served one at a time, as the SuperNode sends them.
- The worker keeps no training state in memory: it runs the same handlers, against the same
  node-local state folder, as the in-process path, so killing it loses nothing. It exits when
  its parent ``hierfl-client`` dies, and removes its socket folder when it goes.
"""

from __future__ import annotations

import argparse
import ctypes
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
from multiprocessing import AuthenticationError
from multiprocessing.connection import Client, Listener
from pathlib import Path

KEY_ENV = "HIERFL_EDGE_WORKER_KEY"
SOCKET_NAME = "edge-worker.sock"
_PR_SET_PDEATHSIG = 1


class EdgeWorkerError(RuntimeError):
    """The worker ran the request and it failed; the message is the worker's reason."""


def call(address: str, key: bytes, kind: str, content: object, job: object) -> object:
    """Send one request to the worker at ``address`` and return its reply content.

    Raises ``OSError`` when no worker answers (the caller may then run the request itself),
    ``multiprocessing.AuthenticationError`` on a wrong key, and ``EdgeWorkerError`` when the
    worker ran the request and it failed.
    """
    with Client(address, family="AF_UNIX", authkey=key) as conn:
        conn.send((kind, content, job))
        status, value = conn.recv()
    if status != "ok":
        raise EdgeWorkerError(str(value))
    return value


def serve(address: str, key: bytes) -> None:
    """Answer requests on ``address`` until killed."""
    from hierfl.app.edge_handlers import EdgeJob, handle  # torch and hierfl, once per node

    with Listener(address, family="AF_UNIX", authkey=key) as listener:
        print(f"hierfl edge worker ready on {address}", flush=True)
        while True:
            try:
                conn = listener.accept()
            except (OSError, EOFError, AuthenticationError) as exc:  # no key, or hung up
                print(f"edge worker: refused a connection: {exc}", flush=True)
                continue
            with conn:
                try:
                    kind, content, job = conn.recv()
                except (OSError, EOFError):
                    continue
                try:
                    reply = ("ok", handle(kind, content, EdgeJob(*job)))
                except Exception as exc:  # reported to the ClientApp, which names the partition
                    reply = ("error", f"{type(exc).__name__}: {exc}")
                try:
                    conn.send(reply)
                except (OSError, EOFError):  # the ClientApp was stopped; its message is lost
                    continue


def _die_with_parent() -> None:
    """In the child before exec: get SIGTERM when the parent dies, even by SIGKILL (Linux)."""
    try:
        ctypes.CDLL(None, use_errno=True).prctl(_PR_SET_PDEATHSIG, signal.SIGTERM)
    except (OSError, AttributeError):  # not Linux: the worker's own parent watch still applies
        pass


def _exit_removing(folder: str) -> None:
    shutil.rmtree(folder, ignore_errors=True)
    os._exit(0)


def _watch_parent(parent: int, folder: str) -> None:
    while os.getppid() == parent:
        time.sleep(1.0)
    _exit_removing(folder)


def start(
    state_dir: Path, key: bytes, log: Path, address: str | None = None
) -> tuple[subprocess.Popen, str]:
    """Start a worker for the node whose state lives in ``state_dir``; returns it and its address.

    The socket goes to a short private temporary folder (Unix socket paths are limited to about
    100 bytes), or to ``address`` when a worker is restarted in place (a stale socket left by a
    killed worker is removed first). ``state_dir`` is on the worker's command line so the
    node's processes can be found by it.
    """
    if address is None:
        folder = tempfile.mkdtemp(prefix="hierfl-w")
        address = os.path.join(folder, SOCKET_NAME)
    folder = os.path.dirname(address)
    os.makedirs(folder, mode=0o700, exist_ok=True)
    os.chmod(folder, 0o700)
    if os.path.exists(address):
        os.unlink(address)
    log.parent.mkdir(parents=True, exist_ok=True)
    argv = [sys.executable, "-m", "hierfl.app.edge_worker", address, "--state-dir", str(state_dir)]
    with open(log, "ab") as out:
        proc = subprocess.Popen(
            argv,
            env={**os.environ, KEY_ENV: key.hex()},
            stdout=out,
            stderr=subprocess.STDOUT,
            preexec_fn=_die_with_parent,
        )
    return proc, address


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(prog="hierfl-edge-worker", description=__doc__.split("\n")[0])
    p.add_argument("address", help="Unix socket path to listen on")
    p.add_argument("--state-dir", default="", help="the node's state folder (for process lookup)")
    args = p.parse_args(argv)
    key = os.environ.pop(KEY_ENV, "")
    if not key:
        p.exit(2, f"hierfl-edge-worker: error: {KEY_ENV} is not set\n")
    # Stopped (SIGTERM, also sent when hierfl-client dies) or orphaned: remove the socket folder.
    folder = os.path.dirname(args.address)
    signal.signal(signal.SIGTERM, lambda *_: _exit_removing(folder))
    threading.Thread(target=_watch_parent, args=(os.getppid(), folder), daemon=True).start()
    serve(args.address, bytes.fromhex(key))


if __name__ == "__main__":
    main()
