"""The Flower side of ``Federation``: a Grid for transport, a Flower strategy for aggregation."""

from __future__ import annotations

import time

from flwr.app import ArrayRecord, Message
from flwr.serverapp import Grid
from flwr.serverapp.strategy import Strategy

from hierfl.app.protocol import ACTIVATIONS, decode_result, payload_bytes, request_config
from hierfl.edge_node import RoundRequest, RoundResult
from hierfl.errors import ChunkRejected
from hierfl.orchestrator import EdgeFailure, EdgeState


class FlowerFederation:
    """Pushes one ``train`` message per edge and pulls replies as they arrive.

    The strategy builds the messages (it picks the nodes and may add config, e.g. FedProx's
    mu) and aggregates the edge weights; the activations never reach it.
    """

    def __init__(self, grid: Grid, strategy: Strategy, *, message_ttl: float) -> None:
        self.grid = grid
        self.strategy = strategy
        self.message_ttl = message_ttl
        self.server_round = 0
        self._pending: dict[str, int] = {}
        self._replies: list[tuple[RoundResult, Message]] = []
        self.partition_of: dict[int, int] = {}
        self.uplink_bytes = 0
        self.downlink_bytes = 0

    def _name(self, node_id: int) -> str:
        pid = self.partition_of.get(node_id)
        return f"partition {pid} (node {node_id})" if pid is not None else f"node {node_id}"

    def wait_for_edges(self, count: int, timeout: float) -> int:
        deadline = time.monotonic() + timeout
        while len(nodes := list(self.grid.get_node_ids())) < count:
            if time.monotonic() > deadline:
                break
            time.sleep(0.5)
        return len(nodes)

    def dispatch(self, request: RoundRequest, edge_state: EdgeState) -> int:
        self.server_round += 1
        messages = list(
            self.strategy.configure_train(
                self.server_round, ArrayRecord(edge_state), request_config(request), self.grid
            )
        )
        for msg in messages:
            msg.metadata.ttl = self.message_ttl
            self.downlink_bytes += payload_bytes(msg.content)
        ids = self.grid.push_messages(messages)
        self._pending = {
            mid: msg.metadata.dst_node_id for mid, msg in zip(ids, messages, strict=True)
        }
        self._replies = []
        return len(messages)

    def poll(self) -> list[RoundResult | EdgeFailure]:
        if not self._pending:
            return []
        out: list[RoundResult | EdgeFailure] = []
        for reply in self.grid.pull_messages(list(self._pending)):
            node = self._pending.pop(reply.metadata.reply_to_message_id, None)
            if node is None:
                continue
            if reply.has_error():
                err = reply.error
                out.append(EdgeFailure(self._name(node), f"error {err.code}: {err.reason}"))
                continue
            self.uplink_bytes += payload_bytes(reply.content)
            try:
                result = decode_result(reply.content)
            except ChunkRejected as exc:
                out.append(EdgeFailure(self._name(node), str(exc)))
                continue
            self.partition_of[node] = result.partition_id
            self._replies.append((result, reply))
            out.append(result)
        return out

    def outstanding(self) -> int:
        return len(self._pending)

    def expire(self) -> list[EdgeFailure]:
        failures = [
            EdgeFailure(self._name(n), "no reply before reply-timeout")
            for n in self._pending.values()
        ]
        self._pending = {}
        return failures

    def discard(self, result: RoundResult) -> None:
        self._replies = [(r, m) for r, m in self._replies if r is not result]

    def aggregate(self) -> EdgeState | None:
        replies = [m for r, m in self._replies if r.chunk.num_examples > 0]
        if not replies:
            return None
        for m in replies:  # the strategy expects exactly one ArrayRecord: the edge weights
            del m.content[ACTIVATIONS]
        arrays, _ = self.strategy.aggregate_train(self.server_round, replies)
        return arrays.to_torch_state_dict() if arrays is not None else None

    def traffic(self) -> tuple[int, int]:
        return self.uplink_bytes, self.downlink_bytes
