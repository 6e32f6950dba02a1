"""The rate-accuracy benchmark's bookkeeping: means over seeds, and --append's config check."""

from __future__ import annotations

import importlib
import json

import pytest

from hierfl.config import HierConfig

bottleneck = importlib.import_module("benchmarks.bottleneck")
harness = importlib.import_module("benchmarks.harness")


def _row(seed: int, width: int, cloud: float, edge: float | None, mode="hierarchical") -> dict:
    return {
        "model": "resnet18",
        "mode": mode,
        "cut": "layer3" if mode != "cloud" else "",
        "bottleneck": width,
        "code_bits": 4 if width else 32,
        "raw_codec": None if mode != "cloud" else "png",
        "seed": seed,
        "bytes_per_sample": 1110.0 if mode == "cloud" else 258.0 if width else 65538.0,
        "cloud_accuracy": cloud,
        "edge_accuracy": edge,
    }


def test_summary_means_each_configuration_over_its_seeds():
    rows = [
        _row(0, 8, 0.982, 0.984),
        _row(1, 8, 0.980, 0.990),
        _row(0, 0, 0.989, 0.991),
        _row(0, 0, 0.95, None, mode="cloud"),
    ]
    means = {(m["mode"], m["bottleneck"]): m for m in bottleneck.summary(rows)}
    assert means["hierarchical", 8]["seeds"] == 2
    assert means["hierarchical", 8]["cloud_accuracy"] == pytest.approx(0.981)
    assert means["hierarchical", 8]["edge_accuracy"] == pytest.approx(0.987)
    assert means["hierarchical", 0]["seeds"] == 1
    assert means["cloud", 0]["edge_accuracy"] is None
    table = bottleneck.table(bottleneck.summary(rows))
    assert "| resnet18 | layer3, bottleneck 8 x 4 bits | 258 | 2 | 0.981 | 0.987 |" in table
    assert "| resnet18 | cloud-only, png uploads | 1,110 | 1 | 0.950 | - |" in table


def test_append_reads_rows_of_the_same_config_and_refuses_another(tmp_path):
    base = HierConfig.from_mapping(bottleneck.BASE).validate()
    path = tmp_path / "bottleneck.json"
    assert harness.earlier_rows(path, base) == []  # nothing yet
    rows = [_row(0, 8, 0.982, 0.984)]
    path.write_text(json.dumps({"config": base.to_dict(), "rows": rows}))
    assert harness.earlier_rows(path, base) == rows
    other = HierConfig.from_mapping({**bottleneck.BASE, "rounds": 4}).validate()
    with pytest.raises(SystemExit, match="another configuration"):
        harness.earlier_rows(path, other)
