"""Config parsing and validation, and the CLI's one-line errors.

The bad-value suite is generated from the config's own fields (and every registered plug-in's
settings): a new key gets its bad values from its bounds and choices, or from the ``bad``
examples a free-form key must declare.
"""

from __future__ import annotations

import dataclasses
import subprocess
import sys
import tomllib
from pathlib import Path

import pytest

from hierfl import cli
from hierfl.config import HierConfig, core_fields
from hierfl.errors import ConfigError, UnknownNameError
from hierfl.options import flatten, parse_overrides, read_toml
from hierfl.registry.settings import all_settings, declared_settings
from hierfl.resolve import with_method_defaults

ROOT = Path(__file__).resolve().parents[2]


def test_pyproject_run_config_lists_every_core_key_and_plugin_setting_at_its_default():
    table = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["flwr"]["app"]["config"]
    expected = HierConfig().to_flwr()
    for name, items in all_settings().items():
        expected.update({f"{name}.{k}": v for k, v in items.items()})
    assert flatten(table) == expected


def test_generated_reference_is_up_to_date():
    """docs/reference.md's options table and pyproject's run config, from the metadata."""
    from hierfl.reference import generated

    for path, text in generated(ROOT).items():
        assert path.read_text() == text, f"run: python -m hierfl.reference --write ({path})"


def test_overrides_coerce_types():
    cfg = HierConfig.from_mapping(parse_overrides(["clients=5", "edge-lr=0.1", "cut=block3"]))
    assert (cfg.clients, cfg.edge_lr, cfg.cut) == (5, 0.1, "block3")


# ---- the generated bad-value suite ---------------------------------------------------------
def _bad_values(f: dataclasses.Field, default) -> list[str]:
    """Values ``f`` must refuse, from its type, bounds, choices or declared examples."""
    meta = f.metadata
    if isinstance(default, bool):
        return ["maybe"]
    if isinstance(default, int | float):
        out = ["x"] + (["nan", "inf"] if isinstance(default, float) else ["1.5"])
        if meta.get("ge") is not None:
            out.append(str(meta["ge"] - 1))
        if meta.get("gt") is not None:
            out.append(str(meta["gt"]))
        if meta.get("le") is not None:
            out.append(str(meta["le"] + 1))
        if meta.get("lt") is not None:
            out.append(str(meta["lt"]))
        return out
    if meta.get("choices") or meta.get("registry"):
        return ["nope"]
    return list(meta.get("bad", ()))


def _cases():
    cases = []
    for f in core_fields():
        key = f.name.replace("_", "-")
        cases += [(key, bad) for bad in _bad_values(f, f.default)]
    for name in all_settings():
        for key, f in declared_settings(name).items():
            default = f.default
            cases += [(f"{name}.{key}", bad) for bad in _bad_values(f, default)]
    return cases


CASES = _cases()


def test_every_key_has_a_bad_value():
    keys = {key for key, _ in CASES}
    expected = {f.name.replace("_", "-") for f in core_fields()}
    expected |= {f"{n}.{k}" for n in all_settings() for k in declared_settings(n)}
    assert keys == expected, f"declare bad= examples for {sorted(expected - keys)}"


@pytest.mark.parametrize(("key", "value"), CASES, ids=[f"{k}={v}" for k, v in CASES])
def test_every_bad_value_is_one_line_and_exit_2(key, value, capsys, monkeypatch, tmp_path):
    def started(*_a, **_k):
        raise AssertionError(f"{key}={value} was accepted and a run started")

    monkeypatch.setattr(cli, "_run_engine", started)
    out = [] if key == "out" else ["--out", str(tmp_path / "run")]
    code = cli.main(["run", *out, f"{key}={value}"])
    err = capsys.readouterr().err
    assert code == 2, err
    lines = err.strip().splitlines()
    assert len(lines) == 1, err
    assert lines[0].startswith(f"hierfl: error: {key}"), lines[0]
    assert "Traceback" not in err


# ---- other rules ------------------------------------------------------------------------------
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


def test_unknown_key_moved_key_and_bad_type():
    with pytest.raises(ConfigError, match=r"^clinets: unknown key; did you mean clients\?"):
        HierConfig.from_mapping({"clinets": 3})
    with pytest.raises(ConfigError, match=r"did you mean lwf\.alpha\?"):  # a plug-in's setting
        HierConfig.from_mapping({"lwf_alpha": 3})
    with pytest.raises(ConfigError, match=r"unknown key; docs/reference\.md lists every key"):
        HierConfig.from_mapping({"zzz": 3})  # nothing close
    with pytest.raises(ConfigError, match="use ewc.lambda"):
        HierConfig.from_mapping({"ewc-lambda": 3})
    with pytest.raises(ConfigError, match="expected int"):
        HierConfig.from_mapping({"clients": "three"})
    with pytest.raises(UnknownNameError):
        HierConfig.from_mapping({"optimizer": "lion"}).validate()


def test_plugin_settings_are_typed_checked_and_reach_the_plugin():
    config = HierConfig.from_mapping({"lwf.alpha": "0.5", "fedprox.proximal-mu": 2}).validate()
    assert config.settings("lwf").alpha == 0.5 and config.settings("lwf").temperature == 2.0
    assert config.settings("fedprox").proximal_mu == 2.0
    assert config.settings("ewc").lambda_ == 1000.0  # keyword-safe name, "ewc.lambda" outside
    with pytest.raises(ConfigError, match="lwf.beta: unknown setting; lwf has: lwf.alpha"):
        HierConfig.from_mapping({"lwf.beta": 1}).validate()
    with pytest.raises(ConfigError, match="nope"):
        HierConfig.from_mapping({"nope.x": 1}).validate()


def test_a_strategy_is_built_with_its_settings():
    from hierfl.app.strategy import build_strategy

    strategy = build_strategy(HierConfig.from_mapping({"strategy": "fedprox"}))
    assert strategy.proximal_mu == 0.01
    tuned = HierConfig.from_mapping({"strategy": "fedprox", "fedprox.proximal-mu": 0.3})
    assert build_strategy(tuned.validate()).proximal_mu == 0.3


def test_a_method_brings_its_defaults_unless_the_user_set_them():
    config, applied = with_method_defaults(HierConfig(cl="edge-replay+cloud-replay"))
    assert applied == {"freeze-edge-after": 0, "cloud-lr": 0.0005}
    assert (config.freeze_edge_after, config.cloud_lr) == (0, 0.0005)
    mine, applied = with_method_defaults(HierConfig(cl="cloud-replay", cloud_lr=0.001))
    assert applied == {"freeze-edge-after": 0} and mine.cloud_lr == 0.001
    assert with_method_defaults(config)[0] == config  # applying twice changes nothing
    assert with_method_defaults(HierConfig(cl="edge-replay"))[1] == {}


def test_a_key_the_user_named_keeps_its_value_even_at_hierfls_default(tmp_path):
    """``freeze-edge-after=-1`` is hierfl's default, but said out loud it means "never freeze"."""
    config = HierConfig(cl="cloud-replay")
    kept, applied = with_method_defaults(config, given={"freeze_edge_after"})
    assert applied == {"cloud-lr": 0.0005} and kept.freeze_edge_after == -1
    parser = cli.build_parser()
    argv = ["run", "--out", str(tmp_path), "--cl", "cloud-replay", "freeze-edge-after=-1"]
    said = cli.resolve_config(parser.parse_args(argv))
    assert (said.freeze_edge_after, said.cloud_lr) == (-1, 0.0005)
    assert {"cl", "freeze-edge-after", "out"} == said.user_keys
    # The ServerApp (hierfl.run on the config) and each edge (the run config through Flower)
    # apply the methods' defaults again: the recorded keys keep the user's value there too.
    from hierfl.api import resolve_config as resolve

    assert resolve(said, {}).freeze_edge_after == -1
    through_flower = HierConfig.from_mapping(said.to_flwr())
    assert with_method_defaults(through_flower)[0].freeze_edge_after == -1
    unsaid = cli.resolve_config(parser.parse_args(argv[:-1]))
    assert (unsaid.freeze_edge_after, unsaid.cloud_lr) == (0, 0.0005)
    toml = tmp_path / "c.toml"
    toml.write_text('cl = "cloud-replay"\ncloud-lr = 0.001\n')  # the file names it: kept
    filed = cli.resolve_config(parser.parse_args(["run", "--config", str(toml)]))
    assert (filed.freeze_edge_after, filed.cloud_lr) == (0, 0.001)
    assert filed.out.startswith("runs/")  # no out given: a stamped folder


def test_the_python_front_door_keeps_named_keys_too():
    from hierfl.api import resolve_config as resolve

    said = resolve({"cl": "cloud-replay", "freeze-edge-after": -1}, {})
    assert (said.freeze_edge_after, said.cloud_lr) == (-1, 0.0005)
    assert resolve(None, {"cl": "cloud-replay", "cloud_lr": 0.0005}).freeze_edge_after == 0
    assert resolve(None, {"cl": "cloud-replay", "freeze_edge_after": -1}).freeze_edge_after == -1


def test_config_precedence_defaults_preset_file_flags_overrides(tmp_path):
    """defaults < --preset < --config < flags < key=value, each layer seen winning."""
    toml = tmp_path / "c.toml"
    toml.write_text("rounds = 7\nclients = 4\nseed = 9\n")
    parser = cli.build_parser()

    def resolved(*argv):
        return cli.resolve_config(parser.parse_args(["run", "--out", str(tmp_path), *argv]))

    assert resolved().rounds == HierConfig().rounds == 5
    assert resolved("--preset", "tiny").rounds == 2  # preset over defaults
    assert resolved("--preset", "tiny", "--config", str(toml)).rounds == 7  # file over preset
    assert resolved("--config", str(toml), "--rounds", "8").rounds == 8  # flag over file
    both = resolved("--config", str(toml), "--rounds", "8", "rounds=9", "seed=1")
    assert (both.rounds, both.seed, both.clients) == (9, 1, 4)  # key=value over all


def test_read_toml_errors_and_plugin_tables(tmp_path):
    with pytest.raises(ConfigError, match="cannot read"):
        read_toml(tmp_path / "missing.toml")
    bad = tmp_path / "bad.toml"
    bad.write_text("clients = [")
    with pytest.raises(ConfigError, match="not valid TOML"):
        read_toml(bad)
    good = tmp_path / "good.toml"
    good.write_text("[tool.flwr.app.config]\nclients = 4\nlwf.alpha = 2.0\n")
    assert read_toml(good) == {"clients": 4, "lwf.alpha": 2.0}


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
        (["--clients", "0"], "clients: must be >= 1"),
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


@pytest.mark.parametrize(
    ("mode", "overrides", "key"),
    [
        ("hierarchical", {"raw-codec": "png"}, "raw-codec"),
        ("edge", {"raw-codec": "fp32"}, "raw-codec"),
        ("split", {"raw-codec": "jpeg"}, "raw-codec"),
        ("cloud", {"bottleneck": 4}, "bottleneck"),
        ("cloud", {"act-noise": 0.1}, "act-clip"),
    ],
)
def test_a_key_for_what_the_mode_does_not_ship_is_refused_not_ignored(mode, overrides, key):
    with pytest.raises(ConfigError, match=f"^{key}: .*{mode} mode"):
        HierConfig.from_mapping({"mode": mode, **overrides}).validate()
    plain = {k: getattr(HierConfig(), k.replace("-", "_")) for k in overrides}
    HierConfig.from_mapping({"mode": mode, **plain}).validate()  # at the default: fine
    if key == "raw-codec":
        HierConfig.from_mapping({"mode": "cloud", **overrides}).validate()


def test_an_empty_choice_is_shown_as_such_in_the_error():
    with pytest.raises(ConfigError) as info:
        HierConfig.from_mapping({"exit-head": "nope"}).validate()
    assert str(info.value) == (
        "exit-head: unknown value 'nope'; allowed: '' (empty: the default), conv, mlp"
    )
