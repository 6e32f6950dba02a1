"""Config parsing and validation, and the CLI's one-line errors."""

from __future__ import annotations

import subprocess
import sys
import tomllib
from pathlib import Path

import pytest

from hierfl.config import HierConfig, parse_overrides, read_toml
from hierfl.errors import ConfigError, UnknownNameError

ROOT = Path(__file__).resolve().parents[2]


def test_pyproject_run_config_matches_defaults():
    table = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["flwr"]["app"]["config"]
    defaults = HierConfig().to_flwr()
    assert set(table) == set(defaults)
    assert {k: v for k, v in table.items()} == defaults


def test_overrides_coerce_types():
    cfg = HierConfig.from_mapping(parse_overrides(["clients=5", "edge-lr=0.1", "cut=block3"]))
    assert (cfg.clients, cfg.edge_lr, cfg.cut) == (5, 0.1, "block3")


@pytest.mark.parametrize(
    ("values", "key"),
    [
        ({"clients": 0}, "clients"),
        ({"rounds": -1}, "rounds"),
        ({"batch-size": 0}, "batch_size"),
        ({"max-chunk-mb": 0}, "max_chunk_mb"),
        ({"test-fraction": 1.5}, "test-fraction"),
    ],
)
def test_non_positive_sizes_are_rejected(values, key):
    with pytest.raises(ConfigError) as err:
        HierConfig.from_mapping(values).validate()
    assert err.value.key.replace("_", "-") == key.replace("_", "-")


@pytest.mark.parametrize(
    ("key", "value", "allowed"),
    [
        ("model", "resnet9000", "small-cnn"),
        ("strategy", "fedfoo", "fedavg"),
        ("scenario", "imagenet22k", "digits"),
        ("partition", "zipf", "iid"),
        ("cut", "block9", "block1"),
    ],
)
def test_unknown_names_list_allowed_values(key, value, allowed):
    with pytest.raises(ConfigError) as err:
        HierConfig.from_mapping({key: value}).validate()
    assert err.value.key == key
    assert allowed in str(err.value)


def test_unknown_key_and_bad_type():
    with pytest.raises(ConfigError, match="unknown key"):
        HierConfig.from_mapping({"clinets": 3})
    with pytest.raises(ConfigError, match="expected int"):
        HierConfig.from_mapping({"clients": "three"})
    with pytest.raises(UnknownNameError):
        HierConfig.from_mapping({"optimizer": "lion"}).validate()


def test_read_toml_errors(tmp_path):
    with pytest.raises(ConfigError, match="cannot read"):
        read_toml(tmp_path / "missing.toml")
    bad = tmp_path / "bad.toml"
    bad.write_text("clients = [")
    with pytest.raises(ConfigError, match="not valid TOML"):
        read_toml(bad)
    good = tmp_path / "good.toml"
    good.write_text("[tool.flwr.app.config]\nclients = 4\n")
    assert read_toml(good) == {"clients": 4}


def test_a_missing_data_folder_stops_the_cli_before_anything_starts(tmp_path):
    proc = subprocess.run(
        [
            sys.executable,
            "-m",
            "hierfl.cli",
            "run",
            "--scenario",
            "cifar10",
            f"data-dir={tmp_path / 'nope'}",
            "--out",
            str(tmp_path / "run"),
        ],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert proc.returncode == 2
    first = proc.stderr.strip().splitlines()[0]
    assert first.startswith("hierfl: error: data-dir: ") and str(tmp_path / "nope") in first
    assert "cifar-10-batches-py" in proc.stderr  # the layout it expects follows
    assert "Traceback" not in proc.stderr
    assert not (tmp_path / "run").exists()


@pytest.mark.parametrize(
    ("args", "needle"),
    [
        (["--model", "nope"], "model: unknown value 'nope'; allowed:"),
        (["--clients", "0"], "clients: must be > 0"),
        (["--strategy", "nope"], "strategy: unknown value 'nope'; allowed:"),
        (["--config", "/nonexistent.toml"], "config: cannot read"),
    ],
)
def test_cli_rejects_bad_input_with_one_line_and_exit_2(args, needle):
    proc = subprocess.run(
        [sys.executable, "-m", "hierfl.cli", "run", *args],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert proc.returncode == 2
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1, proc.stderr
    assert needle in lines[0]
    assert "Traceback" not in proc.stderr
