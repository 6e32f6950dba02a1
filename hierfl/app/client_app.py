"""ClientApp = edge trainer: one ``train`` message in, weights plus a chunk of activations out.

A fresh process runs each message, so everything that must persist (optimizer, stream cursor,
the cached stream) lives in the node-local state folder, never in module globals.
"""

from __future__ import annotations

import tempfile
from pathlib import Path

import torch
from flwr.app import Context, Error, Message
from flwr.clientapp import ClientApp

from hierfl.app.protocol import decode_request, encode_result
from hierfl.config import HierConfig
from hierfl.edge_node import run_edge_round
from hierfl.streams import load_client_stream

app = ClientApp()

# Flower's code for "the ClientApp raised an exception"; the reason names the partition.
EDGE_FAILED = 2


def node_state_dir(node_config: dict, partition_id: int) -> Path:
    configured = str(node_config.get("state-dir", "") or "")
    if configured:
        return Path(configured)
    return Path(tempfile.gettempdir()) / "hierfl" / f"node-{partition_id}"


@app.train()
def train(msg: Message, context: Context) -> Message:
    """Run one edge round; any failure becomes an error reply naming this partition."""
    partition_id = int(context.node_config.get("partition-id", -1))
    try:
        return _train(msg, context)
    except Exception as exc:  # the cloud logs it and goes on with the other edges
        reason = f"partition {partition_id}: {type(exc).__name__}: {exc}"
        return Message(Error(code=EDGE_FAILED, reason=reason), reply_to=msg)


def _train(msg: Message, context: Context) -> Message:
    config = HierConfig.from_mapping(context.run_config)
    partition_id = int(context.node_config["partition-id"])
    num_partitions = int(context.node_config["num-partitions"])
    state_dir = node_state_dir(context.node_config, partition_id)
    data_dir = str(context.node_config.get("data-dir", "") or "")
    if data_dir:
        config = HierConfig.from_mapping({"data-dir": data_dir}, base=config)
    if config.edge_threads:
        torch.set_num_threads(config.edge_threads)
    request, edge_state, proximal_mu = decode_request(msg)
    stream = load_client_stream(
        config,
        partition_id=partition_id,
        num_partitions=num_partitions,
        cache_dir=state_dir / "cache",
    )
    result = run_edge_round(
        config,
        request,
        edge_state,
        stream,
        state_dir / f"run-{context.run_id}",
        proximal_mu=proximal_mu,
    )
    return Message(encode_result(result), reply_to=msg)
