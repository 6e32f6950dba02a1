"""The long-lived edge worker: same reply as in process, key check, fallback, lifetime."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from multiprocessing import AuthenticationError
from pathlib import Path

import pytest
import torch
from flwr.app import ArrayRecord, Context, RecordDict

from hierfl import client_app
from hierfl.app.edge_handlers import EdgeJob, handle
from hierfl.app.protocol import ARRAYS, CONFIG, decode_result, request_config
from hierfl.boundary import RoundRequest
from hierfl.config import HierConfig
from hierfl.deploy import edge_worker
from hierfl.models import create_model

KEY = bytes(range(32))


def _wait_for(path: str, proc: subprocess.Popen, timeout: float = 120.0) -> None:
    deadline = time.monotonic() + timeout
    while not os.path.exists(path):
        assert proc.poll() is None, "the edge worker exited before it was ready"
        assert time.monotonic() < deadline, "the edge worker never opened its socket"
        time.sleep(0.1)


@pytest.fixture
def worker(tmp_path):
    proc, address = edge_worker.start(tmp_path / "worker-node", KEY, tmp_path / "worker.log")
    _wait_for(address, proc)
    yield proc, address
    proc.terminate()
    proc.wait(timeout=30)
    assert not os.path.exists(os.path.dirname(address)), "a stopped worker removes its socket"


# requests built by hand carry fp32 weights (weight-codec=fp32)
CONFIG_ = HierConfig(
    clients=2, experiences=1, rounds=1, local_epochs=1, weight_codec="fp32", bottleneck=0
)


def _request() -> RecordDict:
    """Round 0 with the cloud's initial edge weights (fixed, as the ServerApp sends them)."""
    torch.manual_seed(0)
    model = create_model(CONFIG_.model, cut=CONFIG_.cut, num_classes=10, input_shape=(1, 8, 8))
    return RecordDict(
        {
            ARRAYS: ArrayRecord(model.edge.state_dict()),
            CONFIG: request_config(RoundRequest(experience=0, round=0)),
        }
    )


def _job(state_dir: Path) -> tuple[dict, dict, int]:
    config = CONFIG_
    node = {"partition-id": 1, "num-partitions": 2, "state-dir": str(state_dir)}
    return config.to_flwr(), node, 7


def test_worker_reply_equals_the_in_process_reply(worker, tmp_path):
    _, address = worker
    here = decode_result(handle("round", _request(), EdgeJob(*_job(tmp_path / "here"))))
    there = decode_result(
        edge_worker.call(address, KEY, "round", _request(), _job(tmp_path / "there"))
    )
    assert there.partition_id == here.partition_id == 1
    assert there.chunk.trained == here.chunk.trained > 0
    assert torch.equal(there.chunk.labels, here.chunk.labels)
    assert torch.allclose(there.chunk.activations, here.chunk.activations, atol=1e-5)
    assert here.edge_state.keys() == there.edge_state.keys()
    for name, value in here.edge_state.items():
        assert torch.allclose(there.edge_state[name], value, atol=1e-5), name
    # the worker wrote its node-local state where the job said, like the in-process path
    assert (tmp_path / "there" / "run-7").is_dir() and (tmp_path / "here" / "run-7").is_dir()


def test_a_failing_request_comes_back_as_an_error_and_the_worker_goes_on(worker, tmp_path):
    proc, address = worker
    with pytest.raises(edge_worker.EdgeWorkerError, match="unknown edge handler 'nope'"):
        edge_worker.call(address, KEY, "nope", _request(), _job(tmp_path / "n"))
    assert proc.poll() is None
    reply = edge_worker.call(address, KEY, "round", _request(), _job(tmp_path / "n"))
    assert decode_result(reply).chunk.trained > 0


def test_a_peer_without_the_key_is_refused_and_the_worker_goes_on(worker, tmp_path):
    proc, address = worker
    with pytest.raises(AuthenticationError):
        edge_worker.call(address, bytes(32), "round", _request(), _job(tmp_path / "k"))
    assert proc.poll() is None
    reply = edge_worker.call(address, KEY, "round", _request(), _job(tmp_path / "k"))
    assert decode_result(reply).chunk.trained > 0


def test_the_client_app_runs_the_request_itself_when_no_worker_answers(tmp_path):
    run_config, node, run_id = _job(tmp_path / "s")
    node = {**node, "edge-worker": str(tmp_path / "gone.sock")}
    context = Context(
        run_id=run_id, node_id=1, node_config=node, state=RecordDict(), run_config=run_config
    )
    reply = client_app._dispatch("round", _request(), context)
    assert decode_result(reply).partition_id == 1


def test_the_worker_exits_when_hierfl_client_is_killed(tmp_path):
    """The worker's parent is SIGKILLed (no atexit runs): the worker must not outlive it."""
    code = (
        "import sys, time\n"
        "from pathlib import Path\n"
        "from hierfl.deploy import edge_worker\n"
        f"proc, address = edge_worker.start(Path({str(tmp_path)!r}), bytes(32), "
        f"Path({str(tmp_path / 'w.log')!r}))\n"
        "print(proc.pid, address, flush=True)\n"
        "time.sleep(600)\n"
    )
    parent = subprocess.Popen([sys.executable, "-c", code], stdout=subprocess.PIPE, text=True)
    pid, address = parent.stdout.readline().split()
    worker_pid = int(pid)
    _wait_for(address, _Running(worker_pid))
    os.kill(parent.pid, signal.SIGKILL)
    parent.wait(timeout=30)
    deadline = time.monotonic() + 60
    while _alive(worker_pid) and time.monotonic() < deadline:
        time.sleep(0.2)
    assert not _alive(worker_pid)
    assert not os.path.exists(os.path.dirname(address)), "the socket folder should be removed"


class _Running:
    """``Popen.poll`` for a process that is not our child."""

    def __init__(self, pid: int) -> None:
        self.pid = pid

    def poll(self) -> int | None:
        return None if _alive(self.pid) else 0


def _alive(pid: int) -> bool:
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except FileNotFoundError:
        return False
    return stat.rsplit(")", 1)[1].split()[0] != "Z"  # a zombie has exited


def test_a_killed_worker_is_restarted_in_place_and_answers_again(tmp_path):
    from hierfl.deploy.worker_supervisor import WorkerSupervisor, read_status, wait_until_ready

    said: list[str] = []
    supervisor = WorkerSupervisor(
        tmp_path / "node", KEY, max_restarts=1, first_backoff_s=0.1, poll_s=0.1, say=said.append
    )
    address = supervisor.start()
    try:
        assert wait_until_ready(address, 60)
        _wait_for(address, supervisor.proc)
        first = supervisor.proc.pid
        os.kill(first, signal.SIGKILL)
        deadline = time.monotonic() + 60
        while (supervisor.proc.pid == first or read_status(address) != "ready") and (
            time.monotonic() < deadline
        ):
            time.sleep(0.1)
        assert supervisor.proc.pid != first and read_status(address) == "ready"
        _wait_for(address, supervisor.proc)  # the same address: the node config stays valid
        reply = edge_worker.call(address, KEY, "round", _request(), _job(tmp_path / "r"))
        assert decode_result(reply).chunk.trained > 0
        assert said == ["edge worker exited with code -9; restart 1 of 1 in 0.1s"]

        os.kill(supervisor.proc.pid, signal.SIGKILL)  # restarts are used up now
        while read_status(address) != "gave-up" and time.monotonic() < deadline + 30:
            time.sleep(0.1)
        assert read_status(address) == "gave-up"
        assert "restarts used up" in said[-1] and len(said) == 2  # said once
        # the ClientApp then runs the message itself, at once
        run_config, node, run_id = _job(tmp_path / "g")
        node = {**node, "edge-worker": address}
        context = Context(
            run_id=run_id, node_id=1, node_config=node, state=RecordDict(), run_config=run_config
        )
        start = time.monotonic()
        assert decode_result(client_app._dispatch("round", _request(), context)).partition_id == 1
        assert time.monotonic() - start < client_app.WORKER_WAIT_S
    finally:
        supervisor.stop()
    assert not os.path.exists(os.path.dirname(address))


def test_the_key_is_in_a_private_file_not_the_node_config(worker):
    _, address = worker
    key_file = Path(os.path.dirname(address)) / edge_worker.KEY_FILE
    assert oct(key_file.stat().st_mode & 0o777) == "0o600"
    assert oct(key_file.parent.stat().st_mode & 0o777) == "0o700"
    assert edge_worker.read_key(address) == KEY


def test_a_silent_peer_is_dropped_and_the_worker_serves_the_next(tmp_path):
    """A peer that connects and never answers the challenge, or never sends its request,
    holds the worker for the deadline only."""
    import socket

    proc, address = edge_worker.start(
        tmp_path / "node", KEY, tmp_path / "w.log", handshake_s=1.0, receive_s=1.0
    )
    try:
        _wait_for(address, proc)
        silent = socket.socket(socket.AF_UNIX)
        silent.connect(address)  # connects, then says nothing
        from multiprocessing.connection import Client

        quiet = Client(address, family="AF_UNIX", authkey=KEY)  # handshake, then no request
        start = time.monotonic()
        reply = edge_worker.call(address, KEY, "round", _request(), _job(tmp_path / "t"))
        assert decode_result(reply).chunk.trained > 0
        assert time.monotonic() - start < 60  # not blocked for good
        silent.close()
        quiet.close()
        log = (tmp_path / "w.log").read_text()
        assert log.count("refused a connection") >= 2, log
    finally:
        proc.terminate()
        proc.wait(timeout=30)


def test_the_client_app_gives_up_on_a_worker_that_never_replies(tmp_path):
    from multiprocessing.connection import Listener

    folder = tmp_path / "w"
    folder.mkdir(mode=0o700)
    address = str(folder / edge_worker.SOCKET_NAME)
    (folder / edge_worker.KEY_FILE).write_text(KEY.hex())
    with Listener(address, family="AF_UNIX", authkey=KEY) as listener:
        import threading

        held = []
        threading.Thread(target=lambda: held.append(listener.accept()), daemon=True).start()
        with pytest.raises(edge_worker.EdgeWorkerError, match="did not reply within"):
            edge_worker.call(address, KEY, "round", _request(), _job(tmp_path / "x"), timeout=0.5)
