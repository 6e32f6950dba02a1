"""Processes started in groups of their own and stopped together by PID, and the search for
what a run left behind (Linux ``/proc``)."""

from __future__ import annotations

import os
import signal
import subprocess
import time
from pathlib import Path
from typing import IO

from hierfl.errors import HierflError


class LaunchError(HierflError):
    """A Flower process failed to start or the run did not finish."""


class Processes:
    """Started processes, each in its own process group, stopped together by PID."""

    def __init__(self) -> None:
        self.procs: list[tuple[str, subprocess.Popen]] = []
        self._logs: list[IO[bytes]] = []

    def start(self, name: str, argv: list[str], env: dict[str, str], log: Path) -> subprocess.Popen:
        fh = open(log, "wb")
        self._logs.append(fh)
        proc = subprocess.Popen(
            argv, env=env, stdout=fh, stderr=subprocess.STDOUT, start_new_session=True
        )
        self.procs.append((name, proc))
        return proc

    def check_alive(self) -> None:
        for name, proc in self.procs:
            if proc.poll() is not None:
                raise LaunchError(f"{name} exited early with code {proc.returncode}")

    def stop(self, grace: float = 10.0) -> None:
        # Flower starts some children (flwr-serverapp, flwr-clientapp) in sessions of their
        # own, out of reach of a group signal: note the whole process tree first.
        tree = [pid for _, proc in self.procs for pid in _descendants(proc.pid)]
        for _, proc in reversed(self.procs):
            _signal_group(proc, signal.SIGTERM)
        _signal_pids(tree, signal.SIGTERM)
        deadline = time.monotonic() + grace
        for _, proc in self.procs:
            try:
                proc.wait(timeout=max(deadline - time.monotonic(), 0.1))
            except subprocess.TimeoutExpired:
                _signal_group(proc, signal.SIGKILL)
                proc.wait(timeout=5)
        for _, proc in self.procs:  # whatever is left of each group and each tree
            _signal_group(proc, signal.SIGKILL)
        _signal_pids(tree, signal.SIGKILL)
        for fh in self._logs:
            fh.close()
        self.procs, self._logs = [], []


def processes_mentioning(text: str) -> list[int]:
    """Live processes (this one aside) whose command line or environment contains ``text``.

    Every process of a local run mentions its run folder (``FLWR_HOME`` lives there), so this
    finds them all, also after their parent was killed with SIGKILL.
    """
    pids = []
    for entry in Path("/proc").glob("[0-9]*"):
        if int(entry.name) == os.getpid():
            continue
        try:
            cmdline = (entry / "cmdline").read_bytes().replace(b"\0", b" ").decode()
            environ = (entry / "environ").read_bytes().replace(b"\0", b" ").decode(errors="replace")
            state = (entry / "stat").read_text().rsplit(")", 1)[1].split()[0]
        except OSError:
            continue
        if (text in cmdline or text in environ) and state != "Z":
            pids.append(int(entry.name))
    return pids


def _descendants(root: int) -> list[int]:
    """Every process below ``root`` (Linux ``/proc``; elsewhere none are found)."""
    children: dict[int, list[int]] = {}
    for entry in Path("/proc").glob("[0-9]*"):
        try:
            stat = (entry / "stat").read_text()
        except OSError:
            continue
        ppid = int(stat.rsplit(")", 1)[1].split()[1])
        children.setdefault(ppid, []).append(int(entry.name))
    found, todo = [], [root]
    while todo:
        for child in children.get(todo.pop(), []):
            found.append(child)
            todo.append(child)
    return found


def _signal_pids(pids: list[int], sig: int) -> None:
    for pid in pids:
        try:
            os.kill(pid, sig)
        except (ProcessLookupError, PermissionError):
            pass


def _signal_group(proc: subprocess.Popen, sig: int) -> None:
    try:
        os.killpg(proc.pid, sig)
    except (ProcessLookupError, PermissionError):
        pass
