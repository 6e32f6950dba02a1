"""The long-lived edge worker: one per ``hierfl-client``, so a message does not pay torch's import.

Flower starts a fresh ``flwr-clientapp`` process for every message. Importing torch and hierfl
there costs seconds per message, which is most of Flower's fixed overhead. ``hierfl-client``
therefore starts this worker once, next to its SuperNode; the ClientApp (which imports only
Flower) forwards each request to it over an authenticated local socket and returns its reply.

- The socket is a Unix socket in a private folder (mode 0700), and the peer must also know the
  node's random key (``multiprocessing.connection``'s HMAC challenge) before anything is read.
  The key lives in that folder in a 0600 file (``key``), never on a command line or in the
  node config; the worker gets it through its environment.
- A peer that connects and stays silent is dropped: the handshake must finish within
  ``HANDSHAKE_S`` and the request arrive within ``RECEIVE_S``.
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
from collections.abc import Iterator
from contextlib import contextmanager
from multiprocessing import AuthenticationError
from multiprocessing.connection import Client, Listener, answer_challenge, deliver_challenge
from pathlib import Path

KEY_ENV = "HIERFL_EDGE_WORKER_KEY"
SOCKET_NAME = "edge-worker.sock"
KEY_FILE = "key"
HANDSHAKE_S = 10.0  # a connecting peer must prove it knows the key within this
RECEIVE_S = 120.0  # ... and then send its whole request within this
_PR_SET_PDEATHSIG = 1


class EdgeWorkerError(RuntimeError):
    """The worker ran the request and it failed; the message is the worker's reason."""


def read_key(address: str) -> bytes:
    """The key of the worker at ``address``, from the 0600 file beside its socket."""
    return bytes.fromhex(Path(os.path.dirname(address), KEY_FILE).read_text().strip())


def _write_key(folder: str, key: bytes) -> None:
    path = os.path.join(folder, KEY_FILE)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_NOFOLLOW, 0o600)
    with os.fdopen(fd, "w") as f:
        f.write(key.hex())
    os.chmod(path, 0o600)


def call(
    address: str, key: bytes, kind: str, content: object, job: object, timeout: float = 3600.0
) -> object:
    """Send one request to the worker at ``address`` and return its reply content.

    Raises ``OSError`` when no worker answers (the caller may then run the request itself),
    ``multiprocessing.AuthenticationError`` on a wrong key, and ``EdgeWorkerError`` when the
    worker ran the request and it failed or did not reply within ``timeout`` seconds.
    """
    with Client(address, family="AF_UNIX", authkey=key) as conn:
        conn.send((kind, content, job))
        if not conn.poll(timeout):
            raise EdgeWorkerError(f"the edge worker did not reply within {timeout:g}s")
        status, value = conn.recv()
    if status != "ok":
        raise EdgeWorkerError(str(value))
    return value


class _Silent(Exception):
    """A peer did not finish its handshake or request in time."""


@contextmanager
def _deadline(seconds: float) -> Iterator[None]:
    """Interrupt a blocking read after ``seconds`` (main thread only: SIGALRM)."""

    def fire(*_: object) -> None:
        raise _Silent(f"silent for {seconds:g}s")

    previous = signal.signal(signal.SIGALRM, fire)
    signal.setitimer(signal.ITIMER_REAL, seconds)
    try:
        yield
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, previous)


def serve(
    address: str, key: bytes, *, handshake_s: float = HANDSHAKE_S, receive_s: float = RECEIVE_S
) -> None:
    """Answer requests on ``address`` until killed."""
    from hierfl.app.edge_handlers import EdgeJob, handle  # torch and hierfl, once per node

    # No authkey on the listener: the challenge is made here, under a deadline, so that a
    # peer that connects and says nothing cannot hold the worker.
    with Listener(address, family="AF_UNIX") as listener:
        print(f"hierfl edge worker ready on {address}", flush=True)
        while True:
            try:
                conn = listener.accept()
            except OSError as exc:
                print(f"edge worker: accept failed: {exc}", flush=True)
                continue
            with conn:
                try:
                    with _deadline(handshake_s):
                        deliver_challenge(conn, key)
                        answer_challenge(conn, key)
                    with _deadline(receive_s):
                        kind, content, job = conn.recv()
                except (_Silent, OSError, EOFError, AuthenticationError) as exc:
                    print(f"edge worker: refused a connection: {exc}", flush=True)
                    continue
                reply: tuple[str, object]
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
    state_dir: Path,
    key: bytes,
    log: Path,
    address: str | None = None,
    *,
    handshake_s: float = HANDSHAKE_S,
    receive_s: float = RECEIVE_S,
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
    _write_key(folder, key)
    log.parent.mkdir(parents=True, exist_ok=True)
    argv = [sys.executable, "-m", "hierfl.deploy.edge_worker", address]
    argv += ["--state-dir", str(state_dir)]
    argv += ["--handshake-s", repr(handshake_s), "--receive-s", repr(receive_s)]
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
    p.add_argument("--handshake-s", type=float, default=HANDSHAKE_S, help="handshake deadline")
    p.add_argument("--receive-s", type=float, default=RECEIVE_S, help="request deadline")
    args = p.parse_args(argv)
    key = os.environ.pop(KEY_ENV, "")
    if not key:
        p.exit(2, f"hierfl-edge-worker: error: {KEY_ENV} is not set\n")
    # Stopped (SIGTERM, also sent when hierfl-client dies) or orphaned: remove the socket folder.
    folder = os.path.dirname(args.address)
    signal.signal(signal.SIGTERM, lambda *_: _exit_removing(folder))
    threading.Thread(target=_watch_parent, args=(os.getppid(), folder), daemon=True).start()
    serve(args.address, bytes.fromhex(key), handshake_s=args.handshake_s, receive_s=args.receive_s)


if __name__ == "__main__":
    main()
