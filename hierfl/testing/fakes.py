"""Stand-ins for Flower pieces in tests: a strategy that averages by hand."""

from __future__ import annotations

from collections.abc import Iterable
from typing import cast

import torch
from flwr.app import ArrayRecord, ConfigRecord, Message, MessageType, MetricRecord, RecordDict
from flwr.serverapp import Grid


class HandAveraging:
    """A minimal Flower strategy: one ``train`` message per node, the plain (unweighted) mean
    of the replies' ``arrays`` records, computed by hand in torch."""

    def configure_train(
        self, server_round: int, arrays: ArrayRecord, config: ConfigRecord, grid: Grid
    ) -> list[Message]:
        content = RecordDict({"arrays": arrays, "config": config})
        return [Message(content, node, MessageType.TRAIN) for node in grid.get_node_ids()]

    def aggregate_train(
        self, server_round: int, replies: Iterable[Message]
    ) -> tuple[ArrayRecord | None, MetricRecord | None]:
        replies = [r for r in replies if not r.has_error()]
        if not replies:
            return None, None
        states = [r.content.array_records["arrays"].to_torch_state_dict() for r in replies]
        total = {k: cast(torch.Tensor, sum(s[k].double() for s in states)) for k in states[0]}
        mean = {k: t / len(states) for k, t in total.items()}
        return ArrayRecord({k: v.to(states[0][k].dtype) for k, v in mean.items()}), MetricRecord()
