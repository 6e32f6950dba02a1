"""ClientApp = edge trainer: one ``train`` message in, weights plus a chunk of activations out.

A fresh process runs each message, so everything that must persist (optimizer, stream cursor,
the cached stream) lives in the node-local state folder, never in module globals.

Link emulation (``bitrate``, ``downlink-bitrate``, ``latency``): before returning a reply the
handler sleeps the downlink time of the request it received plus the uplink time of its reply,
both from their array payload bytes, and reports the sum as ``chunk["link-s"]``. Flower's own
transfer over loopback comes on top (it is part of the measured fixed overhead).
"""

from __future__ import annotations

import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import torch
from flwr.app import Context, Error, Message, RecordDict
from flwr.clientapp import ClientApp

from hierfl.app.protocol import (
    decode_gradient,
    decode_request,
    encode_result,
    encode_split_step,
    payload_bytes,
    stamp_link_seconds,
)
from hierfl.config import HierConfig
from hierfl.data import ClientStream
from hierfl.edge_node import run_edge_round
from hierfl.link import LinkSpec, slow_down
from hierfl.split import SplitEdge
from hierfl.streams import load_client_stream

app = ClientApp()

# Flower's code for "the ClientApp raised an exception"; the reason names the partition.
EDGE_FAILED = 2
SPLIT_STATE = "split_state.pt"


def node_state_dir(node_config: dict, partition_id: int) -> Path:
    configured = str(node_config.get("state-dir", "") or "")
    if configured:
        return Path(configured)
    return Path(tempfile.gettempdir()) / "hierfl" / f"node-{partition_id}"


def _guarded(handler: Callable[[Message, Context], RecordDict]) -> Callable:
    """Run ``handler``; any failure becomes an error reply naming this partition."""

    def run(msg: Message, context: Context) -> Message:
        partition_id = int(context.node_config.get("partition-id", -1))
        try:
            content = handler(msg, context)
            _emulate_link(context, msg.content, content)
            return Message(content, reply_to=msg)
        except Exception as exc:  # the cloud logs it and goes on with the other edges
            reason = f"partition {partition_id}: {type(exc).__name__}: {exc}"
            return Message(Error(code=EDGE_FAILED, reason=reason), reply_to=msg)

    run.__name__ = handler.__name__
    return run


def _emulate_link(context: Context, request: RecordDict, reply: RecordDict) -> float:
    """Sleep the emulated request downlink plus reply uplink; stamp the seconds into the reply."""
    spec = LinkSpec.from_config(HierConfig.from_mapping(context.run_config))
    if not spec.enabled:
        return 0.0
    seconds = spec.seconds(payload_bytes(request), "down")
    seconds += spec.seconds(payload_bytes(reply), "up")
    time.sleep(seconds)
    stamp_link_seconds(reply, seconds)
    return seconds


def _slowed(config: HierConfig, work: Callable[[], object]) -> object:
    """Run ``work``, then sleep ``edge-slowdown - 1`` times as long (a weaker edge)."""
    start = time.perf_counter()
    out = work()
    slow_down(time.perf_counter() - start, config.edge_slowdown)
    return out


@dataclass(frozen=True)
class _Node:
    """This node's view of the run: config, private stream and state folder."""

    config: HierConfig
    stream: ClientStream
    run_dir: Path


def _node(context: Context) -> _Node:
    config = HierConfig.from_mapping(context.run_config)
    partition_id = int(context.node_config["partition-id"])
    num_partitions = int(context.node_config["num-partitions"])
    state_dir = node_state_dir(context.node_config, partition_id)
    data_dir = str(context.node_config.get("data-dir", "") or "")
    if data_dir:
        config = HierConfig.from_mapping({"data-dir": data_dir}, base=config)
    if config.edge_threads:
        torch.set_num_threads(config.edge_threads)
    stream = load_client_stream(
        config,
        partition_id=partition_id,
        num_partitions=num_partitions,
        cache_dir=state_dir / "cache",
    )
    # ``state-key`` names an interrupted run's folder when it is resumed.
    return _Node(config, stream, state_dir / (config.state_key or f"run-{context.run_id}"))


def _round(msg: Message, context: Context) -> RecordDict:
    """One round: the whole chunk, or in split mode the first batch's activations."""
    node = _node(context)
    request, edge_state, proximal_mu = decode_request(msg)
    if node.config.mode == "split":
        edge = SplitEdge(node.config, request, edge_state, node.stream)
        if not edge.batches:
            return encode_result(edge.result())
        step = _slowed(node.config, lambda: edge.forward(0))
        edge.save(node.run_dir / SPLIT_STATE)
        return encode_split_step(step, node.config.codec)  # type: ignore[arg-type]
    result = run_edge_round(
        node.config, request, edge_state, node.stream, node.run_dir, proximal_mu=proximal_mu
    )
    return encode_result(result, node.config.codec)


def _split_step(msg: Message, context: Context) -> RecordDict:
    """Split mode: apply the cloud's gradient for batch k, then send batch k+1 (or finish)."""
    node = _node(context)
    request, step, grad = decode_gradient(msg)
    edge = SplitEdge(node.config, request, {}, node.stream)
    edge.load(node.run_dir / SPLIT_STATE)
    _slowed(node.config, lambda: edge.backward(step, grad))
    if step + 1 == len(edge.batches):
        return encode_result(edge.result())
    sent = _slowed(node.config, lambda: edge.forward(step + 1))
    edge.save(node.run_dir / SPLIT_STATE)
    return encode_split_step(sent, node.config.codec)  # type: ignore[arg-type]


app.train()(_guarded(_round))
app.train("split")(_guarded(_split_step))
