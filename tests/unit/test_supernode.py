"""`hierfl-client`: the SuperNode command line it builds, and its one-line errors."""

from __future__ import annotations

import shlex
import subprocess
import sys

import pytest

from hierfl.deploy.supernode import build_parser, supernode_argv


def _argv(*args: str) -> list[str]:
    ns, extra = build_parser().parse_known_args(list(args))
    return supernode_argv(ns, extra)


def test_node_config_carries_partition_and_state_dir():
    argv = _argv(
        "--superlink",
        "10.0.0.1:8000",
        "--partition-id",
        "2",
        "--num-partitions",
        "5",
        "--insecure",
        "--state-dir",
        "/tmp/s",
        "--max-retries",
        "3",
    )
    assert argv[:3] == ["flower-supernode", "--superlink", "10.0.0.1:8000"]
    node_config = argv[argv.index("--node-config") + 1]
    pairs = dict(item.split("=", 1) for item in shlex.split(node_config))
    assert pairs == {
        "partition-id": "2",
        "num-partitions": "5",
        "state-dir": "/tmp/s",
        "data-dir": "",
        # the owner's policy (hierfl.edge.policy), at its defaults
        "allow-raw-upload": "false",
        "min-act-noise": "0.0",
        "max-act-clip": "0.0",
        "max-latency": "10.0",
        "max-slowdown": "10.0",
        "max-link-s": "600.0",
    }
    assert argv[argv.index("--port") + 1] == "9096"  # 9094 + partition id
    assert "--insecure" in argv
    assert argv[-2:] == ["--max-retries", "3"]  # unknown flags pass through


def test_node_config_names_the_edge_worker_but_never_its_key():
    ns, extra = build_parser().parse_known_args(
        ["--partition-id", "0", "--num-partitions", "1", "--insecure", "--state-dir", "/s"]
    )
    argv = supernode_argv(ns, extra, ("/tmp/w/edge-worker.sock", bytes([1, 171])))
    pairs = dict(item.split("=", 1) for item in shlex.split(argv[argv.index("--node-config") + 1]))
    assert pairs["edge-worker"] == "/tmp/w/edge-worker.sock"
    # the key stays in its 0600 file beside the socket: a node config is visible in `ps`
    assert "edge-worker-key" not in pairs
    assert "01ab" not in " ".join(argv)


def test_tls_and_auth_flags():
    argv = _argv(
        "--partition-id",
        "0",
        "--num-partitions",
        "1",
        "--root-certificates",
        "ca.crt",
        "--auth-key",
        "key",
    )
    assert argv[argv.index("--root-certificates") + 1] == "ca.crt"
    assert argv[argv.index("--auth-supernode-private-key") + 1] == "key"
    assert "--insecure" not in argv


@pytest.mark.parametrize(
    ("args", "needle"),
    [
        (["--partition-id", "3", "--num-partitions", "2", "--insecure"], "--partition-id"),
        (["--partition-id", "0", "--num-partitions", "0", "--insecure"], "--num-partitions"),
        (
            ["--partition-id", "0", "--num-partitions", "1", "--root-certificates", "/no/ca.crt"],
            "--root-certificates: no such file",
        ),
        (
            ["--partition-id", "0", "--num-partitions", "1", "--insecure", "--data-dir", "/no/dir"],
            "--data-dir: no such folder",
        ),
        (
            ["--partition-id", "0", "--num-partitions", "1", "--insecure", "--poll-interval", "0"],
            "--poll-interval",
        ),
    ],
)
def test_bad_arguments_exit_2_with_one_line(args, needle):
    proc = subprocess.run(
        [sys.executable, "-m", "hierfl.deploy.supernode", *args],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert proc.returncode == 2
    assert needle in proc.stderr and len(proc.stderr.strip().splitlines()) == 1
