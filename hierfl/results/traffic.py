"""Traffic accounting: payload bytes and messages per direction, per edge and per round.

The federation counts every message it carries in a ``TrafficLog`` (with the emulated link
time an edge reports, ``hierfl.edge.link``); its summary is metrics.json's ``communication``.
Pure Python: no torch, no flwr.
"""

from __future__ import annotations

from collections.abc import Hashable, Mapping
from dataclasses import dataclass, field
from typing import Any, Literal

Direction = Literal["up", "down"]
# What a message's bytes are (``hierfl.app.protocol.traffic_parts``): activations or inputs and
# labels (split mode: gradients too), edge weights or their coded changes, config and metric
# records, and the eval copies the cloud asks for to measure accuracy (not part of training).
PARTS = ("codes", "weights", "control", "eval")


@dataclass
class _Tally:
    uplink_bytes: int = 0  # codes and weights
    downlink_bytes: int = 0
    uplink_messages: int = 0
    downlink_messages: int = 0
    emulated_link_s: float = 0.0
    code_bytes: int = 0
    weight_bytes_up: int = 0
    weight_bytes_down: int = 0
    control_bytes: int = 0  # both ways
    eval_bytes: int = 0

    def add(
        self, direction: Direction, nbytes: int, link_s: float, parts: Mapping[str, int]
    ) -> None:
        if direction == "up":
            self.uplink_bytes += nbytes
            self.uplink_messages += 1
            self.weight_bytes_up += parts.get("weights", 0)
        else:
            self.downlink_bytes += nbytes
            self.downlink_messages += 1
            self.weight_bytes_down += parts.get("weights", 0)
        self.code_bytes += parts.get("codes", 0)
        self.control_bytes += parts.get("control", 0)
        self.eval_bytes += parts.get("eval", 0)
        self.emulated_link_s += link_s

    def as_dict(self) -> dict[str, float | int]:
        return dict(self.__dict__)


@dataclass
class TrafficLog:
    """Payload bytes and messages per direction, per client and per (experience, round).

    A federation calls ``begin_round`` when it dispatches a round and ``record`` for every
    message it carries; messages are attributed to the round dispatched last. Clients are any
    hashable key (a partition id, or a Flower node id renamed in ``summary``).
    """

    period: tuple[int, int] = (0, 0)
    _rounds: dict[tuple[int, int], _Tally] = field(default_factory=dict)
    _clients: dict[Hashable, _Tally] = field(default_factory=dict)
    _total: _Tally = field(default_factory=_Tally)

    def begin_round(self, experience: int, round: int) -> None:
        self.period = (experience, round)
        self._rounds.setdefault(self.period, _Tally())

    def record(
        self,
        client: Hashable,
        direction: Direction,
        nbytes: int,
        *,
        link_s: float = 0.0,
        parts: Mapping[str, int] | None = None,
    ) -> None:
        """Count one message of ``nbytes`` payload; ``link_s`` is its emulated transfer time,
        ``parts`` its bytes by kind (``PARTS``)."""
        for tally in (
            self._rounds.setdefault(self.period, _Tally()),
            self._clients.setdefault(client, _Tally()),
            self._total,
        ):
            tally.add(direction, int(nbytes), float(link_s), parts or {})

    def totals(self) -> tuple[int, int]:
        """(uplink bytes, downlink bytes) over the whole run."""
        return self._total.uplink_bytes, self._total.downlink_bytes

    @property
    def emulated_link_s(self) -> float:
        """Summed over all messages of all edges (edges' links run side by side)."""
        return self._total.emulated_link_s

    def summary(self, names: Mapping[Hashable, object] | None = None) -> dict[str, Any]:
        """The ``communication`` block of metrics.json: totals, ``per_round``, ``per_client``.

        ``names`` renames client keys (Flower: node id -> partition id); keys are written as
        strings, and clients that map to the same name are merged.
        """
        names = names or {}
        per_client: dict[str, dict[str, float | int]] = {}
        for client, tally in self._clients.items():
            key = str(names.get(client, client))
            merged = per_client.setdefault(key, _Tally().as_dict())
            for k, v in tally.as_dict().items():
                merged[k] += v
        per_round = [
            {"experience": e, "round": r, **tally.as_dict()}
            for (e, r), tally in sorted(self._rounds.items())
        ]
        return {
            **self._total.as_dict(),
            "per_round": per_round,
            "per_client": dict(sorted(per_client.items())),
        }
