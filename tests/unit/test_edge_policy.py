"""The edge decides what leaves it: its owner's policy refuses run configs that break a rule,
whatever the cloud sends; state folders are private; node configs cannot be injected."""

from __future__ import annotations

import os
import stat

import pytest
from flwr.app import ArrayRecord, Context, Message, RecordDict

from hierfl import client_app
from hierfl.app.edge_handlers import EdgeJob, handle, node_state_dir
from hierfl.app.protocol import ARRAYS, CONFIG, decode_result, request_config
from hierfl.boundary import RoundRequest
from hierfl.config import HierConfig
from hierfl.deploy.supernode import build_parser, node_config_text, supernode_argv
from hierfl.edge.policy import EdgePolicy, PolicyRefused
from hierfl.errors import HierflError
from hierfl.models import create_model
from hierfl.util.storage import private_dir, save_atomic

# requests built by hand carry fp32 weights (weight-codec=fp32)
BASE = HierConfig(
    clients=2, experiences=1, rounds=1, local_epochs=1, weight_codec="fp32", bottleneck=0
)


def _request(config: HierConfig) -> RecordDict:
    model = create_model(config.model, cut=config.cut, num_classes=10, input_shape=(1, 8, 8))
    state = model.edge.state_dict() if config.mode != "cloud" else {}
    return RecordDict(
        {ARRAYS: ArrayRecord(state), CONFIG: request_config(RoundRequest(experience=0, round=0))}
    )


def _job(tmp_path, run_config: dict, **policy) -> EdgeJob:
    node = {"partition-id": 0, "num-partitions": 2, "state-dir": str(tmp_path / "node")}
    return EdgeJob(run_config, {**node, **EdgePolicy(**policy).node_config()}, 3)


@pytest.mark.parametrize(
    ("change", "rule"),
    [
        ({"mode": "cloud"}, "allow-raw-upload"),
        ({"latency": 3600.0}, "max-latency"),
        ({"edge-slowdown": 1000.0}, "max-slowdown"),
        ({"per-edge": "edge-slowdown=1000,1"}, "max-slowdown"),  # this edge's own value
        ({"per-edge": "latency=3600"}, "max-latency"),
    ],
)
def test_a_run_config_breaking_a_rule_is_refused_before_any_data_is_read(tmp_path, change, rule):
    run_config = {**BASE.to_flwr(), **change}
    with pytest.raises(PolicyRefused, match=rule):
        handle("round", _request(BASE), _job(tmp_path, run_config))
    assert not (tmp_path / "node" / "cache").exists()  # the stream was never loaded


def test_raw_upload_runs_only_when_the_owner_allows_it(tmp_path):
    cloud = HierConfig.from_mapping({"mode": "cloud"}, base=BASE)
    reply = handle("round", _request(cloud), _job(tmp_path, cloud.to_flwr(), allow_raw_upload=True))
    assert decode_result(reply).chunk.raw


def test_privacy_floors_hold(tmp_path):
    noisy = {**BASE.to_flwr(), "act-noise": 0.05, "act-clip": 5.0}
    with pytest.raises(PolicyRefused, match="min-act-noise"):
        handle("round", _request(BASE), _job(tmp_path, noisy, min_act_noise=0.1))
    with pytest.raises(PolicyRefused, match="max-act-clip"):
        handle("round", _request(BASE), _job(tmp_path, noisy, max_act_clip=1.0))
    ok = {**noisy, "act-noise": 0.2, "act-clip": 1.0}
    reply = handle("round", _request(BASE), _job(tmp_path, ok, min_act_noise=0.1, max_act_clip=1))
    assert decode_result(reply).chunk.trained > 0


def test_a_slow_emulated_link_is_refused_past_the_owner_bound(tmp_path):
    slow = {**BASE.to_flwr(), "bitrate": 1.0}  # one bit per second: days per message
    with pytest.raises(PolicyRefused, match="max-link-s"):
        handle("round", _request(BASE), _job(tmp_path, slow))


@pytest.mark.parametrize("key", ["../escape", "/tmp/elsewhere", "..", ".hidden", "a/b"])
def test_a_state_key_that_is_a_path_is_refused(tmp_path, key):
    run_config = {**BASE.to_flwr(), "state-key": key}  # as a hostile ServerApp would send it
    with pytest.raises(PolicyRefused, match="state-key"):
        handle("round", _request(BASE), _job(tmp_path, run_config))
    assert list(tmp_path.iterdir()) == []  # refused before anything was written


def test_the_refusal_is_an_error_reply_that_names_the_rule(tmp_path):
    from hierfl.app.inprocess import ensure_task_identity

    ensure_task_identity(0)
    job = _job(tmp_path, {**BASE.to_flwr(), "mode": "cloud"})
    context = Context(
        run_id=3,
        node_id=1,
        node_config=job.node_config,
        state=RecordDict(),
        run_config=job.run_config,
    )
    msg = Message(_request(BASE), dst_node_id=1, message_type="train")
    reply = client_app._handler("round")(msg, context)
    assert reply.has_error()
    assert "edge policy allow-raw-upload" in reply.error.reason
    assert "partition 0" in reply.error.reason


def test_policy_values_from_a_node_config_are_checked():
    assert EdgePolicy.from_node_config({"allow-raw-upload": True}).allow_raw_upload
    assert not EdgePolicy.from_node_config({"allow-raw-upload": "false"}).allow_raw_upload
    for bad in ({"allow-raw-upload": "maybe"}, {"max-latency": "inf"}, {"min-act-noise": -1}):
        with pytest.raises(PolicyRefused):
            EdgePolicy.from_node_config(bad)


def test_state_folders_are_private(tmp_path):
    folder = node_state_dir({"state-dir": str(tmp_path / "a" / "b")}, 0)
    assert stat.S_IMODE(folder.stat().st_mode) == 0o700
    loose = tmp_path / "loose"
    loose.mkdir(mode=0o755)
    os.chmod(loose, 0o755)
    assert stat.S_IMODE(private_dir(loose).stat().st_mode) == 0o700


def test_the_default_state_folder_is_per_user(monkeypatch, tmp_path):
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    folder = node_state_dir({}, 4)
    assert folder == tmp_path / "cache" / "hierfl" / "node-4"
    assert not str(folder).startswith("/tmp/hierfl")


def test_a_planted_folder_or_symlink_is_refused(tmp_path):
    target = tmp_path / "elsewhere"
    target.mkdir()
    (tmp_path / "link").symlink_to(target)
    with pytest.raises(HierflError, match="not a folder"):
        private_dir(tmp_path / "link")
    if os.getuid() == 0:  # root can plant a folder owned by someone else
        planted = tmp_path / "planted"
        planted.mkdir()
        os.chown(planted, 12345, 12345)
        with pytest.raises(HierflError, match="another user"):
            private_dir(planted)


def test_atomic_writes_never_follow_a_planted_symlink(tmp_path):
    victim = tmp_path / "victim"
    victim.write_text("keep")
    for pid in range(os.getpid() - 2, os.getpid() + 3):  # the old predictable name
        (tmp_path / f".state.pt.tmp{pid}").symlink_to(victim)
    save_atomic({"x": 1}, tmp_path / "state.pt")
    assert victim.read_text() == "keep"
    assert stat.S_IMODE((tmp_path / "state.pt").stat().st_mode) == 0o600


@pytest.mark.parametrize("value", ['x" evil-key="1', "a\\b", "line\nbreak"])
def test_node_config_values_cannot_inject_keys(value):
    with pytest.raises(ValueError, match="not allowed"):
        node_config_text({"data-dir": value})


def test_hierfl_client_passes_its_policy_and_no_key(tmp_path):
    args, extra = build_parser().parse_known_args(
        [
            "--partition-id",
            "0",
            "--num-partitions",
            "2",
            "--insecure",
            "--state-dir",
            str(tmp_path),
            "--allow-raw-upload",
            "--max-latency",
            "2",
        ]
    )
    argv = supernode_argv(args, extra, worker=("/x/edge-worker.sock", b"\x01" * 32))
    text = argv[argv.index("--node-config") + 1]
    assert "allow-raw-upload=true" in text and "max-latency=2.0" in text
    assert "01" * 32 not in text and "key" not in text
    from flwr.common.config import parse_config_args

    parsed = parse_config_args([text])
    assert EdgePolicy.from_node_config(parsed) == EdgePolicy(allow_raw_upload=True, max_latency=2)
    assert parsed["edge-worker"] == "/x/edge-worker.sock"


def test_a_local_run_owner_allows_each_edge_its_own_emulated_values():
    from hierfl.deploy.launch import owner_policy

    config = HierConfig.from_mapping({"clients": 3, "per-edge": "edge-slowdown=1,16;latency=0,20"})
    flags = owner_policy(config)
    assert flags[flags.index("--max-slowdown") + 1] == "16.0"
    assert flags[flags.index("--max-latency") + 1] == "20.0"
    assert owner_policy(BASE)[:4] == ["--max-latency", "10.0", "--max-slowdown", "10.0"]
