"""A warm ``flwr-clientapp``: one fork per message instead of one Python start-up.

Flower's SuperNode starts a fresh ``flwr-clientapp`` process for every message (in subprocess
isolation, by name from ``PATH``), and each start imports Python and Flower again: about 1.4 s of
CPU, the largest part of a message's fixed cost. ``hierfl-client`` starts this zygote once; it
imports Flower and hierfl's ClientApp, then waits on a unix socket in the node's private state
folder. A small shim named ``flwr-clientapp``, first on the SuperNode's ``PATH``, hands the
zygote its command line; the zygote forks a child that runs Flower's own ``flwr-clientapp`` main
with it (already imported: a few milliseconds), tells the shim the child's pid (the shim passes
SIGTERM and SIGINT on to it) and, when the child exits, its exit code, which the shim exits
with. If the zygote cannot be reached, the shim runs the real ``flwr-clientapp`` instead: a
message never depends on the zygote being alive.

The zygote runs no threads (forking a threaded process is unsafe): one ``select`` loop accepts
shims and reaps children.
"""

from __future__ import annotations

import argparse
import json
import os
import select
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
from pathlib import Path

from hierfl.app.flower_internals import preload_flwr_clientapp, run_flwr_clientapp

SOCKET_NAME = "clientapp.sock"
SHIM_NAME = "flwr-clientapp"
# The shim: standard library only, no site packages (-S -E): it starts in milliseconds.
SHIM = """#!{python} -SE
import json, os, signal, socket, sys
try:
    s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    s.connect({socket!r})
    s.sendall(json.dumps({{"argv": sys.argv[1:], "cwd": os.getcwd()}}).encode() + b"\\n")
    f = s.makefile("r")
    pid = int(f.readline().split()[1])
except (OSError, ValueError, IndexError):
    os.execv({real!r}, [{real!r}, *sys.argv[1:]])
def forward(sig, frame):
    try:
        os.kill(pid, sig)
    except OSError:
        pass
signal.signal(signal.SIGTERM, forward)
signal.signal(signal.SIGINT, forward)
line = f.readline().split()
sys.exit(int(line[1]) if len(line) == 2 and line[0] == "exit" else 1)
"""


def write_shim(bin_dir: Path, socket_path: Path, real: str) -> Path:
    """Write the ``flwr-clientapp`` shim into ``bin_dir`` (0700); ``real`` is Flower's own
    ``flwr-clientapp``, run when the zygote does not answer."""
    bin_dir.mkdir(mode=0o700, parents=True, exist_ok=True)
    shim = bin_dir / SHIM_NAME
    shim.write_text(SHIM.format(python=sys.executable, socket=str(socket_path), real=real))
    shim.chmod(0o700)
    return shim


def _child(request: dict, keep: list[socket.socket]) -> None:
    """In the forked child: become ``flwr-clientapp`` with the shim's command line."""
    for sock in keep:
        sock.close()
    signal.signal(signal.SIGTERM, signal.SIG_DFL)
    signal.signal(signal.SIGINT, signal.SIG_DFL)
    code = 0
    try:
        os.chdir(request.get("cwd") or "/")
        sys.argv = [SHIM_NAME, *[str(a) for a in request.get("argv", [])]]
        run_flwr_clientapp()
    except SystemExit as exc:
        code = exc.code if isinstance(exc.code, int) else (0 if exc.code is None else 1)
    except BaseException:  # noqa: BLE001 - reported as the exit code, as a crashed process would
        import traceback

        traceback.print_exc()
        code = 1
    finally:
        sys.stdout.flush()
        sys.stderr.flush()
        os._exit(code)


def serve(socket_path: Path) -> None:
    """Accept shims until SIGTERM; fork a ``flwr-clientapp`` child for each."""
    # Imported once, for the children: Flower's ClientApp runtime, and what hierfl's ClientApp
    # loads (its edge worker client); the app module itself is loaded by Flower from the FAB.
    import hierfl.deploy.edge_worker  # noqa: F401

    preload_flwr_clientapp()

    socket_path.unlink(missing_ok=True)
    server = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    server.bind(str(socket_path))
    os.chmod(socket_path, 0o600)
    server.listen(64)
    waiting: dict[int, socket.socket] = {}  # child pid -> its shim's connection
    stopping = False

    def stop(signum: int, frame: object) -> None:
        nonlocal stopping
        stopping = True

    signal.signal(signal.SIGTERM, stop)
    parent = os.getppid()
    try:
        while not stopping and os.getppid() == parent:  # gone with hierfl-client
            ready, _, _ = select.select([server], [], [], 0.05)
            if ready:
                _accept(server, waiting)
            _reap(waiting)
    finally:
        server.close()
        socket_path.unlink(missing_ok=True)


def _accept(server: socket.socket, waiting: dict[int, socket.socket]) -> None:
    conn, _ = server.accept()
    try:
        conn.settimeout(5.0)
        request = json.loads(conn.makefile("r").readline())
        pid = os.fork()
        if pid == 0:
            _child(request, [server, conn, *waiting.values()])
        conn.sendall(f"pid {pid}\n".encode())
        waiting[pid] = conn
    except (OSError, ValueError) as exc:  # a shim that went away, or sent nonsense
        print(f"hierfl zygote: dropped a request: {exc}", file=sys.stderr, flush=True)
        conn.close()


def _reap(waiting: dict[int, socket.socket]) -> None:
    while waiting:
        try:
            pid, status = os.waitpid(-1, os.WNOHANG)
        except ChildProcessError:
            return
        if pid == 0:
            return
        conn = waiting.pop(pid, None)
        if conn is None:
            continue
        try:
            conn.sendall(f"exit {os.waitstatus_to_exitcode(status)}\n".encode())
        except OSError:
            pass
        conn.close()


def start(state_dir: Path) -> tuple[subprocess.Popen, Path]:
    """Start the zygote for the node whose private state folder is ``state_dir`` and write
    its shim into ``state_dir/bin``; returns the process and that folder, to put first on the
    SuperNode's ``PATH``."""
    real = shutil.which(SHIM_NAME, path=os.path.dirname(sys.executable)) or shutil.which(SHIM_NAME)
    if real is None:
        raise FileNotFoundError("flwr-clientapp is not installed next to this Python")
    socket_path = state_dir / SOCKET_NAME
    if len(str(socket_path)) > 100:  # a unix socket's path has room for 107 bytes
        socket_path = Path(tempfile.mkdtemp(prefix="hierfl-")) / SOCKET_NAME  # 0700
    proc = subprocess.Popen(
        [sys.executable, "-m", "hierfl.deploy.zygote", "--socket", str(socket_path)]
    )
    bin_dir = state_dir / "bin"
    write_shim(bin_dir, socket_path, real)
    return proc, bin_dir


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(description="A warm flwr-clientapp for hierfl-client")
    p.add_argument("--socket", required=True, help="unix socket to listen on")
    serve(Path(p.parse_args(argv).socket))


if __name__ == "__main__":
    main()
