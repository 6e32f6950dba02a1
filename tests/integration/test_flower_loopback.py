"""The real thing: flower-superlink + hierfl-client SuperNodes + `hierfl app DIR` and
`flwr run DIR` on loopback (a hierfl-client runs only hierfl's code-free app)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from hierfl.deploy.launch import flower_env, free_port, start_superlink, write_connection
from hierfl.deploy.processes import Processes

BIN = Path(sys.executable).parent

pytestmark = [pytest.mark.integration, pytest.mark.slow]


def test_superlink_two_clients_flwr_run(tmp_path):
    out = tmp_path / "run"
    flwr_home = tmp_path / "flwr-home"
    env = flower_env(flwr_home)
    port = free_port()
    write_connection(flwr_home, port)
    procs = Processes()  # each process in its own group; stopped by PID below
    try:
        start_superlink(procs, env, port, tmp_path)  # flower-superlink --insecure, loopback
        for i in range(2):
            procs.start(
                f"client {i}",
                [
                    str(BIN / "hierfl-client"),
                    "--superlink",
                    f"127.0.0.1:{port}",
                    "--partition-id",
                    str(i),
                    "--num-partitions",
                    "2",
                    "--insecure",
                    "--state-dir",
                    str(tmp_path / f"node-{i}"),
                    "--port",
                    str(free_port()),
                ],
                env,
                tmp_path / f"client-{i}.log",
            )
        app_dir = tmp_path / "app"
        subprocess.run([str(BIN / "hierfl"), "app", str(app_dir)], env=env, check=True)
        run_config = f'clients=2 experiences=2 rounds=2 local-epochs=1 out="{out}"'
        proc = subprocess.run(
            [
                str(BIN / "flwr"),
                "run",
                str(app_dir),
                "hierfl-local",
                "--stream",
                "--run-config",
                run_config,
            ],
            env=env,
            capture_output=True,
            text=True,
            timeout=600,
        )
        assert proc.returncode == 0, proc.stdout + proc.stderr
        pids = [p.pid for _, p in procs.procs]
    finally:
        procs.stop()
    for pid in pids:  # every process we started is gone
        with pytest.raises(ProcessLookupError):
            os.kill(pid, 0)

    metrics = json.loads((out / "metrics.json").read_text())
    assert metrics["mode"] == "hierarchical"
    assert [e["index"] for e in metrics["experiences"]] == [0, 1]
    for exp in metrics["experiences"]:
        for exit_name in ("edge", "cloud"):
            accs = exp["accuracy"][exit_name]
            assert len(accs) == exp["index"] + 1
            assert accs[-1] > 0.2 + 0.1  # newest experience has 5 classes: chance is 0.2
    assert metrics["communication"]["uplink_bytes"] > 0
    assert metrics["communication"]["raw_input_bytes_uplink"] == 0
    assert (out / "metrics.csv").exists() and (out / "accuracy.png").exists()
    assert metrics["events"] == []
