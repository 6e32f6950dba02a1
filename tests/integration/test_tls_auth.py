"""A secured deployment on loopback: TLS + SuperNode authentication, and who gets refused.

One ``flower-superlink`` with TLS, ``--enable-supernode-auth`` and a SQLite database; two
``hierfl-client`` SuperNodes whose keys were registered run a short hierfl job. A client with an
unregistered key and a plaintext (``--insecure``) client are started alongside and must be
turned away without ever being listed online.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from hierfl.config import HierConfig
from hierfl.deploy.launch import (
    CONNECTION,
    flower_env,
    free_port,
    start_clients,
    start_superlink,
    write_app,
    write_connection,
)
from hierfl.deploy.processes import Processes, processes_mentioning
from hierfl.deploy.secure import (
    list_supernodes,
    make_supernode_key,
    make_tls_files,
    register_supernode,
)

BIN = Path(sys.executable).parent
REFUSAL_TIMEOUT = 60.0  # seconds a refused client may take to give up

pytestmark = [pytest.mark.integration, pytest.mark.slow]


def _client_argv(port: int, partition: int, state_dir: Path, security: list[str]) -> list[str]:
    return [
        str(BIN / "hierfl-client"),
        "--superlink",
        f"127.0.0.1:{port}",
        "--partition-id",
        str(partition),
        "--num-partitions",
        "2",
        *security,
        "--state-dir",
        str(state_dir),
        "--port",
        str(free_port()),
        "--max-retries",  # passed through to flower-supernode: give up instead of retrying
        "3",
    ]


def _wait_exit(proc: subprocess.Popen, timeout: float) -> int:
    try:
        return proc.wait(timeout=timeout)
    except subprocess.TimeoutExpired:
        pytest.fail(f"a client that should be refused was still running after {timeout}s")


def test_tls_and_supernode_auth_admit_only_registered_clients(tmp_path):
    tls = make_tls_files(tmp_path / "certs")  # CA + server cert with SAN 127.0.0.1, localhost
    keys = [tmp_path / "keys" / f"edge-{i}" for i in range(3)]
    public_keys = [make_supernode_key(k) for k in keys]  # ECDSA P-384, OpenSSH format
    stranger_key = keys[2]  # never registered

    flwr_home = tmp_path / "flwr-home"
    env = flower_env(flwr_home)
    port = free_port()
    write_connection(flwr_home, port, root_certificates=tls.ca_cert)
    assert "insecure" not in (flwr_home / "config.toml").read_text()
    out = tmp_path / "run"
    logs = tmp_path / "logs"
    logs.mkdir()
    config = HierConfig.from_mapping(
        {"clients": 2, "experiences": 1, "rounds": 1, "local-epochs": 1, "out": str(out)}
    )
    write_app(tmp_path / "app", config)

    procs = Processes()
    try:
        start_superlink(
            procs, env, port, logs, tls=tls, supernode_auth=True, database=tmp_path / "state.db"
        )
        registered = {register_supernode(pub, CONNECTION, env) for pub in public_keys[:2]}
        assert len(registered) == 2
        listed = list_supernodes(CONNECTION, env)
        assert {(int(n["node-id"]), n["status"]) for n in listed} == {
            (node, "registered") for node in registered
        }

        start_clients(
            procs, env, port, 2, out, logs, root_certificates=tls.ca_cert, auth_keys=keys[:2]
        )
        stranger = procs.start(
            "stranger",
            _client_argv(
                port,
                0,
                tmp_path / "stranger",
                ["--root-certificates", str(tls.ca_cert), "--auth-key", str(stranger_key)],
            ),
            env,
            logs / "stranger.log",
        )
        plaintext = procs.start(
            "plaintext",
            _client_argv(port, 1, tmp_path / "plaintext", ["--insecure"]),
            env,
            logs / "plaintext.log",
        )
        stranger_rc = _wait_exit(stranger, REFUSAL_TIMEOUT)
        plaintext_rc = _wait_exit(plaintext, REFUSAL_TIMEOUT)

        run = subprocess.run(
            [str(BIN / "flwr"), "run", str(tmp_path / "app"), CONNECTION, "--stream"],
            env=env,
            capture_output=True,
            text=True,
            timeout=300,
        )
        assert run.returncode == 0, run.stdout[-3000:] + run.stderr[-3000:]
        listed = list_supernodes(CONNECTION, env)
        pids = [p.pid for _, p in procs.procs]
    finally:
        procs.stop()

    # Only the two registered SuperNodes ever joined, and both did.
    assert {(int(n["node-id"]), n["status"]) for n in listed} == {
        (node, "online") for node in registered
    }

    # The unregistered key: the SuperLink answered 412 to its activation and it exited.
    stranger_log = (logs / "stranger.log").read_text()
    superlink_log = (logs / "superlink.log").read_text()
    assert stranger_rc != 0
    assert "Failed to activate SuperNode" in stranger_log, stranger_log[-2000:]
    assert "No SuperNode found with the given public key" in superlink_log
    activations = [  # uvicorn's access log: one line per HTTP request the SuperLink parsed
        line for line in superlink_log.splitlines() if '"POST /v1/fleet/activate-node ' in line
    ]
    assert sum('" 412' in line for line in activations) == 1  # the stranger
    assert sum('" 200' in line for line in activations) == 2  # the two registered clients

    # The plaintext client: the TLS listener drops its HTTP requests before any API sees them.
    plaintext_log = (logs / "plaintext.log").read_text()
    assert plaintext_rc != 0
    assert "Starting insecure channel" in plaintext_log
    assert "Failed to initialize the connection to the SuperLink" in plaintext_log
    assert "Giving up reconnection" in plaintext_log, plaintext_log[-2000:]
    assert len(activations) == 3  # no request of the plaintext client reached the Fleet API

    # The job ran to completion and wrote its metrics.
    metrics = json.loads((out / "metrics.json").read_text())
    (experience,) = metrics["experiences"]
    for exit_name in ("edge", "cloud"):
        (accuracy,) = experience["accuracy"][exit_name]
        assert 0.2 < accuracy <= 1.0  # chance is 0.1 with all 10 classes in one experience

    # Nothing started here outlives the test.
    for pid in pids:
        with pytest.raises(ProcessLookupError):
            os.kill(pid, 0)
    deadline = time.monotonic() + 15
    while processes_mentioning(str(tmp_path)) and time.monotonic() < deadline:
        time.sleep(0.5)
    leftover = processes_mentioning(str(tmp_path))
    for pid in leftover:  # clean up before failing, so no stray process outlives the test
        os.kill(pid, signal.SIGKILL)
    assert leftover == []
