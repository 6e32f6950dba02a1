"""The edge's work for one message: a ``train`` request in, weights plus activations out.

``hierfl.client_app`` hands each message here, either in its own process or through the
node's long-lived edge worker (``hierfl.deploy.edge_worker``). Either way everything that must
persist (optimizer, stream cursor, the cached stream) lives in the node-local state folder.

Link emulation (``bitrate``, ``downlink-bitrate``, ``latency``): before returning a reply the
handler sleeps the downlink time of the request it received plus the uplink time of its reply,
both from their array payload bytes, and reports the sum as ``chunk["link-s"]``. Flower's own
transfer over loopback comes on top (it is part of the measured fixed overhead).
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import torch
from flwr.app import RecordDict

from hierfl.app.protocol import (
    attach_update,
    decode_gradient,
    decode_request,
    decode_weights_down,
    encode_result,
    encode_split_step,
    payload_bytes,
    stamp_link_seconds,
)
from hierfl.app.wire import Wire
from hierfl.config import HierConfig
from hierfl.data.containers import ClientStream
from hierfl.data.streams import load_client_stream
from hierfl.edge.exchange import apply_down, held_checksum, load_held, save_held, take_update
from hierfl.edge.link import LinkSpec, slow_down
from hierfl.edge.node import edge_model, run_edge_round, to_cloud
from hierfl.edge.policy import EdgePolicy
from hierfl.edge.split import SplitEdge
from hierfl.models.depths import fleet_name
from hierfl.modes import MODES
from hierfl.resolve import with_method_defaults
from hierfl.results.summary import ENGINE_ENV
from hierfl.train.exchange import (
    averaged_names,
    exchanged_params,
    exchanges_weights,
    update_codec,
)
from hierfl.util.paths import default_state_dir
from hierfl.util.storage import private_dir

SPLIT_STATE = "split_state.pt"


@dataclass(frozen=True)
class EdgeJob:
    """What a handler needs from Flower's ``Context``, as plain picklable values."""

    run_config: dict
    node_config: dict
    run_id: int


def node_state_dir(node_config: dict, partition_id: int) -> Path:
    """The node's private (0700) state folder: ``state-dir`` of its node config, or the
    user's default."""
    configured = str(node_config.get("state-dir", "") or "")
    return private_dir(Path(configured) if configured else default_state_dir(partition_id))


def _slowed(edge: SplitEdge, work: Callable[[], object]) -> object:
    """Run ``work``, then sleep ``edge-slowdown - 1`` times as long (a weaker edge); the
    edge's compute time counts the emulated slowdown too."""
    start = time.perf_counter()
    out = work()
    edge.compute_s += slow_down(time.perf_counter() - start, edge.slowdown)
    return out


@dataclass(frozen=True)
class NodeRun:
    """This node's view of the run: config, private stream and the run's state folder."""

    config: HierConfig
    stream: ClientStream
    run_dir: Path
    sleep: Callable[[float], None] = time.sleep  # how the emulated link waits
    policy: EdgePolicy | None = None  # the owner's rules (None: in process, one owner)


def _emulate_link(node: NodeRun, request: RecordDict, reply: RecordDict) -> float:
    """Sleep the emulated request downlink plus reply uplink; stamp the seconds into the reply."""
    spec = LinkSpec.from_config(node.config)
    if not spec.enabled:
        return 0.0
    seconds = spec.seconds(payload_bytes(request), "down")
    seconds += spec.seconds(payload_bytes(reply), "up")
    if node.policy is not None:
        node.policy.check_link(seconds)
    node.sleep(seconds)
    stamp_link_seconds(reply, seconds)
    return seconds


def node_of(job: EdgeJob) -> NodeRun:
    """The node a Flower message reaches: its stream from the node-local cache."""
    # The same continual-method defaults as the ServerApp's (``flwr run`` without hierfl run).
    config, _ = with_method_defaults(HierConfig.from_mapping(job.run_config))
    policy = EdgePolicy.from_node_config(job.node_config)
    partition_id = int(job.node_config["partition-id"])
    config = config.for_edge(partition_id)  # ``per-edge``: this edge's own cut, link, speed
    policy.check(config)  # this edge's own values, before anything touches its data
    num_partitions = int(job.node_config["num-partitions"])
    state_dir = node_state_dir(job.node_config, partition_id)
    data_dir = str(job.node_config.get("data-dir", "") or "")
    if data_dir:
        config = HierConfig.from_mapping({"data-dir": data_dir}, base=config)
    if config.edge_threads:
        torch.set_num_threads(config.edge_threads)
    stream = load_client_stream(
        config,
        partition_id=partition_id,
        num_partitions=num_partitions,
        cache_dir=state_dir / "cache",
        shared=os.environ.get(ENGINE_ENV) == "simulation",  # an actor serves many edges
    )
    # ``state-key`` names an interrupted run's folder when it is resumed.
    return NodeRun(
        config, stream, state_dir / (config.state_key or f"run-{job.run_id}"), policy=policy
    )


def _round(content: RecordDict, node: NodeRun) -> RecordDict:
    """One round: the whole chunk, or in split mode the first batch's activations."""
    request, edge_state, proximal_mu = decode_request(content)
    if MODES[node.config.mode].edge_learns_from == "cloud":  # split learning
        edge = SplitEdge(node.config, request, edge_state, node.stream)
        if not edge.batches:
            return encode_result(edge.result())
        step = _slowed(edge, lambda: edge.forward(0))
        edge.save(node.run_dir / SPLIT_STATE)
        return encode_split_step(step, Wire.of(node.config))  # type: ignore[arg-type]
    if update_codec(node.config) is not None:
        return _exchange_round(content, node, proximal_mu)
    result = run_edge_round(
        node.config, request, edge_state, node.stream, node.run_dir, proximal_mu=proximal_mu
    )
    return encode_result(result, Wire.of(node.config))


def _exchange_round(content: RecordDict, node: NodeRun, proximal_mu: float) -> RecordDict:
    """A round with a compressed weight exchange (``hierfl.edge.exchange``): apply the
    request's change to the held base, train from base plus residual, send the coded update."""
    config, request = node.config, decode_request(content)[0]
    model = edge_model(config, node.stream, {})  # the run's initial weights: version 0
    names = averaged_names(model.edge, config.averaged)
    params = exchanged_params(model.edge, names)
    codec, down_codec = update_codec(config, params), update_codec(config, params, down=True)
    assert codec is not None and down_codec is not None  # _round checked
    shapes = {n: tuple(p.shape) for n, p in model.edge.named_parameters()}
    if config.fleet_cuts:  # edges at several depths: the weights go by the fleet's names
        coded = model.bottleneck is not None
        names = tuple(fleet_name(n, model.cut, coded=coded) for n in names)
        shapes = {fleet_name(n, model.cut, coded=coded): s for n, s in shapes.items()}
    down, eval_copy = decode_weights_down(content, {n: shapes[n] for n in names}, down_codec)
    held = load_held(node.run_dir, request)
    held = apply_down(
        down, held, names, shapes, down_codec, initial=lambda: to_cloud(config, model)
    )
    result = run_edge_round(
        config,
        request,
        held.state(),
        node.stream,
        node.run_dir,
        proximal_mu=proximal_mu,
        recalibrate_norms=True,  # the edge's statistics are its own
    )
    send = exchanges_weights(config, request)
    encoded, held = take_update(held, result.edge_state, names, codec, send=send)
    save_held(node.run_dir, request, held, keep=config.rounds + 2)
    reply = encode_result(result, Wire.of(config))
    attach_update(
        reply,
        encoded,
        names,
        version=held.version,
        digest=held_checksum(held, names),
        eval_state=result.edge_state if eval_copy else None,
    )
    return reply


def _split_step(content: RecordDict, node: NodeRun) -> RecordDict:
    """Split mode: apply the cloud's gradient for batch k, then send batch k+1 (or finish)."""
    request, step, grad = decode_gradient(content)
    edge = SplitEdge(node.config, request, {}, node.stream)
    edge.load(node.run_dir / SPLIT_STATE)
    _slowed(edge, lambda: edge.backward(step, grad))
    if step + 1 == len(edge.batches):
        return encode_result(edge.result())
    sent = _slowed(edge, lambda: edge.forward(step + 1))
    edge.save(node.run_dir / SPLIT_STATE)
    return encode_split_step(sent, Wire.of(node.config))  # type: ignore[arg-type]


HANDLERS: dict[str, Callable[[RecordDict, NodeRun], RecordDict]] = {
    "round": _round,
    "split": _split_step,
}
# Flower message type -> handler: ``train`` is a round, ``train.split`` a split-mode gradient.
KIND_OF_MESSAGE_TYPE = {"train": "round", "train.split": "split"}


def handle(kind: str, content: RecordDict, job: EdgeJob) -> RecordDict:
    """Run handler ``kind`` on a request that reached this node through Flower."""
    return handle_node(kind, content, node_of(job))


def handle_node(kind: str, content: RecordDict, node: NodeRun) -> RecordDict:
    """Run handler ``kind`` on a request's content; the reply carries its emulated link time."""
    if kind not in HANDLERS:
        raise ValueError(f"unknown edge handler {kind!r}; expected one of {sorted(HANDLERS)}")
    reply = HANDLERS[kind](content, node)
    _emulate_link(node, content, reply)
    return reply
