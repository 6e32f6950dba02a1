"""A real deployment on loopback: hierfl-client refuses an app other than hierfl's own before
any of its code runs, and the ServerApp sees that edge fail."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from hierfl.config import HierConfig
from hierfl.deploy.launch import CONNECTION, loopback, write_app

pytestmark = [pytest.mark.integration, pytest.mark.slow]
BIN = Path(sys.executable).parent
RUN = {"clients": 1, "experiences": 1, "rounds": 1, "local-epochs": 1, "max-failed-rounds": 1}


def test_an_app_with_its_own_client_code_never_runs_on_the_edge(tmp_path):
    marker = tmp_path / "the-foreign-client-app-ran"
    app = tmp_path / "foreign-app"
    config = HierConfig.from_mapping({**RUN, "out": str(tmp_path / "run")}).validate()
    write_app(app, config)
    pyproject = (app / "pyproject.toml").read_text()
    (app / "pyproject.toml").write_text(
        pyproject.replace('clientapp = "hierfl.client_app:app"', 'clientapp = "foreign:app"')
    )
    (app / "foreign.py").write_text(
        f"from pathlib import Path\nPath({str(marker)!r}).write_text('ran')\n"
        "from flwr.clientapp import ClientApp\napp = ClientApp()\n"
    )
    with loopback(tmp_path / "flwr-home", 1, tmp_path, tmp_path) as (env, _):
        proc = subprocess.run(
            [str(BIN / "flwr"), "run", str(app), CONNECTION, "--stream"],
            env=env,
            capture_output=True,
            text=True,
            timeout=600,
        )
    output = proc.stdout + proc.stderr
    assert not marker.exists(), "the foreign ClientApp's code ran on the edge"
    client_log = (tmp_path / "client-0.log").read_text()
    assert "refused the app of run" in client_log and "foreign.py" in client_log, client_log[-3000:]
    assert "FAB" in output or "failed" in output, output[-3000:]  # the edge's error reached it
