"""The warm ``flwr-clientapp`` (``hierfl.deploy.zygote``): the shim runs Flower's own
``flwr-clientapp`` main in a child forked from the zygote and exits with its code; without a
zygote it runs the real program."""

from __future__ import annotations

import subprocess
import sys
import time

import pytest

from hierfl.deploy.zygote import SOCKET_NAME, write_shim


@pytest.fixture
def zygote(tmp_path):
    sock = tmp_path / SOCKET_NAME
    proc = subprocess.Popen([sys.executable, "-m", "hierfl.deploy.zygote", "--socket", str(sock)])
    deadline = time.monotonic() + 120
    while not sock.exists():
        assert proc.poll() is None, "the zygote exited"
        assert time.monotonic() < deadline, "the zygote did not start"
        time.sleep(0.1)
    yield sock
    proc.terminate()
    assert proc.wait(timeout=30) == 0
    assert not sock.exists()  # it cleans up after itself


def _real(tmp_path):
    marker = tmp_path / "real-ran"
    real = tmp_path / "real-flwr-clientapp"
    real.write_text(f'#!/bin/sh\necho "$@" > {marker}\nexit 7\n')
    real.chmod(0o700)
    return real, marker


def test_the_shim_runs_flower_clientapp_in_a_forked_child_and_exits_with_its_code(zygote, tmp_path):
    real, marker = _real(tmp_path)
    shim = write_shim(tmp_path / "bin", zygote, str(real))
    ok = subprocess.run([str(shim), "--help"], capture_output=True, timeout=60)
    bad = subprocess.run([str(shim), "--no-such-flag"], capture_output=True, timeout=60)
    assert ok.returncode == 0  # argparse's --help in Flower's own flwr-clientapp main
    assert bad.returncode == 2  # argparse's usage error
    assert not marker.exists()  # the real program never ran


def test_without_a_zygote_the_shim_runs_the_real_program(tmp_path):
    real, marker = _real(tmp_path)
    shim = write_shim(tmp_path / "bin", tmp_path / "nobody-listens.sock", str(real))
    proc = subprocess.run([str(shim), "--token", "abc"], capture_output=True, timeout=60)
    assert proc.returncode == 7
    assert marker.read_text().strip() == "--token abc"
    assert oct(shim.stat().st_mode & 0o777) == "0o700"
