"""Keys that a run never reads are named at start (``hierfl.resolve``)."""

from __future__ import annotations

import logging
import tomllib
from pathlib import Path

import pytest

from hierfl import cli
from hierfl.config import HierConfig
from hierfl.modes import MODES
from hierfl.options import flatten
from hierfl.resolve import unused_keys

ROOT = Path(__file__).resolve().parents[2]


def _unused(**values) -> list[str]:
    return unused_keys(HierConfig.from_mapping(values).validate())


@pytest.mark.parametrize("online", [False, True])
@pytest.mark.parametrize("mode", sorted(MODES))
def test_defaults_and_the_shipped_run_config_name_nothing(mode, online):
    assert _unused(mode=mode, online=online) == []
    table = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["flwr"]["app"]["config"]
    every_key = {**flatten(table), "mode": mode, "online": online}  # every plug-in's settings
    assert unused_keys(HierConfig.from_mapping(every_key).validate()) == []


@pytest.mark.parametrize(
    ("values", "expected"),
    [
        ({"mode": "edge", "cloud-lr": 0.1}, ["cloud-lr=0.1 (edge mode has no cloud)"]),
        ({"mode": "cloud", "edge-lr": 0.5}, ["edge-lr=0.5 (edges do not train in cloud mode)"]),
        (
            {"mode": "cloud", "codec": "int8"},
            ["codec=int8 (cloud mode uploads raw inputs (raw-codec))"],
        ),
        (
            {"mode": "split", "ship": "last-epoch"},
            ["ship=last-epoch (split mode ships every batch's activations for its gradient)"],
        ),
        (
            {"online": True, "local-epochs": 3},
            ["local-epochs=3 (an online run trains online-passes passes per round)"],
        ),
        ({"online": True, "mode": "cloud", "local-epochs": 3}, []),  # the cloud's passes
        ({"online-passes": 3}, ["online-passes=3 (only online runs (online=true) read it)"]),
        ({"jpeg-quality": 50}, ["jpeg-quality=50 (only raw-codec=jpeg reads it)"]),
        ({"mode": "cloud", "raw-codec": "jpeg", "jpeg-quality": 50}, []),
        (
            {"code-bits": 4, "bottleneck": 0},
            ["code-bits=4 (only a bottleneck (bottleneck > 0) reads it)"],
        ),
        # the default bottleneck (-1) codes hierarchical mode's activations only
        ({"code-bits": 4}, []),
        (
            {"mode": "cloud", "code-bits": 4},
            ["code-bits=4 (only a bottleneck (bottleneck > 0) reads it)"],
        ),
        ({"bottleneck": 4, "code-bits": 4}, []),
        ({"lwf.alpha": 2}, ["lwf.alpha=2.0 (lwf is not in use in this run)"]),
        ({"cl": "lwf", "lwf.alpha": 2}, []),
        (
            {"fedprox.proximal-mu": 0.1},
            ["fedprox.proximal-mu=0.1 (fedprox is not in use in this run)"],
        ),
        ({"strategy": "fedprox", "fedprox.proximal-mu": 0.1}, []),
    ],
)
def test_each_key_a_run_never_reads_is_named_with_its_reason(values, expected):
    assert _unused(**values) == expected


def test_hierfl_run_and_the_python_front_door_warn(tmp_path, capsys, caplog):
    parser = cli.build_parser()
    cli.resolve_config(
        parser.parse_args(["run", "--out", str(tmp_path), "mode=edge", "cloud-lr=0.1"])
    )
    assert (
        "hierfl: warning: these keys have no effect in this run: cloud-lr=0.1"
        in capsys.readouterr().out
    )
    from hierfl.api import resolve_config as resolve

    with caplog.at_level(logging.WARNING, logger="hierfl"):
        resolve(None, {"online": True, "local_epochs": 3})
    assert "local-epochs=3" in caplog.text
