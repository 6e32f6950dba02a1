"""Every mode, and the big models, end to end through `hierfl run` (real Flower processes)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

pytestmark = [pytest.mark.integration, pytest.mark.slow]
BIN = Path(sys.executable).parent

FAST = ["--experiences", "1", "--clients", "2", "--rounds", "1", "--epochs", "1"]


def _run(tmp_path: Path, *args: str) -> dict:
    out = tmp_path / "run"
    proc = subprocess.run(
        [str(BIN / "hierfl"), "run", *args, "--out", str(out)],
        capture_output=True,
        text=True,
        timeout=900,
    )
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    assert (out / "metrics.csv").exists() and (out / "accuracy.png").exists()
    return json.loads((out / "metrics.json").read_text())


@pytest.mark.parametrize(
    ("mode", "exits"),
    [("edge", ["edge"]), ("cloud", ["cloud"]), ("split", ["cloud"])],
)
def test_baseline_modes_through_flower(tmp_path, mode, exits):
    extra = ["batch-size=128"] if mode == "split" else []  # split: one message per batch
    metrics = _run(tmp_path, "--mode", mode, *FAST, *extra)
    assert metrics["mode"] == mode
    assert sorted(metrics["experiences"][0]["accuracy"]) == sorted(exits)
    for name in exits:
        assert metrics["experiences"][0]["accuracy"][name][0] > 0.3  # chance is 0.1
    raw = metrics["communication"]["raw_input_bytes_uplink"]
    assert (raw > 0) == (mode == "cloud")


@pytest.mark.parametrize("model", ["resnet18", "vgg16"])
def test_big_models_on_synthetic_data_through_flower(tmp_path, model):
    metrics = _run(
        tmp_path,
        "--preset",
        "tiny",
        "--model",
        model,
        "--scenario",
        "synthetic",
        "samples-per-class=20",
    )
    assert metrics["config"]["model"] == model
    assert metrics["config"]["input_shape"] == ""
    assert len(metrics["experiences"]) == 2
    assert metrics["communication"]["uplink_bytes"] > 0
    assert metrics["early_exit"]


@pytest.mark.parametrize("strategy", ["fedavg", "fedmedian"])
def test_coded_weight_updates_through_flower(tmp_path, strategy):
    """The default compressed exchange through real Flower processes: every reply's update is
    rebuilt and aggregated (none rejected), and the weights travel in far fewer bytes than the
    full fp32 weights would, both ways."""
    metrics = _run(tmp_path, "--preset", "tiny", "weight-codec=topk", f"strategy={strategy}")
    comm = metrics["communication"]
    assert metrics["status"] == "completed" and metrics["rejected_replies"] == 0
    assert metrics["config"]["weight_codec"] == "topk"
    full = 4 * 21_386  # the small CNN's edge segment and exit in fp32 (21,386 parameters)
    assert 0 < comm["weight_bytes_up"] < full * comm["uplink_messages"] / 10
    assert comm["weight_bytes_down"] < full * comm["downlink_messages"] / 10
    assert (
        comm["total_bytes"] == comm["uplink_bytes"] + comm["downlink_bytes"] + comm["control_bytes"]
    )
    assert metrics["final"]["edge_accuracy"] > 0.5 and metrics["final"]["cloud_accuracy"] > 0.5
