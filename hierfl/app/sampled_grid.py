"""A Grid seen through client sampling: the strategy sees only the round's sampled nodes.

Flower's strategies ask every node they see when ``fraction_train=1``; handing them this view
instead of the Grid makes any strategy, Flower's or a plug-in, ask the ``clients-per-round``
edges ``hierfl.cloud.sampling`` drew for the round, in every engine. Nodes are drawn by
partition where the federation knows every node's (the in-process grid and the simulation do
from the start; a deployment learns it from replies), else by node id.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Iterable, Mapping
from typing import Any

from flwr.app import Message, RecordDict
from flwr.serverapp import Grid

from hierfl.boundary import RoundRequest
from hierfl.cloud.sampling import sample_for_run
from hierfl.config import HierConfig


class SampledGrid:
    """``grid`` with ``get_node_ids`` narrowed to one round's sample; the rest passes through."""

    def __init__(
        self,
        grid: Grid,
        config: HierConfig,
        partition_of: Mapping[int, int],
        *,
        request: RoundRequest,
    ) -> None:
        self._grid, self._config, self._partition_of = grid, config, partition_of
        self._request = request

    def get_node_ids(self) -> Iterable[int]:
        nodes = sorted(self._grid.get_node_ids())
        if len(nodes) < self._config.round_clients:
            return nodes  # the strategy waits for more, as it does without sampling
        by_partition = {self._partition_of.get(n): n for n in nodes}
        if set(by_partition) == set(range(len(nodes))):
            edges = [by_partition[p] for p in range(len(nodes))]
        else:
            edges = nodes
        return sample_for_run(self._config, edges, self._request)

    def __getattr__(self, name: str) -> Any:
        return getattr(self._grid, name)


# The ClientApp's ``query.partition`` handler (``hierfl.client_app.partition``) and its record.
PARTITION_QUERY = "query.partition"
PARTITION_RECORD = "partition"


def learn_partitions(grid: Grid, known: Mapping[int, int], timeout: float) -> dict[int, int]:
    """Ask every node whose partition is not ``known`` which it holds (one small message
    each); returns the answers that came back within ``timeout`` seconds (a node that does not
    answer is drawn by node id: sampling still works, it just differs from the other engines)."""
    ask = [n for n in grid.get_node_ids() if n not in known]
    if not ask:
        return {}
    messages = [
        Message(content=RecordDict(), dst_node_id=n, message_type=PARTITION_QUERY) for n in ask
    ]
    for m in messages:
        m.metadata.ttl = timeout
    pending = dict(zip(grid.push_messages(messages), ask, strict=True))
    found: dict[int, int] = {}
    deadline = time.monotonic() + timeout
    while pending and time.monotonic() < deadline:
        for reply in grid.pull_messages(list(pending)):
            node = pending.pop(reply.metadata.reply_to_message_id, None)
            if node is None or reply.has_error() or PARTITION_RECORD not in reply.content:
                continue
            pid = reply.content[PARTITION_RECORD].get("partition-id")  # type: ignore[union-attr]
            if isinstance(pid, int) and pid >= 0:
                found[node] = pid
        time.sleep(0.05)
    if len(found) < len(ask):
        logging.getLogger("hierfl").warning(
            "%d of %d edges did not say which partition they hold: they are sampled by node id",
            len(ask) - len(found),
            len(ask),
        )
    return found
