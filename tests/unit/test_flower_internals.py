"""Each private part of Flower that hierfl uses, pinned against the installed Flower."""

from __future__ import annotations

import inspect
import time
import tomllib
from pathlib import Path

import numpy as np
import torch
from flwr.app import ArrayRecord, Message, MessageType, RecordDict
from flwr.serverapp.strategy import FedAdam, FedAvgM
from flwr.supercore.task_identity import TaskIdentity
from flwr.supernode import start_client_internal as supernode_loop

from hierfl.app import flower_internals as fi

ROOT = Path(__file__).resolve().parents[2]
FLWR = Path(inspect.getfile(supernode_loop)).parents[1]


def test_the_installed_flower_is_the_one_they_were_written_for():
    pins = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["dependencies"]
    assert f"flwr=={fi.FLOWER_VERSION}" in pins
    said: list[str] = []
    assert fi.check_flower_version(said.append) and said == []


def test_another_flower_is_named_at_start_up(monkeypatch):
    monkeypatch.setattr(fi, "flower_version", lambda: "1.99.0")
    said: list[str] = []
    assert not fi.check_flower_version(said.append)
    assert len(said) == 1 and "1.99.0" in said[0] and "flwr==1.42.0" in said[0]


def test_the_supernode_loop_sleeps_through_its_time_module(monkeypatch):
    assert supernode_loop.time is time
    slept: list[float] = []
    monkeypatch.setattr(supernode_loop, "time", supernode_loop.time)  # restored after the test
    monkeypatch.setattr(time, "sleep", slept.append)
    assert fi.set_supernode_poll(0.25)
    supernode_loop.time.sleep(3)  # Flower's idle poll
    supernode_loop.time.sleep(0.1)
    assert slept == [0.25, 0.1]
    assert supernode_loop.time.monotonic is time.monotonic  # the rest is the time module


def test_the_supernode_verifies_a_new_fab_where_hierfl_hooks_in():
    params = inspect.signature(supernode_loop._pull_and_store_message).parameters
    assert {"get_fab", "trusted_entities"} <= set(params)
    assert list(inspect.signature(supernode_loop._verify_fab).parameters) == [
        "fab",
        "trusted_entities",
    ]
    source = inspect.getsource(supernode_loop._pull_and_store_message)
    assert 'fab.verifications.get("valid_license"' in source
    assert "_verify_fab(fab, trusted_entities)" in source


def test_a_message_outside_flowers_runtime_needs_a_task_identity_and_an_id():
    assert hasattr(TaskIdentity, "_run_id")
    fi.ensure_task_identity(0)
    msg = Message(RecordDict(), 5, MessageType.TRAIN)
    fi.set_message_id(msg, "abc")
    assert msg.metadata.message_id == "abc"
    assert fi.Run.create_empty(3).run_id == 3


def test_superexec_reads_the_poll_interval_variable():
    source = (FLWR / "supercore" / "superexec" / "run_superexec.py").read_text()
    assert f'"{fi.SUPEREXEC_POLL_ENV}"' in source


def test_the_flwr_cli_prints_what_hierfl_parses():
    register = (FLWR / "cli" / "supernode" / "register.py").read_text()
    assert "SuperNode {response.node_id} registered successfully." in register
    assert fi.registered_node_id("✅ SuperNode 42 registered successfully.") == 42
    listing = (FLWR / "cli" / "supernode" / "ls.py").read_text()
    assert '{"success": True, "nodes": nodes_list}' in listing
    assert fi.listed_nodes('log line\n{"success": true, "nodes": [{"node-id": "7"}]}') == [
        {"node-id": "7"}
    ]


def test_a_strategys_server_state_lives_in_the_attributes_hierfl_saves():
    """FedOpt keeps its arrays and moments, FedAvgM its arrays and momentum, as attributes
    initialised in the constructor; hierfl saves every attribute that holds arrays."""
    for strategy, names in (
        (FedAdam(), {"current_arrays", "m_t", "v_t"}),
        (FedAvgM(), {"current_arrays", "momentum_vector"}),
    ):
        assert names <= set(vars(strategy))
    adam = FedAdam()
    adam.current_arrays = {"w": np.ones(3, dtype=np.float32)}
    adam.m_t = {"w": np.full(3, 0.5)}
    avgm = FedAvgM()
    avgm.current_arrays = ArrayRecord({"w": torch.ones(2)})
    avgm.momentum_vector = [np.zeros(2)]
    for strategy in (adam, avgm):
        saved = fi.strategy_state(strategy)
        fresh = type(strategy)()
        fi.load_strategy_state(fresh, saved)
        assert set(fi.strategy_state(fresh)) == set(saved)
    assert np.array_equal(fresh.momentum_vector[0], np.zeros(2))
    loaded = FedAdam()
    fi.load_strategy_state(loaded, fi.strategy_state(adam))
    assert np.array_equal(loaded.m_t["w"], np.full(3, 0.5))
