"""ClientApp = edge trainer: one ``train`` message in, weights plus a chunk of activations out.

This module imports only Flower. Flower runs it in a fresh process per message, so the work is
handed on:

- to the node's long-lived edge worker (``hierfl.deploy.edge_worker``) when ``hierfl-client``
  started one: its node config names the socket (``edge-worker``); the key is in a 0600 file
  beside it;
- otherwise (a plain ``flower-supernode``, the simulation engine, or a worker that does not
  answer) to ``hierfl.app.edge_handlers`` in this process, which then imports torch.

Link emulation (``bitrate``, ``downlink-bitrate``, ``latency``) happens in the handler: before
returning a reply it sleeps the downlink time of the request it received plus the uplink time of
its reply, both from their array payload bytes, and reports the sum as ``chunk["link-s"]``.
Flower's own transfer over loopback comes on top (it is part of the measured fixed overhead).
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable

from flwr.app import ConfigRecord, Context, Error, Message, RecordDict
from flwr.clientapp import ClientApp

from hierfl.deploy import edge_worker
from hierfl.deploy.worker_supervisor import read_status

app = ClientApp()

# Flower's code for "the ClientApp raised an exception"; the reason names the partition.
EDGE_FAILED = 2
# How long a message waits for hierfl-client to restart a dead edge worker (back-off included).
WORKER_WAIT_S = 120.0
_log = logging.getLogger(__name__)


def _run_here(kind: str, content: RecordDict, job: tuple[dict, dict, int]) -> RecordDict:
    from hierfl.app.edge_handlers import EdgeJob, handle

    return handle(kind, content, EdgeJob(*job))


def _dispatch(kind: str, content: RecordDict, context: Context) -> RecordDict:
    job = (dict(context.run_config), dict(context.node_config), int(context.run_id))
    address = str(context.node_config.get("edge-worker", "") or "")
    if not address:
        return _run_here(kind, content, job)
    deadline = time.monotonic() + WORKER_WAIT_S
    timeout = float(context.run_config.get("reply-timeout", 3600.0))  # the cloud waits no longer
    while True:
        try:
            key = edge_worker.read_key(address)
            return edge_worker.call(address, key, kind, content, job, timeout)  # type: ignore[return-value]
        except OSError as exc:
            status = read_status(address)
            if status in ("ready", "restarting") and time.monotonic() < deadline:
                time.sleep(0.5)  # hierfl-client is restarting the worker: wait for it
                continue
            if status != "gave-up":  # (after giving up, hierfl-client has said so once)
                _log.warning(
                    "edge worker at %s did not answer (%s); running in process", address, exc
                )
            return _run_here(kind, content, job)


def _handler(kind: str) -> Callable[[Message, Context], Message]:
    """The ClientApp handler for ``kind``; any failure becomes an error reply naming the edge."""

    def run(msg: Message, context: Context) -> Message:
        partition_id = int(context.node_config.get("partition-id", -1))
        try:
            return Message(_dispatch(kind, msg.content, context), reply_to=msg)
        except Exception as exc:  # the cloud logs it and goes on with the other edges
            reason = f"partition {partition_id}: {type(exc).__name__}: {exc}"
            return Message(Error(code=EDGE_FAILED, reason=reason), reply_to=msg)

    run.__name__ = f"edge_{kind}"
    return run


app.train()(_handler("round"))
app.train("split")(_handler("split"))


@app.query("partition")
def partition(msg: Message, context: Context) -> Message:
    """Which partition this node holds: the cloud asks once when it samples edges per round
    (``clients-per-round``), so that every engine draws the same edges
    (``hierfl.app.sampled_grid.learn_partitions`` reads the reply)."""
    pid = int(context.node_config.get("partition-id", -1))
    record = ConfigRecord({"partition-id": pid})
    return Message(RecordDict({"partition": record}), reply_to=msg)
