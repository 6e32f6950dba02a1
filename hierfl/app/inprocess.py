"""A Flower ``Grid`` whose edges live in this process: the same messages, handlers and strategy.

``InProcessGrid`` implements the Grid calls the federation makes (``get_node_ids``,
``push_messages``, ``pull_messages``). Each node runs hierfl's edge handlers
(``hierfl.app.edge_handlers``) on its own private stream and node-local state folder, exactly
as the long-lived edge worker does behind a SuperNode. A pull answers at most one request, so
the cloud trains between replies as it does against a real SuperLink.

What it is for: accuracy sweeps, tests and single-GPU experiments without processes. What it
is not: a timing model of a deployment. Edges run one after another on this process's cores,
and Flower's per-message overhead is absent.
"""

from __future__ import annotations

import logging
import time
import uuid
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path

from flwr.app import Error, Message, RecordDict
from flwr.serverapp import Grid

from hierfl.app.edge_handlers import KIND_OF_MESSAGE_TYPE, NodeRun, handle_node
from hierfl.app.flower_internals import (
    Run,
    check_flower_version,
    ensure_task_identity,
    set_message_id,
)
from hierfl.config import HierConfig
from hierfl.data.containers import ClientStream

FIRST_NODE_ID = 1001  # node ids differ from partition ids, as they do in a deployment
EDGE_FAILED = 2  # Flower's code for "the ClientApp raised an exception"


@dataclass
class _Pending:
    message_id: str
    message: Message


class InProcessGrid(Grid):
    """Edges as in-process nodes, one per ``ClientStream``, answering one request per pull."""

    def __init__(
        self,
        config: HierConfig,
        streams: Sequence[ClientStream],
        state_root: Path,
        *,
        run_id: int = 0,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        """``sleep`` is how the nodes wait out the emulated link (tests pass a fake)."""
        check_flower_version(logging.getLogger("hierfl").warning)
        ensure_task_identity(run_id)
        self._run = Run.create_empty(run_id)
        run_dir = config.state_key or f"run-{run_id}"
        self.nodes: dict[int, NodeRun] = {
            FIRST_NODE_ID + s.partition_id: NodeRun(
                config.for_edge(s.partition_id),
                s,
                Path(state_root) / f"node-{s.partition_id}" / run_dir,
                sleep,
            )
            for s in streams
        }
        self._queue: list[_Pending] = []

    # ---- the Grid calls the federation makes ----------------------------------------------
    @property
    def partition_of(self) -> dict[int, int]:
        """Node id -> partition id (a deployment learns it from the replies)."""
        return {node_id: node.stream.partition_id for node_id, node in self.nodes.items()}

    def get_node_ids(self) -> Iterable[int]:
        return list(self.nodes)

    def push_messages(self, messages: Iterable[Message]) -> Iterable[str]:
        ids = []
        for msg in messages:
            if msg.metadata.dst_node_id not in self.nodes:
                raise ValueError(f"no node {msg.metadata.dst_node_id} in this grid")
            message_id = uuid.uuid4().hex
            set_message_id(msg, message_id)
            self._queue.append(_Pending(message_id, msg))
            ids.append(message_id)
        return ids

    def pull_messages(self, message_ids: Iterable[str]) -> Iterable[Message]:
        """Answer the oldest request among ``message_ids``: at most one reply per pull."""
        wanted = set(message_ids)
        for i, pending in enumerate(self._queue):
            if pending.message_id in wanted:
                reply = self.answer(pending.message)
                if reply is None:  # a silent node: the request stays unanswered
                    continue
                del self._queue[i]
                return [reply]
        return []

    def answer(self, message: Message) -> Message | None:
        """Run the node's handler on ``message``; an exception becomes an error reply.

        Tests override this to make a node silent (``None``) or to damage its reply.
        """
        node = self.nodes[message.metadata.dst_node_id]
        try:
            kind = KIND_OF_MESSAGE_TYPE[message.metadata.message_type]
            content: RecordDict = handle_node(kind, message.content, node)
        except Exception as exc:  # the cloud names the edge and goes on with the others
            reason = f"partition {node.stream.partition_id}: {type(exc).__name__}: {exc}"
            return Message(Error(code=EDGE_FAILED, reason=reason), reply_to=message)
        return Message(content, reply_to=message)

    def send_and_receive(
        self, messages: Iterable[Message], *, timeout: float | None = None
    ) -> Iterable[Message]:
        ids = list(self.push_messages(messages))
        replies: list[Message] = []
        while pulled := list(self.pull_messages(ids)):
            replies += pulled
        return replies

    # ---- the rest of Flower's Grid --------------------------------------------------------
    def set_run(self, run: Run) -> None:
        self._run = run

    @property
    def run(self) -> Run:
        return self._run

    def create_message(
        self,
        content: RecordDict,
        message_type: str,
        dst_node_id: int,
        group_id: str,
        ttl: float | None = None,
    ) -> Message:
        return Message(content, dst_node_id, message_type, ttl=ttl, group_id=group_id)
