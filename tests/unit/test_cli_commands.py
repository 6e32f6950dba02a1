"""The commands the README promises: profile, plan --json, --device, the secure helper."""

from __future__ import annotations

import json

from hierfl import cli
from hierfl.analysis.profile import profile_model
from hierfl.deploy import secure


def test_profile_prints_every_cut_with_bytes_from_the_model(capsys):
    assert cli.main(["profile", "--model", "vgg16", "--input", "3x32x32"]) == 0
    out = capsys.readouterr().out
    for p in profile_model("vgg16", (3, 32, 32), 10):  # every cut's row, with its own bytes
        row = next(line for line in out.splitlines() if line.startswith(p.cut))
        assert f"{p.activation_bytes_per_sample / 1024:.1f}" in row


def test_profile_with_a_bottleneck_shows_its_code_bytes_and_encoder_and_decoder(capsys):
    args = ["profile", "--model", "small-cnn", "--bottleneck", "4", "--code-bits", "4"]
    assert cli.main(args) == 0
    out = capsys.readouterr().out
    assert "bottleneck of 4 channels at 4 bits" in out
    # 8x8 digits: block3 keeps 2x2 positions (4 channels x 4 x 4 bits = 8 B); encoder 1x1 conv
    # 64 -> 4 channels (256 weights) + BatchNorm (8); decoder 4 -> 64 (256) + BatchNorm (128).
    rows = [line.split() for line in out.splitlines() if line.startswith("block3")]
    assert rows[0][1:4] == ["4x2x2", "0.1", "8"]
    assert rows[1][1] == "264" and rows[1][3] == "384"
    assert cli.main(["profile", "--model", "small-cnn", "bottleneck=4"]) == 0
    assert "at 8 bits" in capsys.readouterr().out  # the key=value form, 8-bit codes by default


def test_profile_and_plan_take_config_files_and_key_value(capsys, tmp_path):
    toml = tmp_path / "c.toml"
    toml.write_text('model = "resnet18"\ninput-shape = "3x32x32"\nbitrate = 1e6\n')
    assert cli.main(["profile", "--config", str(toml)]) == 0
    assert capsys.readouterr().out.startswith("resnet18 on 3x32x32")
    assert cli.main(["plan", "--config", str(toml), "--json"]) == 0
    plan = json.loads(capsys.readouterr().out)
    assert plan["settings"]["bitrate_bps"] == 1e6
    assert cli.main(["plan", "model=small-cnn", "--bitrate", "2e6", "--json"]) == 0
    plan = json.loads(capsys.readouterr().out)
    assert plan["settings"]["bitrate_bps"] == 2e6  # the flag
    cuts = {r["cut"] for r in plan["rows"]}
    assert {"block1", "block2", "block3", "block2+4x8b", "block3+64x8b"} <= cuts


def test_plan_json_agrees_with_the_table(capsys):
    argv = ["plan", "--model", "small-cnn", "--bitrate", "1e6"]
    assert cli.main(argv) == 0
    table = capsys.readouterr().out
    assert cli.main([*argv, "--json"]) == 0
    plan = json.loads(capsys.readouterr().out)
    best = plan["recommended"]
    (row,) = [r for r in plan["rows"] if (r["cut"], r["mode"]) == (best, "hierarchical")]
    assert table.splitlines()[-1].startswith(f"recommended cut: {best} (hierarchical ")
    assert f"{best}*" in table  # the table marks the same cut
    assert f"{row['epoch_s']:.3g}" in table.splitlines()[-1]


def test_device_sets_both_sides_and_auto_says_what_it_chose(capsys, monkeypatch, tmp_path):
    parser = cli.build_parser()
    args = parser.parse_args(["run", "--device", "auto", "--out", str(tmp_path / "r")])
    config = cli.resolve_config(args)
    assert (config.edge_device, config.cloud_device) == ("auto", "auto")
    started = []
    monkeypatch.setattr(cli, "_run_engine", lambda engine, config: started.append(config))
    assert cli.main(["run", "--device", "auto", "--preset", "tiny", "--out", str(tmp_path)]) == 0
    import torch

    chosen = "cuda" if torch.cuda.is_available() else "cpu"
    assert f"devices: edge {chosen}, cloud {chosen} (auto)" in capsys.readouterr().out
    if not torch.cuda.is_available():  # cuda asked for where there is none: one line, exit 2
        assert cli.main(["run", "--device", "cuda", "--out", str(tmp_path / "c")]) == 2
        err = capsys.readouterr().err.strip().splitlines()
        assert err == [
            "hierfl: error: edge-device: cuda requested but this machine has no CUDA device; "
            "use cpu or auto"
        ]


def test_secure_writes_certificates_and_never_replaces_them_silently(tmp_path, capsys):
    secure.main([str(tmp_path), "--keys", "1"])
    ca = (tmp_path / "certs" / "ca.crt").read_bytes()
    key = (tmp_path / "keys" / "edge-0").read_bytes()
    assert (tmp_path / "keys" / "edge-0").stat().st_mode & 0o777 == 0o600
    capsys.readouterr()
    secure.main([str(tmp_path), "--keys", "2"])  # run again: keep what was handed out
    out = capsys.readouterr().out
    assert "kept the CA" in out and "SuperNode 0: kept" in out
    assert (tmp_path / "certs" / "ca.crt").read_bytes() == ca
    assert (tmp_path / "keys" / "edge-0").read_bytes() == key
    assert (tmp_path / "keys" / "edge-1.pub").exists()  # the missing key was added
    secure.main([str(tmp_path), "--force"])
    assert (tmp_path / "certs" / "ca.crt").read_bytes() != ca


def test_app_records_the_keys_set_so_the_server_and_edges_keep_them(tmp_path):
    import tomllib

    from hierfl.config import HierConfig
    from hierfl.resolve import with_method_defaults

    folder = tmp_path / "app"
    assert cli.main(["app", str(folder), "cl=cloud-replay", "freeze-edge-after=-1"]) == 0
    table = tomllib.loads((folder / "pyproject.toml").read_text())["tool"]["flwr"]["app"]
    written = table["config"]
    assert written["set-keys"] == "cl,freeze-edge-after"
    assert (written["freeze-edge-after"], written["cloud-lr"]) == (-1, 0.0005)
    config, applied = with_method_defaults(HierConfig.from_mapping(written))  # as an edge does
    assert config.freeze_edge_after == -1 and applied == {}
