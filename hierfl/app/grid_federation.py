"""The one ``Federation``: a Flower Grid for transport, a Flower strategy for aggregation.

The Grid is Flower's own (a ServerApp's, messages through a SuperLink) or hierfl's
``InProcessGrid`` (edges in this process); either way the same messages are built, carried,
counted (``protocol.payload_bytes``) and aggregated by the configured strategy.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Hashable, Mapping
from typing import Any, cast

import torch
from flwr.app import ArrayRecord, Message, MessageType, RecordDict
from flwr.serverapp import Grid
from flwr.serverapp.strategy import Strategy

from hierfl.app.aggregation import Aggregation
from hierfl.app.flower_internals import load_strategy_state, strategy_state
from hierfl.app.protocol import (
    ARRAYS,
    CONFIG,
    SPLIT_MESSAGE_TYPE,
    decode_result,
    decode_split_step,
    encode_gradient,
    encode_weights_down,
    eval_state,
    is_split_step,
    link_seconds,
    own_copy,
    read_update,
    request_config,
    traffic_parts,
)
from hierfl.app.reply_checks import check_reply, check_split_step
from hierfl.app.sampled_grid import SampledGrid, learn_partitions
from hierfl.app.strategy import quiet_flower
from hierfl.boundary import EdgeFailure, EdgeState, RoundRequest, RoundResult
from hierfl.cloud.exchange import FleetExchange, WeightExchange
from hierfl.cloud.robust import check_weights, clip_update
from hierfl.cloud.validation import Expected
from hierfl.config import HierConfig
from hierfl.errors import ChunkRejected
from hierfl.results.traffic import Direction, TrafficLog


class GridFederation:
    """Pushes one ``train`` message per edge and pulls replies as they arrive.

    The strategy builds the messages (it picks the nodes and may add config, e.g. FedProx's
    mu) and aggregates the edge weights; the activations never reach it. With a compressed
    exchange (``bind_exchange``) requests carry coded changes (or full copies) instead of the
    weights, and each reply's full weights are rebuilt before the strategy sees them.
    """

    def __init__(
        self,
        grid: Grid,
        strategy: Strategy,
        *,
        message_ttl: float,
        sequential: bool = False,
        sampling: HierConfig | None = None,
        learn_partitions: bool = False,
        server_state: bool = False,
    ) -> None:
        """``sampling``: the run's config where it sets ``clients-per-round`` (the strategy
        then sees each round's sample of the nodes, ``hierfl.app.sampled_grid``);
        ``learn_partitions``: ask each node its partition before the first round (edges at
        several depths: a node's partition says its cut); ``server_state``: the strategy
        keeps state across rounds (with edges at several depths it steps once over the
        grouped mean, ``aggregation.server_step``)."""
        self.learn_partitions = learn_partitions or sampling is not None
        self.aggregation = Aggregation(strategy, server_state=server_state)
        self.grid = grid
        self.sampling = sampling
        self.strategy = strategy
        self.sequential = sequential
        self.exchange: WeightExchange | FleetExchange | None = None  # ``bind_exchange``
        self._exchanged = False  # whether the round dispatched last exchanges weights
        self._exchange_saved: dict[str, Any] = {}  # the exchange as of ``completed_rounds``
        self._turns: list[int] = []
        self._dispatched_state: EdgeState = {}
        self.message_ttl = message_ttl
        self.server_round = 0  # rounds dispatched (Flower's server round of the last one)
        self.completed_rounds = 0  # rounds collected before the one dispatched last
        self._pending: dict[str, int] = {}
        self._replies: list[tuple[RoundResult, Message]] = []
        # node id -> partition id: what each node's replies say (an in-process grid knows it)
        self.partition_of: dict[int, int] = dict(getattr(grid, "partition_of", {}))
        self.uplink_bytes = 0
        self.downlink_bytes = 0
        # Array payload bytes of every message, per node and round (``protocol.payload_bytes``);
        # uplink records carry the link time the edge reports having emulated.
        self.traffic_log = TrafficLog()
        self._cloud_step: Callable[[torch.Tensor, torch.Tensor], torch.Tensor] | None = None
        self._request: RoundRequest | None = None
        self._expected: Expected | None = None  # None: replies are only decoded (unit tests)
        self._step_rows: dict[int, int] = {}  # split mode: samples each node stepped this round

    def expect(self, expected: Expected) -> None:
        """What the next round's replies may hold; each is checked against it before it is
        decoded (``hierfl.app.reply_checks``)."""
        self._expected = expected

    def bind_exchange(self, exchange: WeightExchange | FleetExchange) -> None:
        self.exchange = exchange
        if isinstance(exchange, FleetExchange):  # a node's depth from its partition
            exchange.partition_of = self.partition_of

    def bind_split(self, cloud_step: Callable[[torch.Tensor, torch.Tensor], torch.Tensor]) -> None:
        self._cloud_step = cloud_step

    def _name(self, node_id: int) -> str:
        pid = self.partition_of.get(node_id)
        return f"partition {pid} (node {node_id})" if pid is not None else f"node {node_id}"

    def wait_for_edges(self, count: int, timeout: float) -> int:
        """Wait for ``count`` nodes; with client sampling, learn which partition each holds."""
        deadline = time.monotonic() + timeout
        while len(nodes := list(self.grid.get_node_ids())) < count:
            if time.monotonic() > deadline:
                break
            time.sleep(0.5)
        if self.learn_partitions and len(nodes) >= count:
            left = max(deadline - time.monotonic(), 30.0)
            self.partition_of.update(learn_partitions(self.grid, self.partition_of, left))
        return len(nodes)

    def dispatch(self, request: RoundRequest, edge_state: EdgeState) -> int:
        self.completed_rounds = self.server_round  # the orchestrator collected them all
        if self.exchange is not None:  # as it stood when those rounds were collected
            self._exchange_saved = {**self.exchange.state_dict(), "exchanged": self._exchanged}
        self.server_round += 1
        self._request = request
        self.traffic_log.begin_round(request.experience, request.round)
        self._dispatched_state = edge_state
        grid: Grid = self.grid
        if self.sampling is not None:
            view = SampledGrid(grid, self.sampling, self.partition_of, request=request)
            grid = cast(Grid, view)
        with quiet_flower():
            configured = self.strategy.configure_train(
                self.server_round, ArrayRecord(edge_state), request_config(request), grid
            )
        # A fixed order: strategies sample nodes in a random order.
        messages = sorted(configured, key=lambda msg: msg.metadata.dst_node_id)
        if self.exchange is not None:
            self._weights_down(request, edge_state, messages)
        self._pending, self._replies, self._step_rows = {}, [], {}
        self._turns = [msg.metadata.dst_node_id for msg in messages]
        if self.sequential:  # one edge at a time, each starting from the last one's weights
            messages = messages[:1]
            self._turns.pop(0)
        self._push(messages)
        return len(messages) + (len(self._turns) if self.sequential else 0)

    def _weights_down(
        self, request: RoundRequest, edge_state: EdgeState, messages: list[Message]
    ) -> None:
        """A compressed exchange: each request carries the change since the base its edge
        holds, or a full copy (``hierfl.cloud.exchange``)."""
        assert self.exchange is not None
        self.exchange.begin_round(edge_state, send_change=self._exchanged)
        self._exchanged = self.exchange.sends_updates(request)
        eval_copy = self.exchange.eval_copy(request)
        for msg in messages:
            # Flower's strategies give every message the same RecordDict: each edge's weights
            # (a change, a full copy or none) go into a copy of its own.
            msg.content = own_copy(msg.content)
            node = msg.metadata.dst_node_id
            down = self.exchange.down_for(node)
            names = self.exchange.names_for(node)
            encode_weights_down(msg.content, down, names, eval_copy=eval_copy)

    def _push(self, messages: list[Message]) -> None:
        for msg in messages:
            msg.metadata.ttl = self.message_ttl
            self._count_down(msg)
        ids = self.grid.push_messages(messages)
        for mid, msg in zip(ids, messages, strict=True):
            self._pending[mid] = msg.metadata.dst_node_id

    def _next_turn(self, edge_state: EdgeState) -> None:
        """Sequential (split) mode: hand the latest edge weights to the next edge in line."""
        if not self.sequential or not self._turns or self._request is None:
            return
        node = self._turns.pop(0)
        content = RecordDict(
            {ARRAYS: ArrayRecord(edge_state), CONFIG: request_config(self._request)}
        )
        self._push([Message(content=content, dst_node_id=node, message_type=MessageType.TRAIN)])

    def poll(self) -> list[RoundResult | EdgeFailure]:
        if not self._pending:
            return []
        out: list[RoundResult | EdgeFailure] = []
        for reply in self.grid.pull_messages(list(self._pending)):
            node = self._pending.pop(reply.metadata.reply_to_message_id, None)
            if node is None:
                continue
            if reply.has_error():
                if self.exchange is not None:  # whatever it holds now, it gets a full copy
                    self.exchange.forget(node)
                err = reply.error
                out.append(
                    EdgeFailure(
                        self._name(node),
                        f"error {err.code}: {err.reason}",
                        self.partition_of.get(node),
                    )
                )
                self._next_turn(self._last_state())
                continue
            self.uplink_bytes += self._count(node, "up", reply.content)
            try:  # any failure while handling one reply is that edge's, never the cloud's
                item = self._handle(node, reply)
            except Exception as exc:  # noqa: BLE001 - a malformed reply may raise anything
                item = self._rejected(node, exc)
                self._next_turn(self._last_state())  # split mode: the next edge goes on
            if item is not None:
                out.append(item)
        return out

    def _handle(self, node: int, reply: Message) -> RoundResult | EdgeFailure | None:
        """Check a reply against the round's schema, then decode it (or answer a split step)."""
        if is_split_step(reply.content):
            return self._answer_split_step(node, reply)
        if self._expected is not None:
            check_reply(reply.content, self._expected)
        result = decode_result(reply.content)
        if self.exchange is not None:
            self._rebuild(node, reply, result)
        if self._expected is not None and result.edge_state:
            # before they are relayed to the next edge
            self._bound_weights(reply, result, self._expected)
        self.partition_of[node] = result.partition_id
        self._replies.append((result, reply))
        self._next_turn(result.edge_state)
        return result

    def _rebuild(self, node: int, reply: Message, result: RoundResult) -> None:
        """A compressed exchange: the reply's full weights, ``aggregate + update``, in place of
        its coded update (none on a round without exchange), and its eval copy."""
        assert self.exchange is not None
        e = self.exchange
        version, digest, encoded = read_update(reply.content, e.shapes_for(node), e.codec_for(node))
        expected = self._request is None or e.sends_updates(self._request)
        full = e.receive(node, version, digest, encoded, expected=expected)
        result.edge_state = full or {}
        reply.content[ARRAYS] = ArrayRecord(full or {})
        result.eval_state = eval_state(reply.content)

    def _bound_weights(self, reply: Message, result: RoundResult, e: Expected) -> None:
        """Refuse non-finite or out-of-bounds weights; clip the update to ``max-update-norm``
        (the reply's weights are replaced, so the strategy aggregates the clipped ones). The
        update is measured from the weights the edge started from: the dispatched aggregate, or
        in split mode the previous edge's."""
        check_weights(result.edge_state, e.weight_bound)
        if not e.max_update_norm:
            return
        reference = self._last_state() if self.sequential else self._dispatched_state
        clipped, norm = clip_update(result.edge_state, reference, e.max_update_norm)
        if norm > e.max_update_norm:
            reply.content[ARRAYS] = ArrayRecord(clipped)
            result.edge_state, result.clipped_from = clipped, norm

    def _answer_split_step(self, node: int, reply: Message) -> EdgeFailure | None:
        """Split mode: train the cloud on the batch and send its gradient back to the edge."""
        if self._cloud_step is None or self._request is None:
            return EdgeFailure(
                self._name(node),
                "split step received outside split mode",
                self.partition_of.get(node),
            )
        if self._expected is not None:
            rows = self._step_rows.get(node, 0) + check_split_step(reply.content, self._expected)
            if rows > self._expected.max_rows:
                raise ChunkRejected(f"{rows} samples of split steps exceed the round's share")
            self._step_rows[node] = rows
        step = decode_split_step(reply.content)
        self.partition_of[node] = step.partition_id
        grad = self._cloud_step(step.activations, step.labels)
        msg = Message(
            content=encode_gradient(self._request, step.step, grad),
            dst_node_id=node,
            message_type=SPLIT_MESSAGE_TYPE,
            ttl=self.message_ttl,
        )
        self._count_down(msg)
        (mid,) = self.grid.push_messages([msg])
        self._pending[mid] = node
        return None

    def _rejected(self, node: int, exc: Exception) -> EdgeFailure:
        if self.exchange is not None:  # it applied the request's weights, or not: a full copy
            self.exchange.forget(node)
        return EdgeFailure(self._name(node), str(exc), self.partition_of.get(node), rejected=True)

    def _count_down(self, msg: Message) -> None:
        self.downlink_bytes += self._count(msg.metadata.dst_node_id, "down", msg.content)

    def _count(self, node: int, direction: Direction, content: RecordDict) -> int:
        """Record one message in the traffic log, by kind; its payload bytes (codes and
        weights, ``protocol.payload_bytes``)."""
        parts = traffic_parts(content)
        nbytes = parts["codes"] + parts["weights"]
        link_s = link_seconds(content) if direction == "up" else 0.0
        self.traffic_log.record(node, direction, nbytes, link_s=link_s, parts=parts)
        return nbytes

    def _last_state(self) -> EdgeState:
        if self._replies:
            return self._replies[-1][0].edge_state
        return self._dispatched_state

    def outstanding(self) -> int:
        return len(self._pending) + (len(self._turns) if self.sequential else 0)

    def expire(self) -> list[EdgeFailure]:
        if self.exchange is not None:  # what they hold is unknown: a full copy next time
            for node in self._pending.values():
                self.exchange.forget(node)
        failures = [
            EdgeFailure(self._name(n), "no reply before reply-timeout", self.partition_of.get(n))
            for n in self._pending.values()
        ]
        self._pending = {}
        return failures

    def discard(self, result: RoundResult) -> None:
        self._replies = [(r, m) for r, m in self._replies if r is not result]

    def aggregate(self) -> EdgeState | None:
        if self.exchange is not None and not self._exchanged:  # edges keep their weights
            return self._dispatched_state
        usable = [(r, m) for r, m in self._replies if r.chunk.trained > 0 and r.edge_state]
        if not usable:
            return None
        if self.sequential:  # relayed, not averaged: the last edge's weights are the model
            return usable[-1][0].edge_state
        # by partition, not by arrival: the same sums, bit for bit, in every engine
        usable.sort(key=lambda item: item[0].partition_id)
        clip = self._expected.centered_clip if self._expected is not None else 0.0
        return self.aggregation(usable, self._dispatched_state, self.server_round, clip)

    def clipped(self) -> list[tuple[int, float, float]]:
        return list(self.aggregation.clipped)

    def traffic(self) -> tuple[int, int]:
        return self.uplink_bytes, self.downlink_bytes

    def state_dict(self) -> dict[str, Any]:
        """What a checkpoint keeps: the server round and the strategy's own state (FedAdam's
        moments, FedAvgM's momentum, ...), as tensors."""
        state = {"rounds": self.completed_rounds, "strategy": strategy_state(self.strategy)}
        if self.exchange is not None:  # as of ``rounds``: a dispatched round is dispatched again
            state["exchange"] = self._exchange_saved or {
                **self.exchange.state_dict(),
                "exchanged": self._exchanged,
            }
        return state

    def load_state_dict(self, state: dict[str, Any]) -> None:
        """Continue after ``state["rounds"]`` collected rounds (a round dispatched but not
        collected before the checkpoint is dispatched again)."""
        self.server_round = self.completed_rounds = int(state.get("rounds", 0))
        load_strategy_state(self.strategy, state.get("strategy", {}))
        if self.exchange is not None and "exchange" in state:
            self.exchange.load_state_dict(state["exchange"])
            # whether the last collected round exchanged weights: the next one sends its change
            self._exchanged = bool(state["exchange"].get("exchanged", True))

    def communication(self) -> dict:
        """Per-round and per-client traffic for metrics.json, clients named by partition id."""
        return self.traffic_log.summary(names=cast(Mapping[Hashable, object], self.partition_of))
