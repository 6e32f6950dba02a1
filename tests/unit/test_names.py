"""One source for each name: every table that lists modes, codecs or continual methods is tied
to where the names are defined (``hierfl.modes``, ``hierfl.codecs``, the registries)."""

from __future__ import annotations

import tomllib
from pathlib import Path

import pytest

from hierfl.analysis.performance import MODES as PREDICTED
from hierfl.analysis.performance import Link, StageCosts, predict
from hierfl.app.wire import COMPRESSORS, WIRE_DTYPE
from hierfl.codecs import (
    ACTIVATION_CODECS,
    CODE_BITS,
    COMPRESSIONS,
    ENCODINGS,
    RAW_CODECS,
    code_codec,
)
from hierfl.codecs.tensor import CODECS
from hierfl.config import HierConfig, core_fields
from hierfl.modes import MODE_NAMES, MODES
from hierfl.registry import BY_KEY, CONTINUAL, REGISTRIES

ROOT = Path(__file__).resolve().parents[2]
CHOICES = {f.name: f.metadata.get("choices") for f in core_fields()}


def test_the_config_offers_exactly_the_defined_names():
    assert CHOICES["mode"] == MODE_NAMES == tuple(MODES)
    assert CHOICES["codec"] == ACTIVATION_CODECS
    assert CHOICES["code_bits"] == CODE_BITS
    assert CHOICES["raw_codec"] == RAW_CODECS
    assert CHOICES["compress"] == COMPRESSIONS
    assert HierConfig().raw_codec == RAW_CODECS[0]  # the mode table's "left at its default"


def test_the_performance_model_predicts_every_mode():
    assert PREDICTED == MODE_NAMES
    costs = StageCosts(1, 1, 1, 1, 1, 1, 10, 10, 10)
    for mode in MODE_NAMES:
        assert predict(mode, costs, Link(1e6, 1e6), batches=2).total_s > 0


def test_every_encoding_has_a_codec_and_a_wire_type():
    assert set(CODECS) == {*ACTIVATION_CODECS, *(code_codec(b) for b in CODE_BITS)}
    assert set(WIRE_DTYPE) == set(ENCODINGS)
    assert {"none", *COMPRESSORS} == set(COMPRESSIONS)
    for bits in CODE_BITS:
        assert HierConfig(bottleneck=4, code_bits=bits).wire_codec in CODECS


@pytest.mark.parametrize("mode", MODE_NAMES)
def test_each_modes_default_method_is_registered_and_runs_there(mode):
    default = MODES[mode].default_cl
    assert default in CONTINUAL.names()
    assert CONTINUAL.plugin(default).supports(mode)
    assert HierConfig(mode=mode).methods == (default,)


def test_the_modes_unread_keys_are_core_keys():
    keys = set(HierConfig.keys())
    for mode in MODES.values():
        assert set(mode.unread) <= keys, mode.name


def test_continual_methods_name_only_defined_modes_and_core_keys():
    for name in CONTINUAL.names():
        method = CONTINUAL.plugin(name)
        assert set(method.modes) <= set(MODE_NAMES), name
        assert set(method.defaults) <= set(MODE_NAMES), name
        for values in method.defaults.values():
            assert set(values) <= set(HierConfig.keys()), name


def test_the_registries_are_the_config_keys_that_name_plug_ins():
    named = {f.metadata["registry"] for f in core_fields() if f.metadata.get("registry")}
    # ``cl`` names several continual methods joined by '+': validated name by name
    assert named | {"cl"} == set(BY_KEY) == {r.key for r in REGISTRIES}


def test_the_shipped_entry_points_are_what_the_registries_list():
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    groups = project["entry-points"]
    for registry in REGISTRIES:
        shipped = set(groups.get(registry.group, {}))
        assert shipped <= set(registry.names()), registry.group
    assert set(groups) <= {r.group for r in REGISTRIES}
